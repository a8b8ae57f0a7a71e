package ws

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// testServer is a WebSocket server over a real event log, with the
// membership projection following the log as in `fazt serve`, and a read
// poller of its own.
type testServer struct {
	t       *testing.T
	log     *events.Log
	members *projections.Membership
	srv     *Server
	http    *httptest.Server
	pl      *readPoller
	// consumer feeds members from the log; stopping it stalls the
	// membership as a projection stuck on an event would.
	consumer *projections.Consumer
}

func startTestServer(t *testing.T) *testServer {
	t.Helper()
	return startTestServerWith(t, nil)
}

// startTestServerWith starts a test server whose WebSocket server uses the
// Store that wrap makes of the log (the log itself when wrap is nil).
func startTestServerWith(t *testing.T, wrap func(*events.Log) Store) *testServer {
	t.Helper()
	return startTestServerConfig(t, Config{}, wrap)
}

// startTestServerConfig is startTestServerWith with the server's Config
// (its Logger is set here).
func startTestServerConfig(t *testing.T, cfg Config, wrap func(*events.Log) Store) *testServer {
	t.Helper()
	pl := newReadPoller()
	if pl == nil {
		t.Skip("epoll is not available")
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lg, err := events.Open(ctx, events.Config{Path: filepath.Join(t.TempDir(), "fazt.db"), Durability: events.DurabilityNormal, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	members := projections.NewMembership(Encoder{}, func(ctx context.Context, app, channel string) (uint64, string, error) {
		info, err := lg.Channel(ctx, app, channel)
		return info.Head, info.Epoch, err
	}, 0)
	consumer, err := projections.Consume(context.Background(), projections.MembershipName, lg.Subscriber(events.SubscriberConfig{}), events.Topic, members.Handle, quiet)
	if err != nil {
		t.Fatal(err)
	}

	var store Store = lg
	if wrap != nil {
		store = wrap(lg)
	}
	cfg.Logger = quiet
	srv := NewServer(cfg, store, members, apps.NewRegistry(t.TempDir()), nil)
	srv.poller = func() *readPoller { return pl }
	ts := &testServer{t: t, log: lg, members: members, srv: srv, http: httptest.NewServer(srv), pl: pl, consumer: consumer}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ts.http.Close()
		consumer.Stop()
		<-consumer.Done()
		lg.Close()
		pl.file.Close()
	})
	return ts
}

type testClient struct {
	t  *testing.T
	ws *websocket.Conn
	id string
}

func (ts *testServer) dial() *testClient {
	ts.t.Helper()
	return ts.dialWith(websocket.DefaultDialer)
}

// dialReadBuffer is dial with the client's receive buffer set to size
// bytes: a client that stops reading fills it, and then the server's
// socket, soon.
func (ts *testServer) dialReadBuffer(size int) *testClient {
	ts.t.Helper()
	return ts.dialWith(&websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nc, err := net.Dial(network, addr)
		if err == nil {
			nc.(*net.TCPConn).SetReadBuffer(size)
		}
		return nc, err
	}})
}

func (ts *testServer) dialWith(d *websocket.Dialer) *testClient {
	ts.t.Helper()
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+"/_ws", nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { ws.Close() })
	// The server's WebSocket pings go unanswered, as its JSON pings do,
	// unless a test answers them: gorilla's own answer, as it reads,
	// would make every client alive.
	ws.SetPingHandler(func(string) error { return nil })
	c := &testClient{t: ts.t, ws: ws}
	c.id = c.expect("connected")["client_id"].(string)
	return c
}

// expect reads frames until one of type typ, skipping others.
func (c *testClient) expect(typ string) map[string]any {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Fatalf("frame %s: %v", b, err)
		}
		if f["type"] == typ {
			return f
		}
	}
}

func (c *testClient) subscribe(channel string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"`+channel+`","id":"`+channel+`"}`)); err != nil {
		c.t.Fatal(err)
	}
	if f := c.expect("subscribed"); f["id"] != channel {
		c.t.Fatalf("reply %v", f)
	}
}

// anyClosing reports whether a connection of the server is closing.
func (ts *testServer) anyClosing() bool {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	for c := range ts.srv.conns {
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return true
		}
	}
	return false
}

// tracked counts the server's connections whose sockets are open.
func (ts *testServer) tracked() int {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	return len(ts.srv.conns)
}

// parked counts the connections parked in the test's poller.
func (ts *testServer) parked() int {
	ts.pl.mu.Lock()
	defer ts.pl.mu.Unlock()
	n := 0
	for _, c := range ts.pl.conns {
		if c.poll.parked {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
	}
}

// When the poller's epoll set fails, every parked connection gets its
// reader back and nothing parks again: clients keep being answered and
// served, and hang-ups are still recorded. The fault here is the set's
// descriptor closed under the poller.
func TestPollerFailureHandsConnectionsBackToReaders(t *testing.T) {
	ts := startTestServer(t)
	clients := []*testClient{ts.dial(), ts.dial(), ts.dial()}
	for _, c := range clients {
		c.subscribe("room")
	}
	waitUntil(t, "3 parked connections", func() bool { return ts.parked() == 3 })

	ts.pl.file.Close()
	waitUntil(t, "the poller to stop", func() bool {
		ts.pl.mu.Lock()
		defer ts.pl.mu.Unlock()
		return ts.pl.broken
	})
	if n := ts.parked(); n != 0 {
		t.Fatalf("%d connections still parked in a stopped poller", n)
	}

	// Each connection has a reader again: requests are answered, and
	// more than once (the reader does not park after the first).
	for _, c := range clients {
		c.subscribe("a")
		c.subscribe("b")
	}
	// A connection made after the failure is served too.
	late := ts.dial()
	late.subscribe("room")
	late.subscribe("c")
	if n := ts.parked(); n != 0 {
		t.Fatalf("%d connections parked after the poller stopped", n)
	}

	// Deliveries go on.
	evs, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "room", Data: json.RawMessage(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	offset := float64(evs[0].Fact.(*domain.MessageBroadcast).Offset)
	for _, c := range append(clients, late) {
		if f := c.expect("message"); f["offset"] != offset {
			t.Fatalf("message %v, want offset %v", f, offset)
		}
	}

	// A client that hangs up is noticed by its reader and recorded.
	clients[0].ws.UnderlyingConn().Close()
	expectEndRecorded(t, ts, clients[0].id, domain.ReasonConnectionLost)
}

// expectEndRecorded waits for the log to have client's end, and checks
// its reason.
func expectEndRecorded(t *testing.T, ts *testServer, client, reason string) {
	t.Helper()
	waitUntil(t, "the end of "+client+" to be recorded", func() bool {
		evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if d, ok := ev.Fact.(*domain.ClientDisconnected); ok {
				if d.Reason != reason {
					t.Fatalf("%s ended with %q; want %q", client, d.Reason, reason)
				}
				return true
			}
		}
		return false
	})
}
