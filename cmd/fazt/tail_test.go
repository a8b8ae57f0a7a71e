package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// frontDoor is a fixed address in front of whichever node is current, so
// that a client can reconnect to the "same server" after a restart.
type frontDoor struct {
	srv *httptest.Server
	h   atomic.Pointer[http.Handler]
}

func newFrontDoor(t *testing.T, h http.Handler) *frontDoor {
	f := &frontDoor{}
	f.set(h)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*f.h.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *frontDoor) set(h http.Handler) { f.h.Store(&h) }

func tailOffsets(t *testing.T, out string) []uint64 {
	t.Helper()
	return lineOffsets(t, jsonLines(t, out))
}

// startTail runs `fazt tail` with args until stop, which fails the test
// if tail ends with an error or does not end within 10s.
func startTail(t *testing.T, args ...string) (out, errs *testutil.SyncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errs = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"tail"}, args...), out, errs) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tail ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("tail did not stop within 10s of its context ending")
		}
	}
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	return out, errs, stop
}

func TestPublishAndTailResumeAcrossRestart(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	front := newFrontDoor(t, tn.node.handler)
	server := strings.TrimPrefix(front.srv.URL, "http://")
	pub := func(data string) string {
		t.Helper()
		return mustCLI(t, "publish", "--server", server, "--admin-key", testAdminKey, "--app", "chat", "--channel", "room", "--data", data)
	}
	for _, d := range []string{`{"n":1}`, `{"n":2}`, `"three"`} {
		pub(d)
	}
	if out := pub(`{"n":4}`); !strings.Contains(out, "published to chat/room: offset 4") {
		t.Fatalf("publish printed %q", out)
	}

	out, errs, stop := startTail(t, "--server", front.srv.URL, "--app", "chat", "--channel", "room", "--offset", "1", "--json")
	waitFor(t, func() bool { return len(tailOffsets(t, out.String())) == 3 })
	tn.publish("chat", "room", 5)
	tn.publish("chat", "other", "another channel")
	waitFor(t, func() bool { return len(tailOffsets(t, out.String())) == 4 })

	// A graceful restart: the tail is disconnected (1001), reconnects to
	// the new node and resumes after offset 5, replaying what it missed.
	tn2 := tn.restart()
	tn2.publish("chat", "room", 6)
	front.set(tn2.node.handler)
	tn2.publish("chat", "room", 7)
	waitFor(t, func() bool { return len(tailOffsets(t, out.String())) == 6 })
	tn2.publish("chat", "room", 8)
	waitFor(t, func() bool { return len(tailOffsets(t, out.String())) == 7 })
	stop()
	lines := jsonLines(t, out.String())
	if got := lineOffsets(t, lines); !slices.Equal(got, seqRange(2, 8)) {
		t.Fatalf("tail printed offsets %v, want 2..8 once each", got)
	}
	if lines[0]["data"].(map[string]any)["n"] != float64(2) || lines[1]["data"] != "three" {
		t.Errorf("tail data: %v", lines[:2])
	}
	// replay is in every line: true for the history, false once live.
	if lines[0]["replay"] != true || lines[3]["replay"] != false {
		t.Errorf("tail replay fields: %v, %v; want true, then false", lines[0]["replay"], lines[3]["replay"])
	}
	if !strings.Contains(errs.String(), "reconnecting") || !strings.Contains(errs.String(), "after offset 5") {
		t.Errorf("tail stderr: %q", errs.String())
	}

	// --count ends the tail by itself; the table form prints offset and data.
	tout := mustCLI(t, "tail", "--server", server, "--app", "chat", "--channel", "room", "--offset", "6", "--count", "2")
	if rows := strings.Split(strings.TrimSpace(tout), "\n"); len(rows) != 2 || !strings.HasPrefix(rows[0], "7\t") || !strings.HasSuffix(rows[1], "\t8") {
		t.Errorf("tail --count 2 printed %q", tout)
	}

	// Failures are one line and a non-zero exit.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--server", server, "--admin-key", "wrong", "--channel", "room", "--data", "1"}, "401"},
		{[]string{"publish", "--server", server, "--admin-key", testAdminKey, "--channel", "room", "--data", "not json"}, "not valid JSON"},
		{[]string{"publish", "--server", server, "--admin-key", testAdminKey, "--app", "nope", "--channel", "room", "--data", "1"}, "404"},
		{[]string{"publish", "--server", "127.0.0.1:1", "--admin-key", testAdminKey, "--channel", "room", "--data", "1"}, "not reachable"},
		{[]string{"publish", "--server", server, "--admin-key", "", "--channel", "room", "--data", "1"}, "no key"},
		{[]string{"tail", "--server", server, "--app", "nope", "--channel", "room"}, "refused"},
		{[]string{"tail", "--server", "127.0.0.1:1", "--channel", "room", "--retries", "1"}, "gave up"},
		// An app name that no app can have: an empty answer would read as
		// a channel with nothing in it.
		{[]string{"history", "--db", "none.db", "--app", "Chat", "--channel", "room"}, "--app"},
		{[]string{"members", "--db", "none.db", "--app", "Chat", "--channel", "room"}, "--app"},
		{[]string{"audit", "--db", "none.db", "--app", "Chat"}, "--app"},
		{[]string{"stats", "--db", "none.db", "--app", "Chat"}, "--app"},
	} {
		_, _, err := cli(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("fazt %v: error %v, want one line with %q", tc.args, err, tc.want)
		}
	}
}

