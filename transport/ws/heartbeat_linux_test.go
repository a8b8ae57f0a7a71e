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

// A client that answers the ping while the server is still handling its
// request keeps its connection: the answer waits behind the request,
// unread, and the heartbeat looks again once the reader is free. Before,
// a request longer than the pong timeout closed it with 4002, the client
// blamed for the server's wait.
func TestAPingAnsweredDuringASlowRequestKeepsTheConnection(t *testing.T) {
	ts := startTestServerConfig(t, Config{Heartbeat: 600 * time.Millisecond, PongTimeout: 300 * time.Millisecond},
		func(l *events.Log) Store { return &slowSubscribe{l, time.Second} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	// Answer every ping, until the subscribe's answer and two more pings
	// have come: about 2 s.
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
	// A client that goes silent after it is still closed, within a
	// heartbeat and a pong timeout.
	expectHeartbeatClose(t, c, 5*time.Second)
}

// expectHeartbeatClose reads what c gets, answering nothing, until the
// server's disconnect, which must be 4002 and come within limit.
func expectHeartbeatClose(t *testing.T, c *testClient, limit time.Duration) {
	t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(limit))
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("no disconnect within %s: %v", limit, err)
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		if f["type"] == "disconnect" {
			if f["code"] != float64(4002) {
				t.Fatalf("disconnect %v, want 4002", f)
			}
			return
		}
	}
}

// A request that outlasts a heartbeat from the ping (a commit stuck for
// good) holds the heartbeat no longer: the connection is closed with
// 4002, as before, rather than left open with no answer to come.
func TestARequestPastAHeartbeatEndsTheWait(t *testing.T) {
	ts := startTestServerConfig(t, Config{Heartbeat: 600 * time.Millisecond, PongTimeout: 300 * time.Millisecond},
		func(l *events.Log) Store { return &slowSubscribe{l, 4 * time.Second} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	expectHeartbeatClose(t, c, 3*time.Second)
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("closed after %s, before a heartbeat from the ping", took)
	}
}

// A client that answers nothing, whose request the server was still
// handling when the ping went out, is closed a pong timeout after the
// request ends: the wait for a pong behind a request is not for ever.
func TestASilentClientAfterASlowRequestIsClosed(t *testing.T) {
	ts := startTestServerConfig(t, Config{Heartbeat: 600 * time.Millisecond, PongTimeout: 300 * time.Millisecond},
		func(l *events.Log) Store { return &slowSubscribe{l, time.Second} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","id":1}`)); err != nil {
		t.Fatal(err)
	}
	expectHeartbeatClose(t, c, 5*time.Second)
}
