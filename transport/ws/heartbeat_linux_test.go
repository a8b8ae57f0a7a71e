package ws

import (
	"context"
	"encoding/json"
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