// A call the server does not answer in time is reported as one that may
// have been carried out, not as an unreachable server: a publish may have
// committed, and a retry would send it twice.
func TestAPICallThatTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a server that takes the request and never answers
	}))
	defer srv.Close()
	defer close(release)
	old := apiTimeout
	apiTimeout = 300 * time.Millisecond
	defer func() { apiTimeout = old }()
	_, _, err := cli(t, "publish", "--server", strings.TrimPrefix(srv.URL, "http://"), "--admin-key", testAdminKey, "--channel", "room", "--data", "1")
	if err == nil || !strings.Contains(err.Error(), "no answer from") || !strings.Contains(err.Error(), "within 300ms") ||
		!strings.Contains(err.Error(), "may still have been carried out") || strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("publish to a server that does not answer: %v", err)
	}
}

// A refusal that may pass (the app is at its connection limit) is waited
// out: tail says so, reconnects, and follows the channel once a
// connection frees up.
func TestTailWaitsOutAFullApp(t *testing.T) {
	tn := startTestNode(t, map[string]string{"full": `{"limits":{"max_connections":1}}`})
	tn.publish("full", "room", 1)
	held := tn.dial("full", "")

	out, errs, stop := startTail(t, "--server", tn.srv.URL, "--app", "full", "--channel", "room", "--offset", "0", "--json", "--retries", "50")
	waitFor(t, func() bool {
		return strings.Contains(errs.String(), "maximum of 1 connections; reconnecting in")
	})
	if out.String() != "" {
		t.Fatalf("tail printed %q while the app was full", out.String())
	}
	held.conn.Close()
	waitFor(t, func() bool { return slices.Equal(tailOffsets(t, out.String()), []uint64{1}) })
	tn.publish("full", "room", 2)
	waitFor(t, func() bool { return slices.Equal(tailOffsets(t, out.String()), []uint64{1, 2}) })
	stop()
}

// scriptedServer answers each WebSocket connection with script(n, conn),
// n counting connections from 1, and records the subscribe frames it got:
// a stand-in for answers the real server gives only under conditions a
// test cannot set up, such as an unavailable log.
type scriptedServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	subs []map[string]any
}

func newScriptedServer(t *testing.T, script func(n int, c *websocket.Conn)) *scriptedServer {
	s := &scriptedServer{}
	var conns atomic.Int32
	up := websocket.Upgrader{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var sub map[string]any
		if err := c.ReadJSON(&sub); err != nil {
			return
		}
		s.mu.Lock()
		s.subs = append(s.subs, sub)
		s.mu.Unlock()
		script(int(conns.Add(1)), c)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scriptedServer) subscribes() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subs)
}

