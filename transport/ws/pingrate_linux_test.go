package ws

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/promtext"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

// WebSocket pings count against the app's inbound_rate (100 a second,
// bursts of 200 by default): of 1000 sent at once, most are refused and
// get no pong, and the client is still served. Before, no ping was
// counted, and each was answered.
func TestPingsCountAgainstTheInboundRate(t *testing.T) {
	ts := startTestServer(t)
	c := ts.dial()
	refusals := func() float64 {
		v, _ := promtext.Value(testutil.Metrics(), `fazt_limit_refusals_total{limit="inbound_rate"}`)
		return v
	}
	before := refusals()
	for range 1000 {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// The pings are read before a subscribe that follows them (frames
	// are read in order), which the rate may refuse too until it allows
	// one again.
	for subscribed := false; !subscribed; {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"after"}`)); err != nil {
			t.Fatal(err)
		}
		c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var f struct{ Type, Code string }
		json.Unmarshal(b, &f)
		switch {
		case f.Type == "subscribed":
			subscribed = true
		case f.Code == string(domain.CodeRateLimited):
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("answer %s", b)
		}
	}
	if n := refusals() - before; n < 1000-200-100 {
		t.Fatalf("%v of 1000 pings refused, want most", n)
	}
}
