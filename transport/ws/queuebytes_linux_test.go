package ws

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// disconnectReason is the reason the log records for client's end, "" for
// none yet.
func disconnectReason(t *testing.T, ts *testServer, client string) string {
	t.Helper()
	evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: client, Types: []string{domain.NameClientDisconnected}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		return ev.Fact.(*domain.ClientDisconnected).Reason
	}
	return ""
}

// onlyConn is the server's one connection.
func (ts *testServer) onlyConn(t *testing.T) *conn {
	t.Helper()
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	if len(ts.srv.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(ts.srv.conns))
	}
	for c := range ts.srv.conns {
		return c
	}
	return nil
}

// A client that stops reading is a slow consumer once what waits for it
// comes to SendQueueBytes, however few frames that is: 200 broadcasts of
// 60 KB (12 MB) close it at a 1 MiB budget. Before, only a count of
// frames (8192) bounded the queue: 8192 frames of 64 KiB are 512 MiB held
// for one client that reads nothing, until the write timeout (a minute
// here, and so the closing write's wait too: the test looks at the
// connection's close, not at its recorded end) ended it.
func TestASlowConsumerIsBoundedByBytes(t *testing.T) {
	ts := startTestServerConfig(t, Config{SendQueueBytes: 1 << 20, SocketSendBuffer: 4096, WriteTimeout: time.Minute}, nil)
	c := ts.dialReadBuffer(4096)
	c.subscribe("big")
	sc := ts.onlyConn(t)
	appendMessages(t, ts, "big", 200, `"`+strings.Repeat("x", 60_000)+`"`)
	waitUntil(t, "the client to be closed", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.closing
	})
	sc.mu.Lock()
	reason, text := sc.reason, sc.closeText
	sc.mu.Unlock()
	if reason != domain.ReasonSlowConsumer || text != "slow consumer: send queue full" {
		t.Fatalf("closed for %q (%q), want %q for a full queue", reason, text, domain.ReasonSlowConsumer)
	}
}

// A replay waits for room in the queue by bytes too: to a client that
// reads nothing, no more than half of SendQueueBytes (and one frame) is
// queued, where before a replay queued up to half the frames the queue
// takes (4096: 256 MiB of 64 KiB messages). The client, once it reads,
// gets every message in order, and is not closed as a slow consumer.
func TestAReplayIsPacedByBytes(t *testing.T) {
	const budget = 1 << 20
	ts := startTestServerConfig(t, Config{SendQueueBytes: budget, SocketSendBuffer: 64 << 10}, nil)
	const n = 300
	appendMessages(t, ts, "hist", n, `"`+strings.Repeat("y", 30_000)+`"`)
	c := ts.dialReadBuffer(64 << 10)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"hist","offset":0}`)); err != nil {
		t.Fatal(err)
	}
	sc := ts.onlyConn(t)
	queued := func() (frames, size int, writing bool) {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return len(sc.queue), sc.queued, sc.writing
	}
	// The replay fills what it may while the client reads nothing: the
	// writer, stuck, holds what it took from the queue, and the replay
	// waits for it (the test cannot see the writer's part).
	waitUntil(t, "the replay's writes to wait for the client", func() bool { _, _, w := queued(); return w })
	most := 0
	for range 100 {
		frames, size, _ := queued()
		most = max(most, size)
		if size > budget/2+40_000 {
			t.Fatalf("%d frames, %d bytes queued for a client that reads nothing, want at most about %d bytes", frames, size, budget/2)
		}
		time.Sleep(2 * time.Millisecond)
	}
	c.ws.SetReadDeadline(time.Now().Add(time.Minute))
	if f := c.expect("subscribed"); f["replay"] != float64(n) {
		t.Fatalf("subscribed %v", f)
	}
	for want := 1; want <= n; want++ {
		if f := c.expect("message"); f["offset"] != float64(want) {
			t.Fatalf("message at offset %v, want %d", f["offset"], want)
		}
	}
	t.Logf("at most %d bytes queued", most)
}

// A backlog is written a part at a time, each part with its own write
// deadline: a client that takes 16 MiB of replay steadily, at about
// 4 MB/s, over a write timeout of 2 s gets all of it. Before, the
// connection's writer wrote everything queued in one write under one
// deadline, and cut off (4001, slow consumer) a client that could not
// take all of it within the deadline, however steadily it read. The
// parts are 64 KiB here (1 MiB by default), so that each takes a small
// part of its deadline however slow the machine.
func TestASteadyClientTakesABacklogOverTheWriteTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 16 MiB paced over 4 s")
	}
	ts := startTestServerConfig(t, Config{SendQueueBytes: 32 << 20, SocketSendBuffer: 64 << 10, WriteTimeout: 2 * time.Second, writeChunk: 64 << 10}, nil)
	const n = 512
	appendMessages(t, ts, "steady", n, `"`+strings.Repeat("z", 32<<10)+`"`)
	c := ts.dialWith(&websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		nc, err := net.Dial(network, addr)
		if err == nil {
			nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return nc, err
	}})
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"steady","offset":0}`)); err != nil {
		t.Fatal(err)
	}
	// The replay queues what it may before the client reads.
	sc := ts.onlyConn(t)
	waitUntil(t, "the replay to queue a backlog", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.queued >= 2<<20
	})
	c.ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for got := 0; got < n; {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v (the server recorded %q)", got, err, disconnectReason(t, ts, c.id))
		}
		var f struct{ Type string }
		json.Unmarshal(b, &f)
		switch f.Type {
		case "subscribed", "ping":
		case "message":
			got++
			time.Sleep(8 * time.Millisecond) // 32 KiB each: about 4 MB/s
		default:
			t.Fatalf("after %d messages: %.100s", got, b)
		}
	}
}

