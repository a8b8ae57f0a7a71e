package ws

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
)

// A membership that has stopped applying events (a projection stuck on
// one) fails a subscribe and an unsubscribe within ApplyTimeout: the
// client gets `unavailable` for its request, then the connection is
// closed with 1011 and recorded as ended with server_error. Before, the
// request waited with no bound, holding the client's reader, until the
// heartbeat closed the connection with 4002 as if the client were silent.
func TestARequestTheMembershipDoesNotTakeInFails(t *testing.T) {
	for _, tc := range []struct{ typ, channel string }{{"subscribe", "other"}, {"unsubscribe", "room"}} {
		t.Run(tc.typ, func(t *testing.T) {
			ts := startTestServerConfig(t, Config{ApplyTimeout: 200 * time.Millisecond}, nil)
			c := ts.dial()
			c.subscribe("room")
			ts.consumer.Stop()
			<-ts.consumer.Done()
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"`+tc.typ+`","channel":"`+tc.channel+`","id":"r1"}`)); err != nil {
				t.Fatal(err)
			}
			f, _ := untilFrame(t, c, "error")
			if f["id"] != "r1" || f["code"] != string(domain.CodeUnavailable) || f["channel"] != tc.channel {
				t.Fatalf("answer %v, want unavailable for r1 on %s", f, tc.channel)
			}
			if d, _ := untilFrame(t, c, "disconnect"); d["code"] != float64(websocket.CloseInternalServerErr) {
				t.Fatalf("disconnect %v, want 1011", d)
			}
			expectEndRecorded(t, ts, c.id, domain.ReasonServerError)
		})
	}
}
