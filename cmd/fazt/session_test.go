package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/promtext"
	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/fazt-realtime/fazt/transport/ws"
)

type auditResp struct {
	Events []struct {
		Seq     uint64         `json:"seq"`
		Type    string         `json:"type"`
		Channel string         `json:"channel"`
		Client  string         `json:"client"`
		App     string         `json:"app"`
		Time    int64          `json:"time"`
		Event   map[string]any `json:"event"`
	} `json:"events"`
	NextAfter uint64 `json:"next_after"`
}

func (tn *testNode) audit(app, query string) auditResp {
	tn.t.Helper()
	var a auditResp
	if code := tn.api(app, testAdminKey, "GET", "/_api/audit?"+query, nil, &a); code != 200 {
		tn.t.Fatalf("audit %s: status %d", query, code)
	}
	return a
}

func (a auditResp) types() []string {
	var out []string
	for _, e := range a.Events {
		out = append(out, e.Type)
	}
	return out
}

func TestKick(t *testing.T) {
	tn := startTestNode(t, nil)
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "room"})
	bystander := tn.dial("", "")
	bystander.subscribe(map[string]any{"channel": "room"})

	var kicked map[string]any
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+c.id+"/kick", map[string]any{"reason": "spam"}, &kicked); code != 200 {
		t.Fatalf("kick: %d %v", code, kicked)
	}
	d := c.expect("disconnect")
	if d.num("code") != 4000 || d.str("reason") != "kicked: spam" {
		t.Fatalf("disconnect frame %v", d)
	}
	if ce := c.waitClosed(); ce == nil || ce.Code != 4000 {
		t.Fatalf("close = %v, want code 4000", ce)
	}
	// The audit shows the kick, then the disconnection it caused.
	waitFor(t, func() bool {
		return slices.Equal(tn.audit("", "client="+c.id+"&type=kicked,disconnected").types(),
			[]string{"client.kicked.v1", "client.disconnected.v1"})
	})
	a := tn.audit("", "client="+c.id+"&type=disconnected")
	if a.Events[0].Event["reason"] != "kicked" {
		t.Fatalf("disconnect reason %v", a.Events[0].Event)
	}
	k := tn.audit("", "client="+c.id+"&type=kicked")
	if by := k.Events[0].Event["by"].(map[string]any); by["kind"] != "admin_key" || k.Events[0].Event["reason"] != "spam" {
		t.Fatalf("kick event %v", k.Events[0].Event)
	}
	// Gone from membership; the bystander is unaffected. The membership
	// projection applies the committed disconnection a moment after the
	// audit shows it.
	waitFor(t, func() bool {
		var subs struct{ Subscribers []string }
		tn.api("", testAdminKey, "GET", "/_api/channels/room/subscribers", nil, &subs)
		return slices.Equal(subs.Subscribers, []string{bystander.id})
	})
	tn.publish("", "room", "still here")
	bystander.messages("room", 1)
	// Kicking someone who is not connected is a 404.
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+c.id+"/kick", map[string]any{}, nil); code != 404 {
		t.Fatalf("second kick: status %d, want 404", code)
	}

	// A reason too long for a close frame is cut between characters: a
	// close frame that is not valid UTF-8 would make the client fail the
	// connection and lose the code that says not to reconnect.
	long := tn.dial("", "")
	reason := "x" + strings.Repeat("é", 100) // after "kicked: x", 9 bytes, byte 120 falls inside an é
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+long.id+"/kick", map[string]any{"reason": reason}, nil); code != 200 {
		t.Fatalf("kick with a long reason: %d", code)
	}
	if d := long.expect("disconnect"); d.str("reason") != "kicked: "+reason {
		t.Fatalf("disconnect frame %v", d)
	}
	if ce := long.waitClosed(); ce == nil || ce.Code != 4000 || !strings.HasPrefix("kicked: "+reason, ce.Text) || len(ce.Text) < 100 {
		t.Fatalf("close = %v, want code 4000 and the reason's start", ce)
	}

	// A reason over domain.MaxKickReason is refused, as from JS, and the
	// client stays.
	stays := tn.dial("", "")
	var e struct{ Code string }
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+stays.id+"/kick", map[string]any{"reason": strings.Repeat("r", domain.MaxKickReason+1)}, &e); code != 413 || e.Code != "too_large" {
		t.Fatalf("kick with a reason over the limit: %d %q, want 413 too_large", code, e.Code)
	}
	stays.send(`{"type":"ping","id":1}`)
	stays.expect("pong")
	if a := tn.audit("", "type=kicked"); len(a.Events) != 2 {
		t.Fatalf("%d kicks in the audit, want the 2 that were answered 200", len(a.Events))
	}
}

