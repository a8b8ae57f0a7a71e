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

// heldConnect is the real log, whose append of a connection's event
// commits and then waits for release, as a commit that takes a while.
type heldConnect struct {
	*events.Log
	committed chan struct{}
	release   chan struct{}
}

func (s *heldConnect) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	evs, err := s.Log.Append(ctx, facts...)
	if _, ok := facts[0].(*domain.ClientConnected); ok {
		s.committed <- struct{}{}
		<-s.release
	}
	return evs, err
}

// A connection whose session is recorded and applied just as Shutdown
// begins is closed with 1001 as the others are, after `connected`: the
// client learns the id of the session the log has. Before, its queue was
// dropped, `connected` with it, and it got the 101 and the disconnect.
func TestAConnectionSetUpAsShutdownBeginsGetsConnectedFirst(t *testing.T) {
	store := &heldConnect{committed: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startTestServerWith(t, func(l *events.Log) Store { store.Log = l; return store })
	dialed := make(chan *websocket.Conn, 1)
	go func() {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+"/_ws", nil)
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	<-store.committed
	// Applied, so the setup does not wait for it (a wait Shutdown would
	// end); then Shutdown begins, and the setup goes on.
	if err := ts.members.WaitApplied(context.Background(), ts.log.Head()); err != nil {
		t.Fatal(err)
	}
	go ts.srv.Shutdown(context.Background())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		ts.srv.mu.Lock()
		closing := ts.srv.closing
		ts.srv.mu.Unlock()
		if closing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Shutdown did not begin within 10 s")
		}
	}
	close(store.release)
	c := <-dialed
	if c == nil {
		return
	}
	defer c.Close()
	var types []string
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
				t.Errorf("the connection ended with %v, want close 1001", err)
			}
			break
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		types = append(types, f["type"].(string))
	}
	if strings.Join(types, " ") != "connected disconnect" {
		t.Errorf("frames %v, want connected, then disconnect", types)
	}
}
