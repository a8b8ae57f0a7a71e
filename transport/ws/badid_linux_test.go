package ws

import (
	"testing"

	"github.com/gorilla/websocket"
)

// Frames whose id is no JSON value, in frames encoding/json cannot read,
// are answered bad_request without the id, and the server goes on: the
// connection takes its next request. Before its fix, the answer's
// encoding of such an id (NaN, read as a number) panicked and took the
// whole server down.
func TestAFrameWithAnIdThatIsNotJSONIsAnswered(t *testing.T) {
	ts := startTestServer(t)
	c := ts.dial()
	for _, frame := range []string{`{"id":NaN}`, `{"type":"ping","id":0x10,`, `{"id":-Infinity,"type":"x"`} {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		if f := c.expect("error"); f["code"] != "bad_request" || f["id"] != nil {
			t.Fatalf("%s: answered %v, want bad_request without an id", frame, f)
		}
	}
	c.subscribe("after")
}