func TestHeartbeat(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{Heartbeat: 300 * time.Millisecond, PongTimeout: 150 * time.Millisecond}))
	silent := tn.dial("", "")
	alive := tn.dial("", "")
	control := tn.dial("", "")
	// browser answers the server's WebSocket pings by itself, as a
	// browser's WebSocket does whatever its page's code is doing, and
	// nothing else (its frames are read, not answered).
	browser, err := tn.tryDialPings("", "", true)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range browser.frames {
		}
	}()
	stop := make(chan struct{})
	defer close(stop)
	// alive answers every ping with a pong message, control with a
	// WebSocket pong frame; silent never answers.
	pings := make(chan struct{}, 100)
	controlPings := make(chan struct{}, 100)
	answer := func(c *client, reply func(), got chan<- struct{}) {
		for {
			select {
			case f, ok := <-c.frames:
				if !ok {
					return
				}
				if f.str("type") == "ping" {
					reply()
					got <- struct{}{}
				}
			case <-stop:
				return
			}
		}
	}
	go answer(alive, func() { alive.conn.WriteMessage(1, []byte(`{"type":"pong"}`)) }, pings)
	go answer(control, func() {
		control.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
	}, controlPings)
	for {
		f, ok := <-silent.frames
		if !ok {
			break
		}
		if typ := f.str("type"); typ != "ping" && typ != "disconnect" {
			t.Fatalf("silent client got %v", f)
		}
	}
	if ce := silent.waitClosed(); ce == nil || ce.Code != 4002 {
		t.Fatalf("silent client closed with %v, want 4002", ce)
	}
	// alive and control have answered several pings by now and are still
	// connected.
	for i := 0; i < 3; i++ {
		for _, got := range []chan struct{}{pings, controlPings} {
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("a client that answers pings stopped getting them: it was dropped")
			}
		}
	}
	for name, c := range map[string]*client{"pong messages": alive, "WebSocket pongs": control, "WebSocket pongs to WebSocket pings alone": browser} {
		select {
		case <-c.done:
			t.Fatalf("a client that answers pings with %s was dropped", name)
		default:
		}
	}
	waitFor(t, func() bool {
		a := tn.audit("", "client="+silent.id+"&type=disconnected")
		return len(a.Events) == 1 && a.Events[0].Event["reason"] == "heartbeat_timeout"
	})
}