// runTail runs `fazt tail` with args to its end, within 10 s.
func runTail(t *testing.T, args ...string) (out, errs string, err error) {
	t.Helper()
	var o testutil.SyncBuffer
	errs, err = runTailTo(t, &o, args...)
	return o.String(), errs, err
}

// runTailTo is runTail writing to out.
func runTailTo(t *testing.T, out io.Writer, args ...string) (errs string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var e testutil.SyncBuffer
	err = run(ctx, append([]string{"tail"}, args...), out, &e)
	if ctx.Err() != nil {
		t.Fatalf("tail did not end within 10 s; stderr: %s", e.String())
	}
	return e.String(), err
}

// A subscription refused for a reason that may pass (the log is
// unavailable) is tried again on a new connection, from the same offset,
// and the tail goes on from there.
func TestTailRetriesATransientRefusal(t *testing.T) {
	s := newScriptedServer(t, func(n int, c *websocket.Conn) {
		if n == 1 {
			c.WriteJSON(map[string]any{"type": "error", "code": "unavailable", "error": "event log unavailable", "channel": "room"})
			c.ReadMessage() // until the client hangs up
			return
		}
		c.WriteJSON(map[string]any{"type": "subscribed", "channel": "room", "offset": 1, "epoch": "e1", "replay": 1})
		c.WriteJSON(map[string]any{"type": "message", "channel": "room", "offset": 1, "epoch": "e1", "timestamp": 1700000000000, "data": map[string]string{"text": "hi"}, "replay": true})
		c.ReadMessage()
	})
	out, errs, err := runTail(t, "--server", s.srv.URL, "--channel", "room", "--offset", "0", "--count", "1", "--json", "--retries", "3")
	if err != nil {
		t.Fatalf("tail: %v; stderr: %s", err, errs)
	}
	if !strings.Contains(errs, "server refused the subscription (unavailable): event log unavailable; reconnecting in 100ms, resuming after offset 0") {
		t.Errorf("stderr does not say it retries: %q", errs)
	}
	if got := tailOffsets(t, out); !slices.Equal(got, []uint64{1}) {
		t.Errorf("printed offsets %v, want [1]", got)
	}
	subs := s.subscribes()
	if len(subs) != 2 {
		t.Fatalf("%d subscribes, want 2: %v", len(subs), subs)
	}
	for i, sub := range subs {
		if sub["channel"] != "room" || sub["offset"] != float64(0) {
			t.Errorf("subscribe %d is %v, want channel room from offset 0", i+1, sub)
		}
	}
}

// A refusal that would only repeat (forbidden) ends the tail at once with
// the server's reason, without reconnecting.
func TestTailStopsAtAPermanentRefusal(t *testing.T) {
	s := newScriptedServer(t, func(n int, c *websocket.Conn) {
		c.WriteJSON(map[string]any{"type": "error", "code": "forbidden", "error": "not allowed here", "channel": "room"})
		c.ReadMessage()
	})
	_, errs, err := runTail(t, "--server", s.srv.URL, "--channel", "room", "--retries", "3")
	if err == nil || !strings.Contains(err.Error(), "server refused the subscription (forbidden): not allowed here") {
		t.Fatalf("tail ended with %v, want the refusal; stderr: %s", err, errs)
	}
	if strings.Contains(errs, "reconnecting") {
		t.Errorf("tail reconnected after a permanent refusal: %q", errs)
	}
	if n := len(s.subscribes()); n != 1 {
		t.Errorf("%d subscribes, want 1", n)
	}
}

