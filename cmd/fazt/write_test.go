package main

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/promtext"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// metric reads one series of the node's /metrics; the test fails if it
// is not there.
func (tn *testNode) metric(series string) float64 {
	tn.t.Helper()
	v, ok := promtext.Value(tn.metrics(), series)
	if !ok {
		tn.t.Fatalf("no metric %s", series)
	}
	return v
}

// TestWriteDelayCoalescesFrames checks that with a write delay, frames
// queued for a connection in quick succession share socket writes, and
// still arrive complete and in order.
func TestWriteDelayCoalescesFrames(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{WriteDelay: 200 * time.Millisecond}))
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "batch"})
	frames0, writes0 := tn.metric("fazt_ws_frames_sent_total"), tn.metric("fazt_ws_writes_total")
	// Messages a few milliseconds apart: without the delay the idle
	// writer would write each on its own.
	const n = 20
	for i := 0; i < n; i++ {
		mb := &domain.MessageBroadcast{App: "default", Channel: "batch", Data: json.RawMessage(strconv.Itoa(i)), Publisher: domain.Actor{Kind: domain.ActorServer}}
		if _, err := tn.node.log.Append(context.Background(), mb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := offsets(c.messages("batch", n)); !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("offsets %v", got)
	}
	frames := tn.metric("fazt_ws_frames_sent_total") - frames0
	writes := tn.metric("fazt_ws_writes_total") - writes0
	if frames < n || writes > n/3 {
		t.Fatalf("%v frames in %v writes: not coalesced", frames, writes)
	}
	t.Logf("%v frames in %v writes", frames, writes)
}

// TestWriteDelayHoldsBackOnlyBroadcasts checks that a write delay holds
// back broadcasts only: replies to a client's requests, and the frames
// that end a connection, go out without waiting for it. The delay here is
// an hour, so anything held back for it never arrives within the test.
func TestWriteDelayHoldsBackOnlyBroadcasts(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{WriteDelay: time.Hour}))
	// The first round after a pause starts at once (connected); after
	// that, each reply's connection is written on its own, outside the
	// rounds.
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "held", "id": "s1"})
	c.send(`{"type":"ping","id":"p1"}`)
	if f := c.expect("pong"); f.str("id") != "p1" {
		t.Fatalf("pong %v", f)
	}

	// A broadcast waits for the delay...
	tn.broadcastQueued("held")
	c.quiet(300 * time.Millisecond)
	// ...or for the next reply, which it goes out with, in order.
	c.pingForHeld("p2", "held", 1)

	// So does a WebSocket-level pong.
	tn.broadcastQueued("held")
	c.quiet(300 * time.Millisecond)
	pong := make(chan string, 1)
	c.conn.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.conn.WriteControl(websocket.PingMessage, []byte("w1"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := offsets(c.messages("held", 1)); !slices.Equal(got, seqRange(2, 2)) {
		t.Fatalf("offsets %v", got)
	}
	select {
	case data := <-pong:
		if data != "w1" {
			t.Fatalf("pong %q", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}

	// A kick's disconnect frame and close go out at once too, even when
	// the connection already waits in its flusher's list with a held
	// broadcast, which goes out first.
	tn.broadcastQueued("held")
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+c.id+"/kick", map[string]any{"reason": "bye"}, nil); code != 200 {
		t.Fatalf("kick: status %d", code)
	}
	if got := offsets(c.messages("held", 1)); !slices.Equal(got, seqRange(3, 3)) {
		t.Fatalf("offsets %v", got)
	}
	if f := c.expect("disconnect"); f.num("code") != 4000 {
		t.Fatalf("disconnect %v", f)
	}
	if ce := c.waitClosed(); ce == nil {
		t.Fatal("no close frame")
	}
}

// broadcastQueued broadcasts to channel and returns once the message is
// queued for the channel's subscribers.
func (tn *testNode) broadcastQueued(channel string) {
	tn.t.Helper()
	mb := &domain.MessageBroadcast{App: "default", Channel: channel, Data: json.RawMessage(`1`), Publisher: domain.Actor{Kind: domain.ActorServer}}
	evs, err := tn.node.log.Append(context.Background(), mb)
	if err != nil {
		tn.t.Fatal(err)
	}
	if err := tn.node.members.WaitApplied(context.Background(), evs[0].Seq); err != nil {
		tn.t.Fatal(err)
	}
}

// TestReplyReleasesOnlyItsConnection checks that a reply cuts the write
// delay short for its own connection only: the broadcast queued for
// another connection of the same flusher still waits, so that clients
// that publish (each getting a reply) do not end the delay for everyone.
func TestReplyReleasesOnlyItsConnection(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{WriteDelay: time.Hour}))
	// Connections take the flushers in turn, one per processor: of these,
	// at least one shares the first one's.
	var cs []*client
	for i := range runtime.GOMAXPROCS(0) + 1 {
		c := tn.dial("", "")
		c.subscribe(map[string]any{"channel": "held", "id": i})
		cs = append(cs, c)
	}
	tn.broadcastQueued("held")
	cs[0].pingForHeld("first", "held", 1)
	// The others' copies are still held back...
	for _, c := range cs[1:] {
		c.quiet(300 * time.Millisecond)
	}
	// ...until each has a reply of its own.
	for i, c := range cs[1:] {
		c.pingForHeld("p"+strconv.Itoa(i), "held", 1)
	}
}

