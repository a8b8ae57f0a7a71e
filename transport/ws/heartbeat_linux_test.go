package ws

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
)

// slowSubscribe is the real log, whose commits of subscriptions take
// wait, as a slow disk or a long hook might.
type slowSubscribe struct {
	*events.Log
	wait time.Duration
}

func (s *slowSubscribe) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	if _, ok := facts[0].(*domain.ChannelSubscribed); ok {
		time.Sleep(s.wait)
	}
	return s.Log.Append(ctx, facts...)
}

// The settings of these tests: a heartbeat of 1 s, a pong timeout of
// 500 ms. The first ping goes out about 1 s after the connection is made.
var quickBeat = Config{Heartbeat: time.Second, PongTimeout: 500 * time.Millisecond}

// A client that answers the ping while the server is still handling its
// request keeps its connection: the answer waits behind the request,
// unread, and the heartbeat looks again once the reader is free. Before,
// a request longer than the pong timeout closed it with 4002, the client
// blamed for the server's wait. The request (1.6 s) spans the ping, ends
// past the pong timeout from it (where the connection was closed), and
// within a heartbeat of it.
func TestAPingAnsweredDuringASlowRequestKeepsTheConnection(t *testing.T) {
	ts := startTestServerConfig(t, quickBeat, func(l *events.Log) Store { return &slowSubscribe{l, 1600 * time.Millisecond} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	// Answer every ping, until the subscribe's answer and two more pings
	// have come: about 3 s.
	pings, subscribed := 0, false
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for pings < 3 || !subscribed {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d pings, subscribed %v: %v", pings, subscribed, err)
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		switch f["type"] {
		case "ping":
			pings++
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong"}`)); err != nil {
				t.Fatal(err)
			}
		case "subscribed":
			subscribed = true
		case "disconnect":
			t.Fatalf("disconnected after %d pings, subscribed %v: %v", pings, subscribed, f)
		}
	}
}

// untilFrame reads what c gets, answering nothing, until a frame of type
// typ, and returns it and when it came.
func untilFrame(t *testing.T, c *testClient, typ string) (map[string]any, time.Time) {
	t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("no %s: %v", typ, err)
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		if f["type"] == typ {
			return f, time.Now()
		}
	}
}

// untilPing is untilFrame of the next ping.
func untilPing(t *testing.T, c *testClient) time.Time {
	t.Helper()
	_, at := untilFrame(t, c, "ping")
	return at
}

// expectHeartbeatClose is untilFrame of the server's disconnect, which
// must be 4002.
func expectHeartbeatClose(t *testing.T, c *testClient) time.Time {
	t.Helper()
	f, at := untilFrame(t, c, "disconnect")
	if f["code"] != float64(4002) {
		t.Fatalf("disconnect %v, want 4002", f)
	}
	return at
}