// TestTailReconnectsToASilentServer: a server that keeps the socket open
// but stops answering (stopped, wedged) is taken for lost after a silence,
// and the tail reconnects and resumes; it waited on its read for good.
func TestTailReconnectsToASilentServer(t *testing.T) {
	oldPing, oldSilence := tailPing, tailSilence
	// The silence also bounds the first connection's wait for its first
	// frames: wide enough for a loaded race run.
	tailPing, tailSilence = 300*time.Millisecond, 2*time.Second
	defer func() { tailPing, tailSilence = oldPing, oldSilence }()
	var pings atomic.Int64
	s := newScriptedServer(t, func(n int, c *websocket.Conn) {
		off := n // one message a connection: 1, then 2
		c.WriteJSON(map[string]any{"type": "subscribed", "channel": "room", "offset": off - 1, "epoch": "e1", "replay": 1})
		c.WriteJSON(map[string]any{"type": "message", "channel": "room", "offset": off, "epoch": "e1", "timestamp": 1700000000000, "data": off, "replay": true})
		for { // silent: takes the tail's pings, answers nothing
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if strings.Contains(string(msg), `"ping"`) {
				pings.Add(1)
			}
		}
	})
	out, errs, err := runTail(t, "--server", s.srv.URL, "--channel", "room", "--offset", "0", "--count", "2", "--json", "--retries", "3")
	if err != nil {
		t.Fatalf("tail: %v; stderr: %s", err, errs)
	}
	if got := tailOffsets(t, out); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("printed offsets %v, want [1 2]", got)
	}
	if !strings.Contains(errs, "connection lost") {
		t.Errorf("stderr does not say the connection was lost: %q", errs)
	}
	if pings.Load() == 0 {
		t.Errorf("the tail sent no ping in its silence")
	}
}

// TestTailRefusesNegativeCounts: --count -1 followed forever, and
// --retries -1 gave up "after -1 failed reconnects".
func TestTailRefusesNegativeCounts(t *testing.T) {
	for _, flags := range [][]string{{"--count", "-1"}, {"--retries", "-1"}} {
		_, _, err := cli(t, append([]string{"tail", "--server", "127.0.0.1:1", "--channel", "room"}, flags...)...)
		if err == nil || !strings.Contains(err.Error(), "must be 0 or more") {
			t.Errorf("tail %v: %v", flags, err)
		}
	}
}

// TestTailFollowsAPrivateChannel: with the app's secret, tail signs its
// own token for a private channel, bound to the channel and the app, and
// when the token expires (the server ends the subscription) subscribes
// again with a fresh one from the last offset printed: nothing is missed.
// Without a secret it refuses at once, saying what it needs.
func TestTailFollowsAPrivateChannel(t *testing.T) {
	defer func(d time.Duration) { tailTokenLife = d }(tailTokenLife)
	tailTokenLife = 2 * time.Second
	const secret = "tail-secret"
	tn := startTestNode(t, map[string]string{"vault": `{"secret":"` + secret + `"}`})
	tn.publish("vault", "private-feed", 1)
	go func() {
		time.Sleep(3500 * time.Millisecond) // past the first token's expiry, in whole seconds
		tn.publish("vault", "private-feed", 2)
	}()
	out, errs, err := runTail(t, "--server", tn.srv.URL, "--app", "vault", "--channel", "private-feed", "--secret", secret, "--offset", "0", "--count", "2", "--json")
	if err != nil || !slices.Equal(tailOffsets(t, out), []uint64{1, 2}) {
		t.Fatalf("tail: %v\n%s\n%s", err, out, errs)
	}
	var reasons []string
	for _, e := range tn.audit("vault", "type=unsubscribed&channel=private-feed").Events {
		reasons = append(reasons, fmt.Sprint(e.Event["reason"]))
	}
	if !slices.Contains(reasons, "token_expired") {
		t.Fatalf("the token did not expire during the tail: %v", reasons)
	}
	if _, _, err := cli(t, "tail", "--server", tn.srv.URL, "--app", "vault", "--channel", "private-feed"); err == nil || !strings.Contains(err.Error(), "--secret") {
		t.Fatalf("tail of a private channel without a secret: %v", err)
	}
}

