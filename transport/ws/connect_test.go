package ws_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	jsrt "github.com/fazt-realtime/fazt/transport/js"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// dialed is the outcome of a dial.
type dialed struct {
	c   *websocket.Conn
	err error
}

// stalledServer serves the default app, whose onDisconnect broadcasts the
// client and reason to "left", over a real log and JS engine, with a
// membership projection that never runs: a connection's event commits but
// is never applied. It dials, and returns once the connection's event is
// committed; the upgrade is answered only with `connected` or a close, so
// the dial is still waiting then: its outcome comes on done, and answer
// waits for it (on the test's goroutine).
func stalledServer(t *testing.T, applyTimeout time.Duration) (log *events.Log, srv *ws.Server, done <-chan dialed, answer func() *websocket.Conn) {
	ctx := context.Background()
	dir := t.TempDir()
	appDir := filepath.Join(dir, "apps", domain.DefaultApp, "api")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `exports.onDisconnect = function (client, reason) {
  fazt.realtime.broadcast("left", { client: client.id, reason: reason });
};`
	if err := os.WriteFile(filepath.Join(appDir, "realtime.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := events.Open(ctx, events.Config{Path: filepath.Join(dir, "fazt.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	members := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	registry := apps.NewRegistry(filepath.Join(dir, "apps"))
	srv = ws.NewServer(ws.Config{ApplyTimeout: applyTimeout}, log, members, registry,
		jsrt.New(jsrt.Config{HookTimeout: 10 * time.Second}, log, members, registry))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ch := make(chan dialed, 1)
	go func() {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/_ws", nil)
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
		ch <- dialed{c, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); log.Head() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the connection's event not committed within 10s")
		}
	}
	answer = func() *websocket.Conn {
		t.Helper()
		select {
		case d := <-ch:
			if d.err != nil {
				t.Fatalf("dial: %v", d.err)
			}
			return d.c
		case <-time.After(30 * time.Second):
			t.Fatal("upgrade not answered within 30s")
			return nil
		}
	}
	return log, srv, ch, answer
}

// shutdown stops srv, which must wait for the connection being set up.
func shutdown(t *testing.T, srv *ws.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// expectClose reads the one frame the connection gets: a close.
func expectClose(t *testing.T, c *websocket.Conn, code int, text string) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, frame, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || ce.Text != text {
		t.Fatalf("first read: frame %q, err %v; want close %d %q", frame, err, code, text)
	}
}

// expectEnded checks that the log has the connection, its end with
// reason, and onDisconnect's broadcast, in that order.
func expectEnded(t *testing.T, log *events.Log, reason string) {
	evs, err := log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("events: %d, want client.connected.v1, client.disconnected.v1, message.broadcast.v1: %+v", len(evs), evs)
	}
	conn, ok := evs[0].Fact.(*domain.ClientConnected)
	if !ok {
		t.Fatalf("first event %T, want ClientConnected", evs[0].Fact)
	}
	disc, ok := evs[1].Fact.(*domain.ClientDisconnected)
	if !ok || disc.Client != conn.Client || disc.Reason != reason {
		t.Fatalf("second event %#v, want %s disconnected with %s", evs[1].Fact, conn.Client, reason)
	}
	mb, ok := evs[2].Fact.(*domain.MessageBroadcast)
	want := `{"client":"` + conn.Client + `","reason":"` + reason + `"}`
	if !ok || mb.Channel != "left" || string(mb.Data) != want {
		t.Fatalf("third event %#v, want onDisconnect's broadcast %s", evs[2].Fact, want)
	}
}

// A connection whose client.connected.v1 commits but is not applied in
// time is closed with 1011, and its session is ended in the log with
// reason server_error and told to onDisconnect, rather than left open
// until a restart. A shutdown meanwhile waits for that to be written.
func TestConnectNotAppliedEndsTheSession(t *testing.T) {
	log, srv, _, answer := stalledServer(t, 200*time.Millisecond)
	expectClose(t, answer(), websocket.CloseInternalServerErr, "connection setup timed out")
	shutdown(t, srv)
	expectEnded(t, log, domain.ReasonServerError)
}

// A shutdown while a connection waits for its event to be applied ends
// the wait: the connection is closed with 1001 and recorded as ended by
// the shutdown, before Shutdown returns, however long the wait could have
// been.
func TestShutdownEndsAConnectionBeingSetUp(t *testing.T) {
	log, srv, _, answer := stalledServer(t, time.Hour)
	// The event is committed and not applied: the connection is being set
	// up, and its client has no open WebSocket yet.
	shutdown(t, srv)
	expectEnded(t, log, domain.ReasonServerShutdown)
	c := answer()
	expectClose(t, c, websocket.CloseGoingAway, "server shutdown")

	// An upgrade after the shutdown is told why, with 4002, and is not
	// counted as refused by a limit.
	refused := connectionRefusals(t)
	late, _, err := websocket.DefaultDialer.Dial("ws://"+c.RemoteAddr().String()+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, b, err := late.ReadMessage(); err != nil || !strings.Contains(string(b), "server is shutting down") {
		t.Fatalf("upgrade after the shutdown got %s, %v", b, err)
	}
	if _, _, err := late.ReadMessage(); !websocket.IsCloseError(err, 4002) {
		t.Fatalf("upgrade after the shutdown closed with %v, want 4002", err)
	}
	if n := connectionRefusals(t) - refused; n != 0 {
		t.Fatalf("%v connection refusals counted for a shutdown", n)
	}
}

// connectionRefusals reads fazt_limit_refusals_total{limit="connections"}
// from the process's metrics: 0 before the first.
func connectionRefusals(t *testing.T) float64 {
	t.Helper()
	return testutil.LimitRefusals(testutil.Metrics(), "connections")
}

// The upgrade's answer waits for the session to be recorded and applied:
// it goes out in one write with `connected` (or the close that ends a
// failed setup), so a client never holds an open WebSocket that the
// server has not recorded.
func TestUpgradeIsAnsweredWithConnected(t *testing.T) {
	_, srv, done, answer := stalledServer(t, time.Hour)
	select {
	case d := <-done:
		t.Fatalf("the upgrade was answered (%v) before the connection's event was applied", d.err)
	case <-time.After(200 * time.Millisecond):
	}
	shutdown(t, srv)
	expectClose(t, answer(), websocket.CloseGoingAway, "server shutdown")
}
