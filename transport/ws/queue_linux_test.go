package ws

import (
	"context"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
)

// A replay of 3,000 messages grows the connection's queue to thousands of
// slots; once it is written and the connection idle, the connection keeps
// no more than keepQueue slots of it (before, 1,023 and 2,048: 74 KB), so
// that memory per idle connection does not depend on what it once
// replayed. The replay arrives whole and in order.
func TestIdleConnectionGivesUpABigQueue(t *testing.T) {
	ts := startTestServer(t)
	const n = 3000
	facts := make([]domain.Fact, n)
	for i := range facts {
		facts[i] = &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "history", Data: []byte(`{"n":1}`)}
	}
	if _, err := ts.log.Append(context.Background(), facts...); err != nil {
		t.Fatal(err)
	}
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"history","offset":0}`)); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("subscribed"); f["replay"] != float64(n) {
		t.Fatalf("subscribed %v, want a replay of %d", f, n)
	}
	for want := 1; want <= n; want++ {
		if f := c.expect("message"); f["offset"] != float64(want) {
			t.Fatalf("message %v, want offset %d", f, want)
		}
	}
	ts.srv.mu.Lock()
	var sc *conn
	for k := range ts.srv.conns {
		sc = k
	}
	ts.srv.mu.Unlock()
	waitUntil(t, "the connection's writes to end", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return !sc.writing && len(sc.queue) == 0
	})
	sc.mu.Lock()
	q, s := cap(sc.queue), cap(sc.spare)
	sc.mu.Unlock()
	if q > keepQueue || s > keepQueue {
		t.Fatalf("an idle connection keeps %d and %d queue slots, want at most %d", q, s, keepQueue)
	}
}
