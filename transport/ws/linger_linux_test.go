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
	"github.com/fazt-realtime/fazt/events"
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
	c := ts.dialReadBuffer(64 << 10)
	ws := c.ws
	c.subscribe("big")

	// About 4 MiB of messages the client does not read yet: more than
	// both sockets' buffers take, so the server has some still to send.
	const backlog = 128
	appendMessages(t, ts, "big", backlog, `"`+strings.Repeat("x", 32<<10)+`"`)

	// A masked text frame announcing 32 MiB, and 2 MiB of it (16 MiB,
	// more than the sockets' buffers hold, when sent first): the server
	// reads a little over its limit and leaves the rest unread.
	raw := ws.UnderlyingConn()
	head := []byte{0x81, 0xFF, 0, 0, 0, 0, 0x02, 0, 0, 0, 1, 2, 3, 4}
	send := func(n int) error {
		raw.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := raw.Write(append(head, make([]byte, n)...))
		return err
	}
	sent := make(chan error, 1)
	if sendFirst {
		raw.(*net.TCPConn).SetWriteBuffer(64 << 10)
		if err := send(16 << 20); err != nil {
			t.Fatalf("sending the frame: %v", err)
		}
		close(sent)
	} else {
		go func() { sent <- send(2 << 20) }()
	}
	// Let the server read its part and close before the client reads.
	waitUntil(t, "the server to refuse the frame", ts.anyClosing)
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

// A kicked client that never answers the close keeps its socket for the
// linger, but its session ends at once: the end is recorded, and it is
// gone from the membership, while the socket is still open. The linger
// is an hour here, so a session that waited for it would not end within
// the test.
func TestASessionEndsBeforeTheLinger(t *testing.T) {
	ts := startTestServerConfig(t, Config{CloseLinger: time.Hour}, nil)
	c := ts.dial()
	c.subscribe("room")
	if _, err := ts.log.Append(context.Background(), &domain.ClientKicked{App: domain.DefaultApp, Client: c.id, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing, so it never answers the close.
	expectEndRecorded(t, ts, c.id, domain.ReasonKicked)
	if subs := ts.members.Subscribers(domain.DefaultApp, "room"); len(subs) != 0 {
		t.Fatalf("subscribers of room after the end: %v", subs)
	}
	if open := ts.tracked(); open != 1 {
		t.Fatalf("%d connections tracked; want the kicked one, lingering", open)
	}
	// Then the client takes the close and hangs up, which ends the linger.
	if d := c.expect("disconnect"); d["code"] != float64(4000) {
		t.Fatalf("disconnect %v; want 4000", d)
	}
	c.ws.Close()
	waitUntil(t, "the socket closed", func() bool { return ts.tracked() == 0 })
}

// heldSubscribe is the real log, whose append of a subscribe to channel
// waits until released, and then commits whatever the request's context
// says, as an append that has passed its context's check does.
type heldSubscribe struct {
	*events.Log
	channel  string
	entered  chan struct{}
	released chan struct{}
}

func (s *heldSubscribe) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	if sub, ok := facts[0].(*domain.ChannelSubscribed); ok && sub.Channel == s.channel {
		close(s.entered)
		<-s.released
		ctx = context.Background()
	}
	return s.Log.Append(ctx, facts...)
}

// A connection kicked while a subscribe of its client is being committed
// records its end after that subscribe, never before: the membership
// applies the subscribe, then the end, and the client is gone. Recorded
// before (the writer ends the session as soon as it has written the
// close), the subscribe opened the session again in the membership, and
// nothing closed it until a restart.
func TestASessionEndsAfterTheRequestRunning(t *testing.T) {
	store := &heldSubscribe{channel: "late", entered: make(chan struct{}), released: make(chan struct{})}
	ts := startTestServerWith(t, func(l *events.Log) Store { store.Log = l; return store })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"late"}`)); err != nil {
		t.Fatal(err)
	}
	<-store.entered
	if _, err := ts.log.Append(context.Background(), &domain.ClientKicked{App: domain.DefaultApp, Client: c.id, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the kick applied", ts.anyClosing)
	// Time for the writer to write the close and end the session, had it
	// not waited for the subscribe.
	time.Sleep(200 * time.Millisecond)
	close(store.released)
	expectEndRecorded(t, ts, c.id, domain.ReasonKicked)
	var got records
	waitUntil(t, "the subscribe committed", func() bool {
		got = clientRecords(t, ts, c.id)
		return got.subscribed > 0
	})
	subscribed, ended := got.subscribed, got.ended
	if subscribed > ended {
		t.Fatalf("the subscribe (seq %d) was committed after the end (seq %d)", subscribed, ended)
	}
	if err := ts.members.WaitApplied(context.Background(), max(subscribed, ended)); err != nil {
		t.Fatal(err)
	}
	if subs := ts.members.Subscribers(domain.DefaultApp, "late"); len(subs) != 0 || ts.members.Connected(domain.DefaultApp, c.id) {
		t.Fatalf("after its end, the client is a member: subscribers %v, connected %v", subs, ts.members.Connected(domain.DefaultApp, c.id))
	}
}

// A client past its heartbeat answers nothing: its socket is closed at
// once, not kept for the linger (an hour here), so its connection's slot
// is free and the end recorded as soon as the server gives up on it.
func TestAClientPastItsHeartbeatIsClosedAtOnce(t *testing.T) {
	ts := startTestServerConfig(t, Config{Heartbeat: 300 * time.Millisecond, PongTimeout: 150 * time.Millisecond, CloseLinger: time.Hour}, nil)
	c := ts.dial() // reads nothing more: the pings go unanswered
	expectEndRecorded(t, ts, c.id, domain.ReasonHeartbeatTimeout)
	waitUntil(t, "the connection's socket closed", func() bool { return ts.tracked() == 0 })
}
