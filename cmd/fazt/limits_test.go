package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/fazt-realtime/fazt/transport/ws"
)

func TestConnectionLimit(t *testing.T) {
	tn := startTestNode(t, map[string]string{"small": `{"limits":{"max_connections":2}}`})
	refused := tn.refusals("connections")
	a := tn.dial("small", "")
	tn.dial("small", "")
	// The third is told why, in a disconnect frame, and closed with 4002.
	tn.expectConnectionRefused("small", "app small has its maximum of 2 connections", refused)
	// Other apps are not affected, and a slot frees when a client leaves.
	tn.dial("", "")
	a.conn.Close()
	waitFor(t, func() bool { _, err := tn.tryDial("small", ""); return err == nil })
}

// TestServerConnectionLimit: ws.Config.MaxConnections caps the server's
// connections across apps; the next one, in any app, is told why and
// closed with 4002, and a slot frees when a client leaves.
func TestServerConnectionLimit(t *testing.T) {
	tn := startTestNode(t, map[string]string{"one": "", "two": ""}, withWS(ws.Config{MaxConnections: 2}))
	refused := tn.refusals("connections")
	a := tn.dial("one", "")
	tn.dial("two", "")
	tn.expectConnectionRefused("one", "server has its maximum of 2 connections", refused)
	a.conn.Close()
	waitFor(t, func() bool { _, err := tn.tryDial("two", ""); return err == nil })
}