func TestRestartKeepsHistoryAndClosesSessions(t *testing.T) {
	tn := startTestNode(t, nil)
	for i := 1; i <= 5; i++ {
		tn.publish("", "log", i)
	}
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "log"})
	epoch := tn.publish("", "log", 6).Epoch

	// Simulate a crash: the session is never closed by this process.
	tn.node.ws = nil // Close will not tell clients or record disconnections
	tn2 := tn.restart()
	c.conn.Close() // the old process is gone; its socket with it

	// History and offsets survive; new broadcasts continue the sequence.
	if p := tn2.publish("", "log", 7); p.Offset != 7 || p.Epoch != epoch {
		t.Fatalf("after restart publish got offset %d epoch %s, want 7 %s", p.Offset, p.Epoch, epoch)
	}
	d := tn2.dial("", "")
	d.subscribe(map[string]any{"channel": "log", "offset": 0})
	if got := offsets(d.messages("log", 7)); !slices.Equal(got, seqRange(1, 7)) {
		t.Fatalf("replay after restart: %v", got)
	}
	// The dead session was closed in the log and is gone from membership.
	a := tn2.audit("", "client="+c.id+"&type=disconnected")
	if len(a.Events) != 1 || a.Events[0].Event["reason"] != "server_restart" {
		t.Fatalf("dead session's disconnection: %+v", a.Events)
	}
	var subs struct{ Subscribers []string }
	tn2.api("", testAdminKey, "GET", "/_api/channels/log/subscribers", nil, &subs)
	if !slices.Equal(subs.Subscribers, []string{d.id}) {
		t.Fatalf("subscribers after restart: %v, want [%s]", subs.Subscribers, d.id)
	}
}

func TestGracefulShutdownTellsClients(t *testing.T) {
	tn := startTestNode(t, nil)
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "x"})
	tn.stop()
	d := c.expect("disconnect")
	if d.num("code") != 1001 {
		t.Fatalf("disconnect %v, want code 1001", d)
	}
	if ce := c.waitClosed(); ce == nil || ce.Code != 1001 {
		t.Fatalf("close %v, want 1001", ce)
	}
	tn2 := startOn(t, tn.cfg)
	a := tn2.audit("", "client="+c.id+"&type=disconnected")
	if len(a.Events) != 1 || a.Events[0].Event["reason"] != "server_shutdown" {
		t.Fatalf("shutdown disconnection: %+v", a.Events)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10s")
}

