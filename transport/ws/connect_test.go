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
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	jsrt "github.com/fazt-realtime/fazt/transport/js"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// A connection whose client.connected.v1 commits but is never applied (the
// membership projection is stalled: here it is never started) is closed
// with 1011, and its session is ended in the log with reason server_error
// and told to onDisconnect, rather than left open until a restart; a
// shutdown meanwhile waits for that.
func TestConnectNotAppliedEndsTheSession(t *testing.T) {
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
	defer log.Close()
	members := projections.NewMembership(ws.Encoder{}, func(context.Context, string, string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	registry := apps.NewRegistry(filepath.Join(dir, "apps"))
	srv := ws.NewServer(ws.Config{ApplyTimeout: 200 * time.Millisecond}, log, members, registry,
		jsrt.New(jsrt.Config{}, log, members, registry))
	hs := httptest.NewServer(srv)
	defer hs.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The upgrade is answered before the event is appended: the connection
	// is being set up. Shutdown waits for it, so its events are all in the
	// log when Shutdown returns.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The disconnection, then onDisconnect's broadcast.
	evs, err := log.Events(ctx, domain.AuditQuery{App: domain.DefaultApp})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, frame, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr || ce.Text != "connection setup timed out" {
		t.Fatalf("first read: frame %q, err %v; want close 1011", frame, err)
	}
	if len(evs) != 3 {
		t.Fatalf("events: %d, want client.connected.v1, client.disconnected.v1, message.broadcast.v1: %+v", len(evs), evs)
	}
	conn, ok := evs[0].Fact.(*domain.ClientConnected)
	if !ok {
		t.Fatalf("first event %T, want ClientConnected", evs[0].Fact)
	}
	disc, ok := evs[1].Fact.(*domain.ClientDisconnected)
	if !ok || disc.Client != conn.Client || disc.Reason != domain.ReasonServerError {
		t.Fatalf("second event %#v, want %s disconnected with %s", evs[1].Fact, conn.Client, domain.ReasonServerError)
	}
	mb, ok := evs[2].Fact.(*domain.MessageBroadcast)
	want := `{"client":"` + conn.Client + `","reason":"server_error"}`
	if !ok || mb.Channel != "left" || string(mb.Data) != want {
		t.Fatalf("third event %#v, want onDisconnect's broadcast %s", evs[2].Fact, want)
	}
}
