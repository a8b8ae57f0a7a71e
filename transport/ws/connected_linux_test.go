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

// heldPipe returns a heldConn over one end of a pipe, and socket, which
// closes it and returns what reached the other end, read by read.
func heldPipe(t *testing.T) (hc *heldConn, socket func() []string) {
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	got := make(chan string, 4)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := client.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	return &heldConn{Conn: server}, func() []string {
		server.Close()
		var all []string
		for s := range got {
			all = append(all, s)
		}
		return all
	}
}

// The upgrader's first write, the handshake, is held for `connected`; a
// later one (gorilla's close for a frame it cannot read) is dropped while
// the handshake is not out, so that nothing reaches the client before the
// 101, and goes to the socket once it is.
func TestHeldConnWritesNothingBeforeTheHandshake(t *testing.T) {
	hc, socket := heldPipe(t)
	for _, w := range []string{"HTTP/1.1 101", "early close"} {
		if n, err := hc.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("write %q: %d, %v", w, n, err)
		}
	}
	if string(hc.handshake) != "HTTP/1.1 101" {
		t.Fatalf("held %q", hc.handshake)
	}
	hc.out.Store(true)
	if _, err := hc.Write([]byte("late close")); err != nil {
		t.Fatal(err)
	}
	if all := socket(); strings.Join(all, "") != "late close" {
		t.Fatalf("the socket got %q; want only the write made once the handshake was out", all)
	}
}

// A write of gorilla's made while a writer is sending the handshake (the
// client answered the 101 before the writer marked it out) waits for that
// write and follows it, rather than being dropped.
func TestHeldConnWriteWaitsForTheHandshakeBeingSent(t *testing.T) {
	hc, socket := heldPipe(t)
	hc.Write([]byte("HTTP/1.1 101"))
	hc.sending()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := hc.Write([]byte("close 1002")); err != nil {
			t.Error(err)
		}
	}()
	// The write must wait: give it time to go wrong. (Correct code never
	// gets past the lock here, so this cannot fail it.)
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("a write while the handshake was being sent did not wait for it")
	default:
	}
	if _, err := hc.Conn.Write(hc.handshake); err != nil {
		t.Fatal(err)
	}
	hc.sent(true)
	<-done
	if all := socket(); strings.Join(all, "|") != "HTTP/1.1 101|close 1002" {
		t.Fatalf("the socket got %q; want the handshake, then the write that waited", all)
	}
}

// Once the held handshake is out, gorilla's own answer to a frame it
// cannot read (a close, 1002) reaches the client: the writers mark the
// handshake written.
func TestProtocolErrorCloseReachesTheClient(t *testing.T) {
	ts := startTestServer(t)
	c := ts.dial()
	defer c.ws.Close()
	// A masked text frame with RSV1 set, which no extension here allows.
	if _, err := c.ws.UnderlyingConn().Write([]byte{0xC1, 0x80, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ws.ReadMessage()
		if err == nil {
			continue // a frame queued before the close, if any
		}
		if !websocket.IsCloseError(err, websocket.CloseProtocolError) {
			t.Fatalf("after a bad frame: %v (last frame %q); want close 1002", err, b)
		}
		return
	}
}
