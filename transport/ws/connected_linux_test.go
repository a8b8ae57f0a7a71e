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
	"github.com/fazt-realtime/fazt/projections"
)

// broadcastOnConnect commits a broadcast to all right after each
// connection's client.connected.v1, and returns only once the membership
// has applied it: the broadcast reaches the new connection's sink before
// the connection has sent `connected`.
type broadcastOnConnect struct {
	*events.Log
	members *projections.Membership
}

func (s *broadcastOnConnect) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	evs, err := s.Log.Append(ctx, facts...)
	if cc, ok := facts[0].(*domain.ClientConnected); ok && err == nil {
		b, err := s.Log.Append(ctx, &domain.BroadcastAll{App: cc.App, Data: []byte(`"early"`), Publisher: domain.Actor{Kind: domain.ActorAdmin}})
		if err != nil {
			return nil, err
		}
		if err := s.members.WaitApplied(ctx, b[0].Seq); err != nil {
			return nil, err
		}
	}
	return evs, err
}

// `connected` is the first frame a connection gets, even when a broadcast
// to all the app's connections is applied while its session is being set
// up; that broadcast follows it.
func TestConnectedComesFirst(t *testing.T) {
	var store *broadcastOnConnect
	ts := startTestServerWith(t, func(l *events.Log) Store { store = &broadcastOnConnect{Log: l}; return store })
	store.members = ts.members
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range []string{"connected", "message"} {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		if f["type"] != want {
			t.Fatalf("frame %d is %s, want %s", i, b, want)
		}
		if want == "message" && f["data"] != "early" {
			t.Fatalf("broadcast %s", b)
		}
	}
}