// A frame larger than the queue's byte budget goes into an empty queue (a
// replayed message of a time when the app allowed larger ones), and does
// not count against the frames after it: they are refused only past the
// budget of their own. Before, every send after it closed the client.
func TestAFrameOverTheBudgetIsNotCountedOnceQueued(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &conn{srv: &Server{cfg: Config{SendQueue: 8192, SendQueueBytes: 1 << 20}}, raw: a,
		app: &apps.App{Settings: apps.Settings{Limits: domain.Limits{}.WithDefaults()}}}
	c.writing = true // no writer starts: the queue stays as it is
	if !c.send(make([]byte, 3<<20), false) {
		t.Fatal("a frame over the budget was refused by an empty queue")
	}
	for i := range 10 {
		if !c.send(make([]byte, 100<<10), false) {
			t.Fatalf("frame %d of 100 KiB after the large one refused", i+1)
		}
	}
	if c.send(make([]byte, 100<<10), false) || !c.closing || c.reason != domain.ReasonSlowConsumer {
		t.Fatalf("a frame past the budget besides the large one: closing %v, reason %q", c.closing, c.reason)
	}
}

// takeLocked gives a writer at most Config.writeChunk bytes of a backlog (one
// frame at least), and leaves the rest queued in order; the backlog's
// slots go with its last part.
func TestAWriteTakesABacklogInParts(t *testing.T) {
	c := &conn{srv: &Server{cfg: Config{writeChunk: 1 << 20}}, queue: make([][]byte, 0, 4*keepQueue)} // a replay's slots
	frame := func(i, size int) []byte { b := make([]byte, size); b[0] = byte(i); return b }
	for i := range 10 {
		c.queue = append(c.queue, frame(i, 300<<10))
		c.queued += 300 << 10
	}
	c.queue = append(c.queue, frame(10, 3<<20)) // one frame past writeChunk on its own
	c.queued += 3 << 20
	var parts [][]int
	for len(c.queue) > 0 {
		var part []int
		for _, f := range c.takeLocked() {
			part = append(part, int(f[0]))
		}
		parts = append(parts, part)
		c.spare = nil
	}
	if got, want := fmt.Sprint(parts), "[[0 1 2] [3 4 5] [6 7 8] [9] [10]]"; got != want {
		t.Fatalf("parts %s, want %s", got, want)
	}
	if c.queued != 0 {
		t.Fatalf("%d bytes left counted in an empty queue", c.queued)
	}
	// The backlog's slots are not kept once it is written (keepQueue).
	if cap(c.queue) > keepQueue {
		t.Fatalf("the empty queue keeps %d slots, want at most %d", cap(c.queue), keepQueue)
	}
}
