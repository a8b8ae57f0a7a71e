package ws

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/fazt-realtime/fazt/projections"
)

// broadcastOnConnect commits a broadcast to all right after each
// connection's client.connected.v1, and returns only once the membership
// has applied it: the broadcast reaches the new connection's sink before
// the connection has sent `connected`.
type broadcastOnConnect struct {
	*events.Log
	members *projections.Membership
	kick    bool // and kick the connection right after
}

func (s *broadcastOnConnect) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	evs, err := s.Log.Append(ctx, facts...)
	if cc, ok := facts[0].(*domain.ClientConnected); ok && err == nil {
		more := []domain.Fact{&domain.BroadcastAll{App: cc.App, Data: []byte(`"early"`), Publisher: domain.Actor{Kind: domain.ActorAdmin}}}
		if s.kick {
			more = append(more, &domain.ClientKicked{App: cc.App, Client: cc.Client, Reason: "early", By: domain.Actor{Kind: domain.ActorAdmin}})
		}
		b, err := s.Log.Append(ctx, more...)
		if err != nil {
			return nil, err
		}
		if err := s.members.WaitApplied(ctx, b[len(b)-1].Seq); err != nil {
			return nil, err
		}
	}
	return evs, err
}

// `connected` is the first frame a connection gets, even when a broadcast
// to all the app's connections is applied while its session is being set
// up; that broadcast follows it.
func TestConnectedComesFirst(t *testing.T) {
	t.Run("open", func(t *testing.T) { testConnectedComesFirst(t, false) })
	t.Run("kicked while set up", func(t *testing.T) { testConnectedComesFirst(t, true) })
}

func testConnectedComesFirst(t *testing.T, kick bool) {
	var store *broadcastOnConnect
	ts := startTestServerWith(t, func(l *events.Log) Store { store = &broadcastOnConnect{Log: l, kick: kick}; return store })
	store.members = ts.members
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	frames := []string{"connected", "message"}
	if kick {
		frames = append(frames, "disconnect")
	}
	for i, want := range frames {
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

// The answer to the upgrade and `connected` go out in one write: a client
// reading the socket once gets both.
func TestUpgradeAnswerAndConnectedShareAWrite(t *testing.T) {
	ts := startTestServer(t)
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET /_ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := nc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	if !strings.HasPrefix(got, "HTTP/1.1 101 ") || !strings.Contains(got, `"type":"connected"`) {
		t.Fatalf("first read: %q; want the 101 and the connected frame", got)
	}
}

// noWrites is a socket that fails the test if written.
type noWrites struct {
	net.Conn
	t *testing.T
}

func (c noWrites) Write(p []byte) (int, error) {
	c.t.Errorf("the socket got %q; want nothing", p)
	return len(p), nil
}

// The upgrader's first write, the handshake, is kept for a writer to
// send with `connected`. Nothing gorilla writes reaches the socket, where
// it could land inside a frame being sent: a close (its answer to a frame
// it cannot read) closes the connection through closeFn, for the
// connection's writer to send; anything else is dropped.
func TestHeldConnWritesNothingToTheSocket(t *testing.T) {
	hc := &heldConn{Conn: noWrites{t: t}}
	type closed struct {
		code int
		text string
	}
	var got []closed
	hc.closeFn = func(code int, text string) { got = append(got, closed{code, text}) }
	closeFrame := appendClose(nil, websocket.CloseProtocolError, "bad opcode 3")
	// An empty close has no code to send (1005 may not be): not taken.
	for _, w := range [][]byte{[]byte("HTTP/1.1 101"), closeFrame, {0x88, 0}, []byte("not a frame")} {
		if n, err := hc.Write(w); n != len(w) || err != nil {
			t.Fatalf("write %q: %d, %v", w, n, err)
		}
	}
	if string(hc.handshake) != "HTTP/1.1 101" {
		t.Fatalf("kept %q", hc.handshake)
	}
	if len(got) != 1 || got[0] != (closed{websocket.CloseProtocolError, "bad opcode 3"}) {
		t.Fatalf("closeFn got %v; want one close, 1002 \"bad opcode 3\"", got)
	}
}

// A frame gorilla cannot read ends the connection with close 1002: the
// connection's writer sends the rest of what it was writing, whole, then
// `disconnect` with code 1002 and the close; the end is recorded as
// protocol_error. "socket full": the bad frame comes while the client's
// socket holds megabytes the client has not read, so a write is waiting.
func TestProtocolErrorCloses(t *testing.T) {
	t.Run("idle", func(t *testing.T) { testProtocolErrorCloses(t, 0) })
	t.Run("socket full", func(t *testing.T) { testProtocolErrorCloses(t, 256) })
}

func testProtocolErrorCloses(t *testing.T, backlog int) {
	ts := startTestServer(t)
	c := ts.dialReadBuffer(128 << 10)
	ws := c.ws
	c.subscribe("big")
	var last uint64
	if backlog > 0 {
		data := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
		facts := make([]domain.Fact, backlog)
		for i := range facts {
			facts[i] = &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "big", Data: data}
		}
		if _, err := ts.log.Append(context.Background(), facts...); err != nil {
			t.Fatal(err)
		}
		last = uint64(c.expect("message")["offset"].(float64))
	}
	// A masked text frame with RSV1 set, which no extension here allows.
	if _, err := ws.UnderlyingConn().Write([]byte{0xC1, 0x80, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var disconnect map[string]any
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseProtocolError) {
				t.Fatalf("after a bad frame: %v; want close 1002", err)
			}
			break
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %.80q: %v", b, err)
		}
		if disconnect != nil {
			t.Fatalf("frame %.80q after disconnect", b)
		}
		switch f["type"] {
		case "message":
			if off := uint64(f["offset"].(float64)); off != last+1 {
				t.Fatalf("message %d after %d", off, last)
			}
			last++
		case "disconnect":
			disconnect = f
		default:
			t.Fatalf("frame %.80q", b)
		}
	}
	if disconnect == nil || disconnect["code"] != float64(websocket.CloseProtocolError) {
		t.Fatalf("disconnect frame %v; want one with code 1002 before the close", disconnect)
	}
	expectEndRecorded(t, ts, c.id, domain.ReasonProtocolError)
}

// A frame whose length does not fit in 63 bits is too large, like any
// frame far over the limit: disconnect and close 1009, recorded as
// too_large and counted as a message_size refusal.
func TestImpossibleFrameLengthIsTooLarge(t *testing.T) {
	ts := startTestServer(t)
	c := ts.dial()
	before := testutil.LimitRefusals(testutil.Metrics(), "message_size")
	// Masked text, a 64-bit length with its top bit set, the mask.
	frame := []byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
	if _, err := c.ws.UnderlyingConn().Write(frame); err != nil {
		t.Fatal(err)
	}
	if d := c.expect("disconnect"); d["code"] != float64(websocket.CloseMessageTooBig) {
		t.Fatalf("disconnect %v; want code 1009", d)
	}
	if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after the disconnect frame: %v; want close 1009", err)
	}
	expectEndRecorded(t, ts, c.id, domain.ReasonTooLarge)
	if n := testutil.LimitRefusals(testutil.Metrics(), "message_size") - before; n != 1 {
		t.Errorf("%v message_size refusals counted; want 1", n)
	}
}
