package ws

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
)

// TestFlusherCountsRepeats checks what feeds the repeat share: a write of
// broadcasts to a connection the flusher wrote for in a round that started
// within its most hold is a repeat; the first write to a connection is not.
func TestFlusherCountsRepeats(t *testing.T) {
	ts := startTestServerConfig(t, Config{WriteDelay: time.Millisecond, MaxWriteDelay: time.Hour}, nil)
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"r"}`)); err != nil {
		t.Fatal(err)
	}
	c.expect("subscribed")
	// The flusher's counters are its goroutine's; read them once it has
	// stopped, under its lock.
	counts := func() (writes, repeats int) {
		var f *flusher
		ts.srv.mu.Lock()
		for sc := range ts.srv.conns {
			f = sc.fl
		}
		ts.srv.mu.Unlock()
		waitUntil(t, "the flusher to stop", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return !f.running
		})
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.writes, f.repeats
	}
	broadcast := func() {
		t.Helper()
		if _, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "r", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
		c.expect("message")
	}
	broadcast()
	if w, r := counts(); w != 1 || r != 0 {
		t.Fatalf("first broadcast: %d writes, %d repeats; want 1 write, no repeat", w, r)
	}
	broadcast()
	if w, r := counts(); w != 1 || r != 1 {
		t.Fatalf("second broadcast: %d writes, %d repeats; want 1 write, a repeat", w, r)
	}
}