// A client that answers nothing, whose request the server was still
// handling when the ping went out, is closed a pong timeout after the
// request ends (about 1 s after the ping, as the request, of 1.5 s, ends
// about 500 ms after it): not at the pong timeout from the ping (500 ms),
// as if the reader had been free, nor never, as once it was.
func TestASilentClientAfterASlowRequestIsClosed(t *testing.T) {
	ts := startTestServerConfig(t, quickBeat, func(l *events.Log) Store { return &slowSubscribe{l, 1500 * time.Millisecond} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	ping := untilPing(t, c)
	if took := expectHeartbeatClose(t, c).Sub(ping); took < 750*time.Millisecond {
		t.Errorf("closed %s after the ping: the wait behind the request was not made", took)
	}
}

// A request that outlasts a heartbeat from the ping (a commit stuck for
// good) holds the heartbeat no longer: the connection is closed with
// 4002, about a heartbeat after the ping, rather than left open with no
// answer to come (the request takes 7 s: closed at its end, that would be
// 6.5 s after the ping; at the pong timeout, 500 ms).
func TestARequestPastAHeartbeatEndsTheWait(t *testing.T) {
	ts := startTestServerConfig(t, quickBeat, func(l *events.Log) Store { return &slowSubscribe{l, 7 * time.Second} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	ping := untilPing(t, c)
	took := expectHeartbeatClose(t, c).Sub(ping)
	if took < 750*time.Millisecond || took > 5*time.Second {
		t.Errorf("closed %s after the ping; want about a heartbeat (1 s), not the pong timeout, nor the request's end", took)
	}
}

// A client far behind on a long replay answers the JSON ping only once its
// handlers have gone through all that came before it; the server's
// WebSocket ping goes out ahead of what is queued, and a browser answers
// it itself as it reads its socket, which it does at once, whatever its
// page's code is doing. This client is such a browser: it reads at once
// (answering WebSocket pings as gorilla does) and handles 3000 messages of
// 2 KB at about 1 ms each, answering the JSON pings as it gets to them, as
// fazt.js does, over heartbeats of 1 s and pong timeouts of 500 ms: it
// gets all of them and stays. Before, it was closed (4002) at the first
// pong timeout, and a browser replaying a long history with slow handlers
// reconnected, and replayed again, for ever.
func TestAClientBehindOnALongReplayOutlivesTheHeartbeat(t *testing.T) {
	ts := startTestServerConfig(t, quickBeat, nil)
	const n = 3000
	appendMessages(t, ts, "long", n, `"`+strings.Repeat("r", 2000)+`"`)
	c := ts.dial()
	c.ws.SetPingHandler(nil) // gorilla's: a pong for each WebSocket ping, as it reads
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"long","offset":0}`)); err != nil {
		t.Fatal(err)
	}
	frames := make(chan []byte, 2*n)
	var readErr error
	go func() {
		defer close(frames)
		c.ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
		for {
			_, b, err := c.ws.ReadMessage()
			if err != nil {
				readErr = err
				return
			}
			frames <- b
		}
	}()
	got := 0
	for b := range frames {
		var f struct{ Type, ID string }
		json.Unmarshal(b, &f)
		switch f.Type {
		case "message":
			got++
			time.Sleep(time.Millisecond)
		case "ping":
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong"}`)); err != nil {
				t.Fatalf("after %d of %d messages: %v", got, n, err)
			}
		case "pong":
			if f.ID == "after" && got == n {
				return // still connected once all is handled
			}
		case "disconnect":
			t.Fatalf("after %d of %d messages: %s", got, n, b)
		}
		if got == n && f.Type == "message" {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":"after"}`)); err != nil {
				t.Fatalf("after all %d messages: %v", n, err)
			}
		}
	}
	t.Fatalf("after %d of %d messages: %v", got, n, readErr)
}

// A client that answers the heartbeat's WebSocket pings (as browsers do)
// and sends nothing else stays, and its connection stays parked between
// heartbeats: the pong is taken without a reader waiting on for a data
// frame. Before, each pong woke a reader that gorilla held until the
// client's next message, for good for a client that only listens: a
// goroutine for every idle connection after its first heartbeat. A pong
// that comes in two parts is waited for, as gorilla would, and taken too.
func TestAPongParksTheConnectionAgain(t *testing.T) {
	ts := startTestServerConfig(t, quickBeat, nil)
	c := ts.dial()
	sc := ts.onlyConn(t)
	waitUntil(t, "the connection parked", func() bool { return ts.parked() == 1 })

	// A pong of the client's own, in two parts (its header, then its
	// mask), before anything else reads or writes on the client's side.
	heard := sc.inbound.Load()
	raw := c.ws.UnderlyingConn()
	if _, err := raw.Write([]byte{0x8a, 0x80}); err != nil { // masked, empty
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := raw.Write([]byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the pong in two parts", func() bool { return sc.inbound.Load() > heard })
	waitUntil(t, "the connection parked after it", func() bool { return ts.parked() == 1 })

	// gorilla's answers to the heartbeat's pings, as it reads.
	c.ws.SetPingHandler(nil)
	c.ws.SetReadDeadline(time.Time{})
	go func() {
		for {
			if _, _, err := c.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	heard = sc.inbound.Load()
	waitUntil(t, "a pong", func() bool { return sc.inbound.Load() > heard })
	waitUntil(t, "the connection parked after the pong", func() bool { return ts.parked() == 1 })
	// Past three heartbeats, answered by pongs alone: still open.
	time.Sleep(3 * quickBeat.Heartbeat)
	if ts.tracked() != 1 || ts.anyClosing() {
		t.Fatal("a client that answers WebSocket pings was closed")
	}
	waitUntil(t, "the connection parked after the pongs", func() bool { return ts.parked() == 1 })
}