// expectConnectionRefused dials app and expects the refusal a connection
// limit gives: a disconnect frame saying why, a 4002 close, and one more
// refusal counted in /metrics than before.
func (tn *testNode) expectConnectionRefused(app, why string, before float64) {
	t := tn.t
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(tn.wsURL(), http.Header{"Host": {app + ".localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := conn.ReadMessage()
	if err != nil || !strings.Contains(string(b), `"type":"disconnect"`) || !strings.Contains(string(b), why) {
		t.Fatalf("connection past the limit got %s, %v; want a disconnect saying %q", b, err, why)
	}
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, 4002) {
		t.Fatalf("connection past the limit closed with %v, want 4002", err)
	}
	if n := tn.refusals("connections") - before; n != 1 {
		t.Fatalf("%v refusals counted in /metrics, want 1", n)
	}
}

// refusals reads fazt_limit_refusals_total for one limit: 0 before the
// first. The counter is the process's, shared by the tests' nodes, so a
// test compares it with what it read before.
func (tn *testNode) refusals(limit string) float64 {
	tn.t.Helper()
	return testutil.LimitRefusals(tn.metrics(), limit)
}

func (tn *testNode) metrics() string {
	req, err := http.NewRequest("GET", tn.srv.URL+"/metrics", nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tn.t.Fatalf("/metrics: %s", resp.Status)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestInboundRateAndDepthLimits(t *testing.T) {
	tn := startTestNode(t, map[string]string{"slow": `{"limits":{"inbound_rate":5,"inbound_burst":5,"max_json_depth":8}}`})
	c := tn.dial("slow", "")
	for i := 0; i < 20; i++ {
		c.send(fmt.Sprintf(`{"type":"ping","id":%d}`, i))
	}
	var pongs, limited int
	for i := 0; i < 20; i++ {
		f := c.next()
		switch {
		case f.str("type") == "pong":
			pongs++
		case f.str("type") == "error" && f.str("code") == "rate_limited":
			limited++
			if f["id"] == nil {
				t.Fatalf("rate_limited error without the request's id: %v", f)
			}
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	// The burst passes; the rest is refused, not silently dropped.
	if pongs < 5 || limited == 0 || pongs+limited != 20 {
		t.Fatalf("%d pongs, %d rate_limited", pongs, limited)
	}
	time.Sleep(1100 * time.Millisecond) // the bucket refills at 5/s
	c.send(`{"type":"publish","channel":"x","data":` + strings.Repeat("[", 9) + strings.Repeat("]", 9) + `,"id":"deep"}`)
	if e := c.expect("error"); e.str("code") != "bad_request" || !strings.Contains(e.str("error"), "deeper") || e["id"] != "deep" {
		t.Fatalf("deep frame: %v", e)
	}
	c.send(`{"type":"ping","id":"after"}`)
	if p := c.expect("pong"); p["id"] != "after" {
		t.Fatalf("after limits: %v", p)
	}
}

func TestOriginCheck(t *testing.T) {
	tn := startTestNode(t, map[string]string{"site": `{"allowed_origins":["http://site.example:8080","https://site.example"]}`})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"http://site.example:8080", true},
		{"https://site.example", true},
		{"HTTPS://SITE.EXAMPLE", true},
		{"http://site.example", false}, // scheme and port must match
		{"http://site.example:8080.evil.example", false},
		{"http://site.example.evil.example:8080", false},
		{"http://evil.example/http://site.example:8080", false},
		{"null", false},
	} {
		h := http.Header{"Host": {"site.localhost"}}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(tn.wsURL(), h)
		if tc.ok != (err == nil) {
			t.Errorf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if err == nil {
			conn.Close()
		} else if resp == nil || resp.StatusCode != 403 {
			t.Errorf("origin %q: %v, want 403", tc.origin, resp)
		}
	}
	// Apps without allowed_origins accept any origin, like the default app.
	if _, _, err := websocket.DefaultDialer.Dial(tn.wsURL(), http.Header{"Origin": {"http://localhost.evil.example"}}); err != nil {
		t.Errorf("default app refused an origin: %v", err)
	}
	tn2 := startTestNode(t, map[string]string{"default": `{"allowed_origins":["http://localhost"]}`})
	if _, _, err := websocket.DefaultDialer.Dial(tn2.wsURL(), http.Header{"Origin": {"http://localhost.evil.example"}}); err == nil {
		t.Error("forged origin http://localhost.evil.example accepted for allowed origin http://localhost")
	}
}

func TestPrivateChannels(t *testing.T) {
	const secret = "app-secret"
	tn := startTestNode(t, map[string]string{"vault": `{"secret":"` + secret + `","client_publish":true}`, "open": ""})
	sign := func(secret string, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	c := tn.dial("vault", "")
	for _, tc := range []struct {
		name, token string
	}{
		{"no token", ""},
		{"wrong secret", sign("guess", jwt.MapClaims{"channel": "private-a"})},
		{"other channel", sign(secret, jwt.MapClaims{"channel": "private-b"})},
		{"other client", sign(secret, jwt.MapClaims{"channel": "private-a", "client": "someone-else"})},
		{"other app", sign(secret, jwt.MapClaims{"channel": "private-a", "app": "open"})},
		{"expired", sign(secret, jwt.MapClaims{"channel": "private-a", "exp": time.Now().Add(-time.Minute).Unix()})},
	} {
		c.send(map[string]any{"type": "subscribe", "channel": "private-a", "token": tc.token, "id": tc.name})
		if e := c.expect("error"); e.str("code") != "not_allowed" || e["id"] != tc.name {
			t.Errorf("%s: %v", tc.name, e)
		}
	}
	c.subscribe(map[string]any{"channel": "private-a", "token": sign(secret, jwt.MapClaims{"channel": "private-a", "app": "vault", "client": c.id, "exp": time.Now().Add(time.Minute).Unix()})})
	tn.publish("vault", "private-a", "secret stuff")
	if m := c.messages("private-a", 1)[0]; m["data"] != "secret stuff" {
		t.Fatalf("got %v", m)
	}
	// Publishing to a private channel takes the same token: a client that
	// has not joined it is refused, in an app where clients may publish;
	// the one that joined may.
	intruder := tn.dial("vault", "")
	intruder.send(map[string]any{"type": "publish", "channel": "private-a", "data": "forged", "id": 1})
	if e := intruder.expect("error"); e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), "token") {
		t.Fatalf("publish without joining: %v", e)
	}
	c.send(map[string]any{"type": "publish", "channel": "private-a", "data": "mine", "id": 2})
	for got := map[string]bool{}; !got["published"] || !got["message"]; {
		f := c.next()
		if f.str("type") == "message" && f["data"] != "mine" {
			t.Fatalf("got %v; a refused publish was delivered", f)
		}
		got[f.str("type")] = true
	}
	// An app without a secret admits no one to private channels.
	o := tn.dial("open", "")
	o.send(map[string]any{"type": "subscribe", "channel": "private-a", "token": sign(secret, jwt.MapClaims{"channel": "private-a"})})
	if e := o.expect("error"); e.str("code") != "not_allowed" {
		t.Fatalf("app without secret: %v", e)
	}
	// Refusals are in the audit as nothing at all: no subscription happened.
	if a := tn.audit("vault", "type=subscribed"); len(a.Events) != 1 {
		t.Fatalf("%d subscriptions recorded, want 1", len(a.Events))
	}
}

// A private channel's subscription ends when its token expires: the
// client gets `unsubscribed` with reason token_expired and no more of the
// channel, may no longer publish to it, and the log records why; joining
// again with a fresh token from its last offset misses nothing. A token
// without exp admits for good, and the expiry of a subscription that was
// left and made again with such a token ends nothing.
func TestPrivateTokenExpires(t *testing.T) {
	const secret = "app-secret"
	tn := startTestNode(t, map[string]string{"vault": `{"secret":"` + secret + `","client_publish":true}`})
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// exp has whole seconds: each token here expires two to three
	// seconds after it is signed, which its subscribe must not take.
	exp := func() int64 { return time.Now().Unix() + 3 }
	forever, again, short := tn.dial("vault", ""), tn.dial("vault", ""), tn.dial("vault", "")
	forever.subscribe(map[string]any{"channel": "private-a", "token": sign(jwt.MapClaims{"channel": "private-a"})})
	again.subscribe(map[string]any{"channel": "private-a", "token": sign(jwt.MapClaims{"channel": "private-a", "exp": exp()})})
	again.send(map[string]any{"type": "unsubscribe", "channel": "private-a"})
	again.expect("unsubscribed")
	again.subscribe(map[string]any{"channel": "private-a", "token": sign(jwt.MapClaims{"channel": "private-a"})})
	// Signed last: its expiry is the later, so that once it has passed,
	// so has again's first token's.
	short.subscribe(map[string]any{"channel": "private-a", "token": sign(jwt.MapClaims{"channel": "private-a", "client": short.id, "exp": exp()})})

	f := short.next()
	if f.str("type") != "unsubscribed" || f.str("channel") != "private-a" || f.str("reason") != domain.ReasonTokenExpired || f["id"] != nil {
		t.Fatalf("at the token's expiry: %v, want unsubscribed with reason %s", f, domain.ReasonTokenExpired)
	}
	tn.publish("vault", "private-a", 1)
	for _, c := range []*client{forever, again} {
		if m := c.messages("private-a", 1)[0]; m.num("offset") != 1 {
			t.Fatalf("a subscription that outlived the expiry got %v", m)
		}
	}
	short.send(map[string]any{"type": "publish", "channel": "private-a", "data": "late", "id": 1})
	if e := short.expect("error"); e.str("code") != "not_allowed" {
		t.Fatalf("publish after the token expired: %v", e)
	}
	a := tn.audit("vault", "type=unsubscribed")
	var ends []string
	for _, e := range a.Events {
		ends = append(ends, e.Client+":"+fmt.Sprint(e.Event["reason"]))
	}
	if want := []string{again.id + ":<nil>", short.id + ":" + domain.ReasonTokenExpired}; !slices.Equal(ends, want) {
		t.Fatalf("unsubscriptions recorded %v, want %v", ends, want)
	}
	// A fresh token, from the last offset: message 1, published after
	// the expiry, is replayed.
	short.subscribe(map[string]any{"channel": "private-a", "offset": 0, "token": sign(jwt.MapClaims{"channel": "private-a", "client": short.id, "exp": time.Now().Add(time.Hour).Unix()})})
	if m := short.messages("private-a", 1)[0]; m.num("offset") != 1 {
		t.Fatalf("joined again from offset 0: %v", m)
	}
	again.quiet(time.Second) // its first token's expiry has passed by now, ending nothing
}

// A slow consumer gets its disconnect frame even when the connection's
// own writer ran lately (its socket was full once, then drained): the
// closing write sets a deadline of its own rather than keep the one that
// writer left, while the socket's was moved to now by the overflow to cut
// a stuck write short.
func TestSlowConsumerDisconnectAfterAWriter(t *testing.T) {
	// Broadcasts wait a second for their round, so that a burst fills the
	// queue of 8 however slowly the publishes go.
	tn := startTestNode(t, nil, withWS(ws.Config{SendQueue: 8, SocketSendBuffer: 8192, WriteTimeout: time.Minute, WriteDelay: time.Second}))
	c := tn.dialSmallReads(4096)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, hello, err := c.ReadMessage(); err != nil || !strings.Contains(string(hello), `"connected"`) {
		t.Fatalf("%s %v", hello, err)
	}
	c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"feed"}`))
	if _, sub, err := c.ReadMessage(); err != nil || !strings.Contains(string(sub), `"subscribed"`) {
		t.Fatalf("%s %v", sub, err)
	}

	// 96 KB in one round, into some 20 KB of socket buffers: the rest goes
	// out from the connection's own writer as the client reads.
	before := tn.metric("fazt_ws_full_socket_writes_total")
	payload := strings.Repeat("y", 16000)
	for range 6 {
		tn.publish("", "feed", payload)
	}
	for i := range 6 {
		if _, m, err := c.ReadMessage(); err != nil || !strings.Contains(string(m), `"message"`) {
			t.Fatalf("message %d: %.80s %v", i, m, err)
		}
	}
	if tn.metric("fazt_ws_full_socket_writes_total") == before {
		t.Fatal("the socket took the round's write whole: no writer of the connection's own ran")
	}

	// Now a burst past the queue: the client, which reads, is still a slow
	// consumer by the queue's measure, and must be told so. One batch of
	// 40, committed together and fanned out in a moment: one at a time,
	// publishes slowed by a busy machine (the whole suite under -race)
	// could straddle rounds, each of which empties the queue, and never
	// overflow it. A round can fall inside the batch's fan-out at most
	// once, so one side of it holds 20 frames or more, past the 8.
	msgs := make([]any, 0, 80)
	for range 40 {
		msgs = append(msgs, "feed", "x")
	}
	if code := tn.api("", testAdminKey, "POST", "/_api/publish-batch", batchOf(msgs...), nil); code != 200 {
		t.Fatalf("publish-batch: %d", code)
	}
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("the connection ended without its disconnect frame: %v", err)
		}
		if strings.Contains(string(m), `"disconnect"`) {
			if !strings.Contains(string(m), `"code":4001`) {
				t.Fatalf("disconnect: %s", m)
			}
			return
		}
	}
}

// TestSlowConsumer stalls one reader while 100 others read: the stalled one
// is disconnected as a slow consumer, everyone else receives every message
// in order, and the stalled client can resume by offset without loss.
func TestSlowConsumer(t *testing.T) {
	// A write stuck for a minute would be a flusher held up by the stalled
	// socket: long enough that the readers' queues would show it.
	tn := startTestNode(t, nil, withWS(ws.Config{SendQueue: 64, SocketSendBuffer: 8192, WriteTimeout: time.Minute}))
	const readers, msgs = 100, 300
	payload := strings.Repeat("z", 2048)

	// The stalled client's socket takes little, and it never reads.
	stalled := tn.dialSmallReads(4096)
	_, hello, _ := stalled.ReadMessage()
	stalledID := frame{}
	jsonUnmarshal(hello, &stalledID)
	stalled.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"feed"}`))

	clients := make([]*client, readers)
	for i := range clients {
		clients[i] = tn.dial("", "")
		clients[i].subscribe(map[string]any{"channel": "feed"})
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	// What each reader has read: the publisher stays within 32 messages of
	// the slowest, so that a reader the machine holds up for a moment
	// cannot fill its queue of 64; only the stalled client does.
	read := make([]atomic.Uint64, readers)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer read[i].Store(msgs) // a failed reader holds nobody up
			next := uint64(1)
			deadline := time.After(60 * time.Second)
			for next <= msgs {
				select {
				case f, ok := <-c.frames:
					if !ok {
						errs <- fmt.Errorf("client %s closed at offset %d", c.id, next)
						return
					}
					if f.str("type") != "message" {
						continue
					}
					if f.num("offset") != next {
						errs <- fmt.Errorf("client %s got offset %d, want %d", c.id, f.num("offset"), next)
						return
					}
					read[i].Store(next)
					next++
				case <-deadline:
					errs <- fmt.Errorf("client %s stuck at offset %d", c.id, next)
					return
				}
			}
		}()
	}
	for i := 0; i < msgs; i++ {
		for r := range read {
			// A reader not served for 10 s is held up by the stalled one.
			for deadline := time.Now().Add(10 * time.Second); read[r].Load()+32 < uint64(i); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("reader %s still at offset %d, 10 s after message %d was due", clients[r].id, read[r].Load(), i)
				}
			}
		}
		tn.publish("", "feed", payload)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	id := stalledID.str("client_id")
	waitFor(t, func() bool {
		a := tn.audit("", "client="+id+"&type=disconnected")
		return len(a.Events) == 1 && a.Events[0].Event["reason"] == "slow_consumer"
	})
	// It comes back and resumes from the start without loss.
	again := tn.dial("", "")
	again.subscribe(map[string]any{"channel": "feed", "offset": 0})
	if got := offsets(again.messages("feed", msgs)); got[0] != 1 || got[msgs-1] != msgs {
		t.Fatalf("resumed %d..%d", got[0], got[msgs-1])
	}
}