// A connection of an app whose folder is removed ends with 4002 and
// reason app_removed, once the folder has been gone for the grace (here
// half a second): at its next request, or, idle, at its next heartbeat.
// Another app's connections stay.
func TestRemovedAppsConnectionsEnd(t *testing.T) {
	// ended reads c to its end, answering pings when pong, and checks
	// how it ended.
	ended := func(t *testing.T, tn *testNode, c *client, pong bool) {
		t.Helper()
		var disc frame
		for timeout := time.After(20 * time.Second); ; { // pings, replies to requests, then disconnect
			var f frame
			select {
			case f = <-c.frames:
			case <-timeout:
				t.Fatal("the connection of a removed app still open after 20s")
			}
			if f == nil {
				break // closed
			}
			switch f.str("type") {
			case "disconnect":
				disc = f
			case "ping":
				if pong {
					c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong"}`))
				}
			}
		}
		if disc == nil || disc.num("code") != 4002 || !strings.Contains(disc.str("reason"), `app "gone" is no longer on this server`) {
			t.Fatalf("disconnect frame %v, want 4002 saying the app is gone", disc)
		}
		if ce := c.waitClosed(); ce == nil || ce.Code != 4002 {
			t.Fatalf("closed with %v, want 4002", ce)
		}
		evs, err := tn.node.log.Events(context.Background(), domain.AuditQuery{App: "gone", Client: c.id, Types: []string{domain.NameClientDisconnected}})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); len(evs) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			evs, _ = tn.node.log.Events(context.Background(), domain.AuditQuery{App: "gone", Client: c.id, Types: []string{domain.NameClientDisconnected}})
		}
		if len(evs) != 1 || evs[0].Fact.(*domain.ClientDisconnected).Reason != domain.ReasonAppRemoved {
			t.Fatalf("recorded ends %+v, want one with reason %s", evs, domain.ReasonAppRemoved)
		}
	}
	t.Run("at a request", func(t *testing.T) {
		tn := startTestNode(t, map[string]string{"gone": "", "stays": ""}, func(c *nodeConfig) { c.AppGrace = 500 * time.Millisecond })
		c := tn.dial("gone", "")
		c.subscribe(map[string]any{"channel": "room"})
		other := tn.dial("stays", "")
		other.subscribe(map[string]any{"channel": "room"})
		if err := os.RemoveAll(filepath.Join(tn.cfg.AppsDir, "gone")); err != nil {
			t.Fatal(err)
		}
		// The registry and the connection each look again after a second.
		go func() {
			for i := 0; i < 100; i++ {
				if c.conn.WriteJSON(map[string]any{"type": "subscribe", "channel": fmt.Sprintf("r%d", i)}) != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		ended(t, tn, c, false) // the heartbeat (30 s) sends no ping meanwhile
		other.send(map[string]any{"type": "subscribe", "channel": "more"})
		other.expect("subscribed")
	})
	t.Run("a folder gone for a moment closes no one", func(t *testing.T) {
		tn := startTestNode(t, map[string]string{"gone": "", "stays": ""}, func(c *nodeConfig) { c.AppGrace = time.Hour })
		c := tn.dial("gone", "")
		c.subscribe(map[string]any{"channel": "room"})
		dir := filepath.Join(tn.cfg.AppsDir, "gone")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // past the second between looks
		// The connection stays; the request may be refused meanwhile
		// (the app's hooks are looked up too), not the connection.
		c.send(map[string]any{"type": "subscribe", "channel": "while-gone"})
		if f := c.next(); f.str("type") != "subscribed" && f.str("code") != "not_found" {
			t.Fatalf("a subscribe while the folder is gone: %v", f)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		c.subscribe(map[string]any{"channel": "back"})
	})
	t.Run("idle, at a heartbeat", func(t *testing.T) {
		// A pong timeout near the heartbeat: a late pong from a busy test
		// must not end the connection first.
		tn := startTestNode(t, map[string]string{"gone": "", "stays": ""}, withWS(ws.Config{Heartbeat: time.Second, PongTimeout: 900 * time.Millisecond}),
			func(c *nodeConfig) { c.AppGrace = 500 * time.Millisecond })
		c := tn.dial("gone", "")
		c.subscribe(map[string]any{"channel": "room"})
		if err := os.RemoveAll(filepath.Join(tn.cfg.AppsDir, "gone")); err != nil {
			t.Fatal(err)
		}
		ended(t, tn, c, true)
	})
}

// A kicked client that keeps sending until it answers the close has its
// frames read and dropped: they run no request, and are neither counted
// as received nor refused by the inbound rate (default 100 a second,
// bursts of 200), which 300 frames would pass.
func TestFramesAfterTheCloseAreNotCounted(t *testing.T) {
	// The server reads until the client answers its close, however long
	// the test takes to send.
	tn := startTestNode(t, nil, withWS(ws.Config{CloseLinger: time.Hour}))
	conn, _, err := websocket.DefaultDialer.Dial(tn.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var hello frame
	if err := conn.ReadJSON(&hello); err != nil || hello.str("type") != "connected" {
		t.Fatalf("first frame %v, %v", hello, err)
	}
	counted := func() (received, refused float64) {
		m := tn.metrics()
		received, _ = promtext.Value(m, "fazt_ws_frames_received_total")
		return received, testutil.LimitRefusals(m, "inbound_rate")
	}
	received, refused := counted()
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+hello.str("client_id")+"/kick", nil, nil); code != 200 {
		t.Fatalf("kick: %d", code)
	}
	var disc frame
	if err := conn.ReadJSON(&disc); err != nil || disc.str("type") != "disconnect" {
		t.Fatalf("after the kick: %v, %v", disc, err)
	}
	for i := 0; i < 300; i++ {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"publish","channel":"room","data":1}`)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, 4000) {
		t.Fatalf("after the frames: %v, want the close 4000", err)
	}
	// The server reads to the close gorilla sent in answer to its own,
	// after the 300 frames, and only then closes its socket, which the
	// kernel answers a write to with a reset: once a write fails, every
	// frame has been read. (Its half-close came with its close frame.)
	raw := conn.UnderlyingConn()
	raw.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := raw.Write([]byte{0}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's socket still open 30s after the client's close")
		}
	}
	if r, f := counted(); r != received || f != refused {
		t.Fatalf("after the kick %v frames counted as received and %v refused, want none", r-received, f-refused)
	}
}

// A kick's body is optional however it is left out: a chunked request
// with no data (curl --data-binary @/dev/null -H 'Transfer-Encoding:
// chunked'), whose length net/http cannot know before reading, was
// refused as bad JSON. A body of bad JSON still is.
func TestKickWithAnEmptyChunkedBody(t *testing.T) {
	tn := startTestNode(t, nil)
	c := tn.dial("", "")
	kick := func(body io.Reader) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", tn.srv.URL+"/_api/clients/"+c.id+"/kick", body)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	// io.MultiReader hides the length: the request goes chunked.
	if code, body := kick(io.MultiReader(strings.NewReader("{"))); code != 400 || !strings.Contains(body, "bad_request") {
		t.Fatalf("a kick of bad JSON: %d %s", code, body)
	}
	if code, body := kick(strings.NewReader(strings.Repeat(" ", 5000))); code != 413 || !strings.Contains(body, "too_large") {
		t.Fatalf("a kick of 5000 spaces, over the 4 KiB a body may have: %d %s", code, body)
	}
	if code, body := kick(io.MultiReader(strings.NewReader(""))); code != 200 || !strings.Contains(body, `"kicked":true`) {
		t.Fatalf("a kick with an empty chunked body: %d %s", code, body)
	}
	if d := c.expect("disconnect"); d.num("code") != 4000 {
		t.Fatalf("disconnect frame %v", d)
	}
}

// TestHealthzSaysWhatFails: while another process holds the database's
// write lock (as a stuck backup script would), commits fail as busy after
// the 5 s wait; /healthz then answers 503 naming the log, since when and
// (to the admin key) why, where it answered ok whatever the log did; once
// the lock goes, it answers ok again, with nothing published.
func TestHealthzSaysWhatFails(t *testing.T) {
	tn := startTestNode(t, nil)
	type health struct {
		Status  string
		Seq     uint64
		Failing map[string]struct {
			Error string
			Since int64
		}
	}
	var h health
	if code := tn.api("", "", "GET", "/healthz", nil, &h); code != 200 || h.Status != "ok" || len(h.Failing) != 0 {
		t.Fatalf("healthz of a working server: %d %+v", code, h)
	}
	release := testutil.HoldWriteLock(t, tn.cfg.DBPath)
	before := time.Now().UnixMilli()
	if code := tn.api("", testAdminKey, "POST", "/_api/publish", map[string]any{"channel": "room", "data": 1}, nil); code != 503 {
		t.Fatalf("a publish while the write lock is held: %d, want 503", code)
	}
	// Anyone is told which part fails, and since when; the admin key is
	// told why too.
	h = health{}
	if code := tn.api("", "", "GET", "/healthz", nil, &h); code != 503 || h.Status != "failing" ||
		h.Failing["log"].Since < before || h.Failing["log"].Error != "" {
		t.Fatalf("healthz while commits fail: %d %+v", code, h)
	}
	h = health{}
	if code := tn.api("", testAdminKey, "GET", "/healthz", nil, &h); code != 503 || !strings.Contains(h.Failing["log"].Error, "locked") {
		t.Fatalf("healthz while commits fail, to the admin key: %d %+v", code, h)
	}
	release()
	// With nothing published, the writer's own probe (every 2 s while
	// commits fail) finds it can commit again: a load balancer that took
	// the server out sends nothing that would.
	waitFor(t, func() bool {
		h = health{}
		return tn.api("", "", "GET", "/healthz", nil, &h) == 200 && h.Status == "ok"
	})
	if code := tn.api("", testAdminKey, "POST", "/_api/publish", map[string]any{"channel": "room", "data": 2}, nil); code != 200 {
		t.Fatalf("a publish once the lock is gone: %d", code)
	}
}