// pingForHeld sends a protocol ping and expects the held message with
// the given offset on channel, then the pong, in that order.
func (c *client) pingForHeld(id, channel string, offset uint64) {
	c.t.Helper()
	c.send(`{"type":"ping","id":"` + id + `"}`)
	if got := offsets(c.messages(channel, 1)); !slices.Equal(got, seqRange(offset, offset)) {
		c.t.Fatalf("%s: offsets %v", id, got)
	}
	if f := c.expect("pong"); f.str("id") != id {
		c.t.Fatalf("%s: pong %v", id, f)
	}
}

// TestFullSocketWritesContinue checks the hand-over from the shared
// flusher, which never waits for a socket, to a connection's own writer
// when a client's socket is full: a client that reads slowly through a
// small socket buffer still gets every message, in order, and is not
// disconnected, while a fast client on the same channel gets them too.
func TestFullSocketWritesContinue(t *testing.T) {
	// A short write timeout: the writes of the slow client's own writer
	// set a deadline on its socket, which must not outlive them.
	tn := startTestNode(t, nil, withWS(ws.Config{SocketSendBuffer: 16384, WriteTimeout: 2 * time.Second}))
	slow := tn.dialSmallReads(65536)
	if _, _, err := slow.ReadMessage(); err != nil { // connected
		t.Fatal(err)
	}
	slow.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"bulk","id":1}`))
	if _, _, err := slow.ReadMessage(); err != nil { // subscribed
		t.Fatal(err)
	}
	fast := tn.dial("", "")
	fast.subscribe(map[string]any{"channel": "bulk"})

	waits0 := tn.metric("fazt_ws_full_socket_writes_total")
	// 2 MB, far more than the two sockets' buffers hold, in fewer frames
	// than a backlog (256), which would go to the connection's own writer
	// without trying the socket: every hand-over here follows a write
	// the socket did not take whole.
	const n = 250
	payload := `"` + strings.Repeat("w", 8000) + `"`
	for i := 0; i < n; i++ {
		mb := &domain.MessageBroadcast{App: "default", Channel: "bulk", Data: json.RawMessage(payload), Publisher: domain.Actor{Kind: domain.ActorServer}}
		if _, err := tn.node.log.Append(context.Background(), mb); err != nil {
			t.Fatal(err)
		}
	}
	if got := offsets(fast.messages("bulk", n)); !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("fast client offsets %v", got)
	}
	// The slow client reads a frame at a time, pausing now and then.
	slow.SetReadDeadline(time.Now().Add(60 * time.Second))
	for want := uint64(1); want <= n; {
		_, body, err := slow.ReadMessage()
		if err != nil {
			t.Fatalf("slow client at offset %d: %v", want, err)
		}
		var f frame
		jsonUnmarshal(body, &f)
		if f.str("type") != "message" {
			t.Fatalf("slow client got %s at offset %d", body, want)
		}
		if f.num("offset") != want {
			t.Fatalf("slow client got offset %d, want %d", f.num("offset"), want)
		}
		if want%50 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		want++
	}
	if waits := tn.metric("fazt_ws_full_socket_writes_total") - waits0; waits == 0 {
		t.Fatal("no write found the socket full: the hand-over was not exercised")
	}
	// Past the write timeout, the flusher writes to both again.
	time.Sleep(3 * time.Second)
	for i := 0; i < 5; i++ {
		mb := &domain.MessageBroadcast{App: "default", Channel: "bulk", Data: json.RawMessage(`"late"`), Publisher: domain.Actor{Kind: domain.ActorServer}}
		if _, err := tn.node.log.Append(context.Background(), mb); err != nil {
			t.Fatal(err)
		}
	}
	if got := offsets(fast.messages("bulk", 5)); !slices.Equal(got, seqRange(n+1, n+5)) {
		t.Fatalf("fast client, later: offsets %v", got)
	}
	for want := uint64(n + 1); want <= n+5; want++ {
		_, body, err := slow.ReadMessage()
		if err != nil {
			t.Fatalf("slow client, later, at offset %d: %v", want, err)
		}
		var f frame
		jsonUnmarshal(body, &f)
		if f.num("offset") != want {
			t.Fatalf("slow client, later: got %s, want offset %d", body, want)
		}
	}
}