// TestSettingsChangesReachOpenConnections turns client_publish off in
// app.json while a client is connected: its next publishes are refused,
// within the second the server caches app.json for.
func TestSettingsChangesReachOpenConnections(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": `{"client_publish":true}`})
	c := tn.dial("chat", "")
	c.send(map[string]any{"type": "publish", "channel": "room", "data": 1, "id": 0})
	c.expect("published")
	if err := os.WriteFile(filepath.Join(tn.cfg.AppsDir, "chat", "app.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, deadline := 1, time.Now().Add(10*time.Second); ; i++ {
		c.send(map[string]any{"type": "publish", "channel": "room", "data": i, "id": i})
		f := c.next()
		if f.str("type") == "error" {
			if f.str("code") != "not_allowed" {
				t.Fatalf("refusal %v", f)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publishes still accepted 10 s after client_publish was turned off")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDepthLimitIsTheAppsEverywhere publishes data nested 12 levels deep
// to two apps, one that allows 8 levels and one that allows 40, through
// every way in: a client's frame, the server API's publish, batch and
// broadcast-all, and JS. Each way refuses it in the first app and takes
// it in the second (the server API kept to the default of 32 whatever
// the app said, and JS did not check).
func TestDepthLimitIsTheAppsEverywhere(t *testing.T) {
	tn := startTestNode(t, map[string]string{
		"tight": `{"limits":{"max_json_depth":8},"client_publish":true}`,
		"loose": `{"limits":{"max_json_depth":40},"client_publish":true}`,
	})
	tn.writeFiles(map[string]string{"tight/api/main.js": callerJS, "loose/api/main.js": callerJS})
	deep := json.RawMessage(strings.Repeat("[", 12) + strings.Repeat("]", 12))
	deeper := json.RawMessage(strings.Repeat("[", 36) + strings.Repeat("]", 36))
	for _, tc := range []struct {
		app  string
		data json.RawMessage
		ok   bool
	}{
		{"tight", deep, false},
		{"loose", deep, true},
		{"loose", deeper, true},
	} {
		want := 400
		if tc.ok {
			want = 200
		}
		name := fmt.Sprintf("%s, depth %d", tc.app, strings.Count(string(tc.data), "["))
		for path, body := range map[string]any{
			"/_api/publish":       map[string]any{"channel": "room", "data": tc.data},
			"/_api/publish-batch": map[string]any{"messages": []any{map[string]any{"channel": "room", "data": tc.data}}},
			"/_api/broadcast-all": map[string]any{"data": tc.data},
		} {
			var e struct{ Code string }
			if code := tn.api(tc.app, testAdminKey, "POST", path, body, &e); code != want || (!tc.ok && e.Code != "bad_request") {
				t.Errorf("%s: %s answered %d %q, want %d", name, path, code, e.Code, want)
			}
		}
		for _, fn := range []string{"broadcast", "broadcastAll"} {
			args := []any{"room", tc.data}
			if fn == "broadcastAll" {
				args = args[1:]
			}
			code, out := tn.callJS(tc.app, fn, args...)
			if code != want || (!tc.ok && out["code"] != "bad_request") {
				t.Errorf("%s: JS %s answered %d %v, want %d", name, fn, code, out, want)
			}
		}
		c := tn.dial(tc.app, "")
		c.send(`{"type":"publish","channel":"room","id":"d","data":` + string(tc.data) + `}`)
		f := c.next()
		for f.str("type") == "message" {
			// The broadcast-all above can reach this connection too: its
			// fan-out follows the commit, and may follow the dial.
			f = c.next()
		}
		if (tc.ok && f.str("type") != "published") || (!tc.ok && f.str("code") != "bad_request") {
			t.Errorf("%s: a client's publish got %v", name, f)
		}
	}
	// What an onPublish hook returns is held to the limit too: here it
	// wraps a client's data of 7 levels (which the frame may carry in an
	// app of 8) in one more.
	tn.writeFiles(map[string]string{"tight/api/realtime.js": `exports.onPublish = (client, channel, data) => ({wrap: data});`})
	c := tn.dial("tight", "")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c.send(`{"type":"publish","channel":"hooked","id":"h","data":` + strings.Repeat("[", 7) + strings.Repeat("]", 7) + `}`)
		f := c.next()
		if f.str("type") != "published" {
			if f.str("code") != "bad_request" {
				t.Fatalf("a publish the hook nests too deep: %v", f)
			}
			break
		}
		// Published: the hook was not loaded yet, or did not count.
		if time.Now().After(deadline) {
			t.Fatalf("a publish the hook nests one level past the limit was published: %v", f)
		}
	}
}

// TestDataThatIsNotUTF8IsRefused publishes a string with a byte that is
// not UTF-8 through every way in. JSON's syntax takes it, but a browser
// must fail a WebSocket that receives such a text frame, and its client
// would meet the message again at every resume: each way refuses it
// with bad_request, and nothing is committed.
func TestDataThatIsNotUTF8IsRefused(t *testing.T) {
	tn := startTestNode(t, map[string]string{"rt": `{"client_publish":true}`})
	refusedByAPI(t, tn, "rt", json.RawMessage("\"caf\xe9\""), "UTF-8")
	c := tn.dial("rt", "")
	c.send("{\"type\":\"publish\",\"channel\":\"room\",\"id\":\"u\",\"data\":{\"text\":\"caf\xe9\"}}")
	if f := c.next(); f.str("type") != "error" || f.str("code") != "bad_request" || f["id"] != "u" {
		t.Errorf("a client's publish: %v", f)
	}
	nothingBroadcast(t, tn, "rt", "room")
}

// TestNumbersBeyondADoubleAreRefused publishes 1e400 through every way
// in. JSON's syntax takes it, but JavaScript reads it as Infinity, which
// has no JSON form, and goja's JSON.parse refuses it: onPublish crashed on
// it (costing the runtime), and a handler's req.json failed the request.
// Each way refuses it with bad_request and commits nothing; a handler gets
// req.json null, as for a body that is not JSON.
func TestNumbersBeyondADoubleAreRefused(t *testing.T) {
	tn := startTestNode(t, map[string]string{"rt": `{"client_publish":true}`})
	tn.writeFiles(map[string]string{
		"rt/api/realtime.js": `exports.onPublish = (client, channel, data) => data;`,
		"rt/api/main.js":     `module.exports = (req) => ({ json: { parsed: req.json, body: req.body } });`,
	})
	bad := json.RawMessage(`{"n":1e400}`)
	refusedByAPI(t, tn, "rt", bad, "1e400 is beyond the range of a double")
	c := tn.dial("rt", "")
	c.subscribe(map[string]any{"channel": "room"})
	c.send(`{"type":"publish","channel":"room","id":"n","data":{"n":-1e400}}`)
	if f := c.next(); f.str("type") != "error" || f.str("code") != "bad_request" || f["id"] != "n" {
		t.Errorf("a client's publish: %v", f)
	}
	nothingBroadcast(t, tn, "rt", "room")
	// A number that underflows to 0 is a number like any other.
	c.send(`{"type":"publish","channel":"room","id":"u","data":{"n":1e-400}}`)
	if p, _ := c.publishedAndMessage(); p["offset"] != float64(1) {
		t.Errorf("1e-400: %v", p)
	}
	var out struct {
		Parsed any
		Body   string
	}
	if code, body := tn.jsCall("rt", "POST", "/api/echo", bad, &out); code != 200 || out.Parsed != nil || out.Body != string(bad) {
		t.Errorf("handler: %d %s", code, body)
	}
}

// TestConnectRecordIsBounded opens connections whose query, which the log
// records with the User-Agent and Origin, comes near and past 8 KiB: the
// first is taken and recorded whole; the second is refused with 413
// before anything is recorded (up to a request head of 1 MiB went into
// the log for anyone who connected).
func TestConnectRecordIsBounded(t *testing.T) {
	tn := startTestNode(t, nil)
	fits := "room=" + strings.Repeat("a", 7<<10)
	c := tn.dial("", fits)
	a := tn.audit("", "client="+c.id+"&type=connected")
	if len(a.Events) != 1 || a.Events[0].Event["query"].(map[string]any)["room"] != fits[len("room="):] {
		t.Fatalf("the connection's record: %v", a.Events)
	}
	before, refused := tn.audit("", "type=connected"), tn.refusals("connect_size")
	_, err := tn.tryDial("", "room="+strings.Repeat("a", 9<<10))
	if err == nil || !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "too_large") {
		t.Fatalf("a connect of over 8 KiB: %v, want 413 too_large", err)
	}
	if after := tn.audit("", "type=connected"); len(after.Events) != len(before.Events) {
		t.Fatalf("%d connections recorded, then %d", len(before.Events), len(after.Events))
	}
	if n := tn.refusals("connect_size") - refused; n != 1 {
		t.Fatalf("%v connect_size refusals counted, want 1", n)
	}
}

// TestAnAppWithABrokenAppJSONIsUnavailableEverywhere starts a server on
// an app whose app.json never read well: its WebSocket, server API, JS
// handler and files all answer 503 unavailable (they gave 500, 500, 404
// and 404), and another app is served as usual.
func TestAnAppWithABrokenAppJSONIsUnavailableEverywhere(t *testing.T) {
	tn := startTestNode(t, map[string]string{"broken": `{"limits": {"max_message_bytes": "64k"}}`, "fine": ""})
	tn.writeFiles(map[string]string{"broken/api/main.js": callerJS, "broken/public/index.html": "hi"})
	if _, err := tn.tryDial("broken", ""); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), `"code":"unavailable"`) {
		t.Errorf("WebSocket: %v, want 503 unavailable", err)
	}
	var e struct{ Code string }
	if code := tn.api("broken", testAdminKey, "GET", "/_api/channels", nil, &e); code != 503 || e.Code != "unavailable" {
		t.Errorf("server API: %d %q, want 503 unavailable", code, e.Code)
	}
	if code, body := tn.jsCall("broken", "POST", "/api/call", map[string]any{"fn": "count"}, nil); code != 503 || !strings.Contains(body, `"unavailable"`) {
		t.Errorf("JS handler: %d %s, want 503 unavailable", code, body)
	}
	if code, body := tn.request(http.DefaultClient, "broken", "", "GET", "/", nil, nil); code != 503 {
		t.Errorf("files: %d %s, want 503", code, body)
	}
	if code := tn.api("fine", testAdminKey, "GET", "/_api/channels", nil, nil); code != 200 {
		t.Errorf("another app: %d", code)
	}
}

// TestConnectRecordRedactsCredentials connects with a token and an API key
// in the query: the app's onConnect hook sees them as sent (it lets the
// connection in only with the right token), and the log's record of the
// connection keeps every parameter but their values, so the audit trail
// does not hold credentials for good.
func TestConnectRecordRedactsCredentials(t *testing.T) {
	tn := startTestNode(t, map[string]string{"hk": ""})
	tn.writeFiles(map[string]string{"hk/api/realtime.js": `exports.onConnect = (client) => client.query.token === "s3cret" && client.query.api_key === "k1";`})
	var c *client
	waitFor(t, func() bool {
		var err error
		c, err = tn.tryDial("hk", "token=s3cret&api_key=k1&room=lobby&name=ann")
		return err == nil
	})
	if _, err := tn.tryDial("hk", "token=wrong&api_key=k1"); err == nil {
		t.Fatal("the hook let a wrong token in: it did not see the query")
	}
	a := tn.audit("hk", "client="+c.id+"&type=connected")
	if len(a.Events) != 1 {
		t.Fatalf("%d records of the connection", len(a.Events))
	}
	want := map[string]any{"token": "[redacted]", "api_key": "[redacted]", "room": "lobby", "name": "ann"}
	if got := a.Events[0].Event["query"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("recorded query %v, want %v", got, want)
	}
}

// refusedByAPI publishes data to channel room of app through each of the
// server API's ways in: each must refuse it with 400 bad_request, its
// message holding why.
func refusedByAPI(t *testing.T, tn *testNode, app string, data json.RawMessage, why string) {
	t.Helper()
	for path, body := range map[string]any{
		"/_api/publish":       map[string]any{"channel": "room", "data": data},
		"/_api/publish-batch": map[string]any{"messages": []any{map[string]any{"channel": "room", "data": data}}},
		"/_api/broadcast-all": map[string]any{"data": data},
	} {
		var e struct{ Error, Code string }
		if code := tn.api(app, testAdminKey, "POST", path, body, &e); code != 400 || e.Code != "bad_request" || !strings.Contains(e.Error, why) {
			t.Errorf("%s: %d %+v, want 400 bad_request about %q", path, code, e, why)
		}
	}
}

// nothingBroadcast checks that app's channel has no history and the audit
// no broadcast of any kind.
func nothingBroadcast(t *testing.T, tn *testNode, app, channel string) {
	t.Helper()
	if h := tn.history(app, channel, ""); h.Head != 0 || len(h.Messages) != 0 {
		t.Errorf("committed: head %d, %d messages", h.Head, len(h.Messages))
	}
	if a := tn.audit(app, "type=broadcast,broadcast_all"); len(a.Events) != 0 {
		t.Errorf("%d broadcasts in the audit", len(a.Events))
	}
}

// /metrics takes the admin key (a proxy that forwards every path would
// otherwise give it to anyone); an app's key is not it. --debug-addr's
// listener, private, serves it without one.
func TestMetricsTakeTheAdminKey(t *testing.T) {
	tn := startTestNode(t, map[string]string{"keyed": `{"api_keys":{"ci":"app-key"}}`})
	for key, want := range map[string]int{"": 401, "wrong": 401, "app-key": 401, testAdminKey: 200} {
		req, _ := http.NewRequest("GET", tn.srv.URL+"/metrics", nil)
		req.Host = "keyed.localhost"
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && !strings.Contains(string(b), "fazt_ws_connections") {
			t.Errorf("/metrics with key %q: %d %.100s, want %d", key, resp.StatusCode, b, want)
		}
	}
	debug := httptest.NewServer(debugHandler())
	defer debug.Close()
	resp, err := http.Get(debug.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics on the debug address: %d", resp.StatusCode)
	}
}
