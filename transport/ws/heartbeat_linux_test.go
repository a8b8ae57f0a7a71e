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

// slowSubscribe is the real log, whose commits of subscriptions take a
// second, as a slow disk or a long hook might.
type slowSubscribe struct{ *events.Log }

func (s *slowSubscribe) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	if _, ok := facts[0].(*domain.ChannelSubscribed); ok {
		time.Sleep(time.Second)
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
		func(l *events.Log) Store { return &slowSubscribe{l} })
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
}
