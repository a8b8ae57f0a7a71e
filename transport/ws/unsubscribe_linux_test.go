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

// heldReads is the real log whose history reads wait until released.
type heldReads struct {
	*events.Log
	reading chan struct{} // a read has started
	release chan struct{}
}

func (s *heldReads) Messages(ctx context.Context, app, channel string, q domain.HistoryQuery) ([]domain.Message, error) {
	s.reading <- struct{}{}
	<-s.release
	return s.Log.Messages(context.Background(), app, channel, q)
}

// An unsubscribe during a replay whose page read is still under way: the
// page, once read, is not sent, so `unsubscribed` is the last frame of the
// channel.
func TestUnsubscribeStopsAReplayMidRead(t *testing.T) {
	store := &heldReads{reading: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startTestServerWith(t, func(l *events.Log) Store { store.Log = l; return store })
	for i := 0; i < 3; i++ {
		if _, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "room", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	c := ts.dial()
	send := func(s string) {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"type":"subscribe","channel":"room","offset":0}`)
	if s := c.expect("subscribed"); s["replay"] != float64(3) {
		t.Fatalf("subscribed %v", s)
	}
	<-store.reading
	send(`{"type":"unsubscribe","channel":"room"}`)
	c.expect("unsubscribed")
	close(store.release)
	c.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, b, err := c.ws.ReadMessage(); err == nil {
		var f map[string]any
		json.Unmarshal(b, &f)
		if f["type"] != "ping" {
			t.Fatalf("after unsubscribed: %s", b)
		}
	}
}
