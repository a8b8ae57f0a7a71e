package ws

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
)

// A connection closed while its client is still sending ends with a FIN
// after the last frame, not a reset. Here a frame far over the limit
// (close 1009) leaves megabytes of it unread on the server, while the
// server's socket still holds frames the client has not read (its
// receive buffer is small and full). Closing such a socket outright
// resets it, and the kernel drops what it had not sent: the client got
// part of its messages, then "connection reset by peer", never the
// disconnect frame. Now the messages written come in order (the queue
// is dropped on such a refusal, so not all of them), then the
// disconnect with 1009, the close, and the end of the stream.
//
// "sending first": the client writes all of its frame before it reads.
// The server reads and drops it while its writer waits for the client:
// had it read only once the writer was done, each would wait for the
// other until the write timeout, and the close would be a reset.
func TestCloseWithUnreadInputDeliversTheLastFrames(t *testing.T) {
	t.Run("sending while reading", func(t *testing.T) { testCloseWithUnreadInput(t, false) })
	t.Run("sending first", func(t *testing.T) { testCloseWithUnreadInput(t, true) })
}

func testCloseWithUnreadInput(t *testing.T, sendFirst bool) {
	ts := startTestServer(t)
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nc, err := net.Dial(network, addr)
		if err == nil {
			nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return nc, err
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &testClient{t: t, ws: ws}
	c.id = c.expect("connected")["client_id"].(string)
	c.subscribe("big")

	// About 4 MiB of messages the client does not read yet: more than
	// both sockets' buffers take, so the server has some still to send.
	const backlog = 128
	data := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
	facts := make([]domain.Fact, backlog)
	for i := range facts {
		facts[i] = &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "big", Data: data}
	}
	if _, err := ts.log.Append(context.Background(), facts...); err != nil {
		t.Fatal(err)
	}

	// A masked text frame announcing 32 MiB, and 2 MiB of it (16 MiB,
	// more than the sockets' buffers hold, when sent first): the server
	// reads a little over its limit and leaves the rest unread.
	raw := ws.UnderlyingConn()
	head := []byte{0x81, 0xFF, 0, 0, 0, 0, 0x02, 0, 0, 0, 1, 2, 3, 4}
	sent := make(chan error, 1)
	send := func(n int) {
		raw.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := raw.Write(append(head, make([]byte, n)...))
		sent <- err
	}
	if sendFirst {
		raw.(*net.TCPConn).SetWriteBuffer(64 << 10)
		send(16 << 20)
		if err := <-sent; err != nil {
			t.Fatalf("sending the frame: %v", err)
		}
		sent <- nil
	} else {
		go send(2 << 20)
	}
	// Let the server read its part and close before the client reads.
	waitUntil(t, "the server to refuse the frame", func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		for sc := range ts.srv.conns {
			sc.mu.Lock()
			closing := sc.closing
			sc.mu.Unlock()
			if closing {
				return true
			}
		}
		return false
	})
	time.Sleep(100 * time.Millisecond)

	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var last uint64
	var disconnect map[string]any
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
				t.Fatalf("after %d of %d messages (disconnect %v): %v; want close 1009", last, backlog, disconnect, err)
			}
			break
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %.80q: %v", b, err)
		}
		switch {
		case disconnect != nil:
			t.Fatalf("frame %.80q after disconnect", b)
		case f["type"] == "message":
			if off := uint64(f["offset"].(float64)); off != last+1 {
				t.Fatalf("message %d after %d", off, last)
			}
			last++
		case f["type"] == "disconnect":
			disconnect = f
		default:
			t.Fatalf("frame %.80q", b)
		}
	}
	if disconnect == nil || disconnect["code"] != float64(websocket.CloseMessageTooBig) {
		t.Fatalf("disconnect frame %v; want one with code 1009 before the close", disconnect)
	}
	// The close was dropped with the queue (no flush on a refusal), so
	// some messages may not have come; those that came are in order.
	// After the close frame, the stream ends: EOF, not a reset.
	if n, err := raw.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the close frame: %d bytes, %v; want EOF", n, err)
	}
	expectEndRecorded(t, ts, c.id, domain.ReasonTooLarge)
	<-sent
}