// TestTailSignsForTheAppTheServerSees: the token names the app the server
// takes from the Host, which a server address may carry itself
// (chat.example.com, with --app left at default), and the connection's
// client id.
func TestTailSignsForTheAppTheServerSees(t *testing.T) {
	for _, tc := range []struct{ server, app, want string }{
		{"http://vault.localhost:8080", "default", "vault"},
		{"127.0.0.1:8080", "vault", "vault"},
		{"127.0.0.1:8080", "default", "default"},
	} {
		_, host, err := serverURL(tc.server, tc.app)
		if err != nil {
			t.Fatal(err)
		}
		tl := &tailer{channel: "private-feed", secret: "s", host: host, clientID: "c1", last: -1}
		sub, err := tl.subscribeFrame()
		if err != nil {
			t.Fatal(err)
		}
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(sub["token"].(string), claims, func(*jwt.Token) (any, error) { return []byte("s"), nil }); err != nil {
			t.Fatal(err)
		}
		if claims["app"] != tc.want || claims["client"] != "c1" || claims["channel"] != "private-feed" {
			t.Errorf("%s --app %s: claims %v, want app %s", tc.server, tc.app, claims, tc.want)
		}
	}
}

// TestTailOfAPrivateChannelSaysWhyItWasRefused: at the app's most
// connections the server answers the upgrade with a disconnect frame
// saying why, which tail, reading connected first for a private channel,
// passes on.
func TestTailOfAPrivateChannelSaysWhyItWasRefused(t *testing.T) {
	tn := startTestNode(t, map[string]string{"vault": `{"secret":"s","limits":{"max_connections":1}}`})
	tn.dial("vault", "") // the only connection the app takes
	_, _, err := runTail(t, "--server", tn.srv.URL, "--app", "vault", "--channel", "private-feed", "--secret", "s", "--retries", "0")
	if err == nil || !strings.Contains(err.Error(), "server refused the connection") || !strings.Contains(err.Error(), "maximum") {
		t.Fatalf("tail at the app's most connections: %v", err)
	}
}

// fullAfter takes n writes, then fails every one after.
type fullAfter struct {
	testutil.SyncBuffer
	n int
}

func (w *fullAfter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("no space left on device")
	}
	w.n--
	return w.SyncBuffer.Write(p)
}

// A message the tail could not write (an archive on a full disk) ends it
// there, with an error that says where to resume: it is not counted as
// printed and passed over, as it was.
func TestTailEndsAtAMessageItCouldNotWrite(t *testing.T) {
	s := newScriptedServer(t, func(n int, c *websocket.Conn) {
		c.WriteJSON(map[string]any{"type": "subscribed", "channel": "room", "offset": 3, "epoch": "e1", "replay": 3})
		for o := 1; o <= 3; o++ {
			c.WriteJSON(map[string]any{"type": "message", "channel": "room", "offset": o, "epoch": "e1", "timestamp": 1700000000000, "data": o, "replay": true})
		}
		c.ReadMessage()
	})
	for _, format := range []string{"--json", "--json=false"} {
		out := &fullAfter{n: 1}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var errs testutil.SyncBuffer
		err := run(ctx, []string{"tail", "--server", s.srv.URL, "--channel", "room", "--offset", "0", "--count", "3", "--retries", "3", format}, out, &errs)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "write offset 2: no space left on device (resume with --offset 1, in epoch e1)") {
			t.Errorf("tail %s into a full disk: %v; stderr %s", format, err, errs.String())
		}
		if n := strings.Count(out.String(), "\n"); n != 1 {
			t.Errorf("tail %s wrote %d lines, want 1: %q", format, n, out.String())
		}
	}
	if n := len(s.subscribes()); n != 2 {
		t.Errorf("%d subscribes for two runs, want 2: a failed write is not reconnected from", n)
	}
	// The epoch of a channel that had no history when subscribed comes
	// with its first message, which is the one not written.
	fresh := newScriptedServer(t, func(n int, c *websocket.Conn) {
		c.WriteJSON(map[string]any{"type": "subscribed", "channel": "room", "offset": 0, "epoch": ""})
		c.WriteJSON(map[string]any{"type": "message", "channel": "room", "offset": 1, "epoch": "e2", "timestamp": 1700000000000, "data": 1})
		c.ReadMessage()
	})
	errs, err := runTailTo(t, &fullAfter{}, "--server", fresh.srv.URL, "--channel", "room", "--count", "1")
	if err == nil || !strings.Contains(err.Error(), "write offset 1: no space left on device (resume with --offset 0, in epoch e2)") {
		t.Errorf("tail of a new channel into a full disk: %v; stderr %s", err, errs)
	}
}
