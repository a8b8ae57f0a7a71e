package ws

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/promtext"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

// writeModes are the flushers' two ways to write: batches through
// io_uring, where the kernel allows it, and a send(2) per write.
var writeModes = []struct {
	name  string
	plain bool
}{{"io_uring", false}, {"send", true}}

// skipWithoutRing skips a test of the io_uring mode where there is none.
func skipWithoutRing(t *testing.T, plain bool) {
	t.Helper()
	if err := ringsErr(); !plain && err != nil {
		t.Skipf("the flushers write without io_uring here: %v", err)
	}
}

// counter reads a counter of the process's metrics.
func counter(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := promtext.Value(testutil.Metrics(), name)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	return v
}

// Broadcasts to more connections than one batch takes reach every one,
// whole and in order; through io_uring in fewer system calls than
// writes, with send(2) in one each.
func TestFlusherWritesEveryConnection(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			skipWithoutRing(t, mode.plain)
			ts := startTestServerConfig(t, Config{PlainWrites: mode.plain}, nil)
			const conns, messages = 150, 30 // 150: three batches of up to 64
			clients := make([]*testClient, conns)
			for i := range clients {
				clients[i] = ts.dial()
				clients[i].subscribe("fan")
			}
			writes0, calls0 := counter(t, "fazt_ws_writes_total"), counter(t, "fazt_ws_write_calls_total")
			for i := range messages {
				if _, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "fan", Data: fmt.Appendf(nil, `{"n":%d}`, i+1)}); err != nil {
					t.Fatal(err)
				}
			}
			for i, c := range clients {
				for want := 1; want <= messages; want++ {
					f := c.expect("message")
					if f["offset"] != float64(want) || f["data"].(map[string]any)["n"] != float64(want) {
						t.Fatalf("client %d: %v, want offset and n %d", i, f, want)
					}
				}
			}
			writes := counter(t, "fazt_ws_writes_total") - writes0
			calls := counter(t, "fazt_ws_write_calls_total") - calls0
			if writes < conns {
				t.Fatalf("%v writes for %d connections", writes, conns)
			}
			if mode.plain && calls != writes {
				t.Errorf("send(2): %v system calls for %v writes, want one each", calls, writes)
			}
			if !mode.plain && calls*2 > writes {
				// 150 connections a round, 64 to a call.
				t.Errorf("io_uring: %v system calls for %v writes, want at most half as many", calls, writes)
			}
		})
	}
}

// Replies to more connections than one batch takes, all urgent at once,
// are written in batches with a yield between them, as a round's are,
// and each reaches its connection.
func TestFlusherWritesUrgentRepliesInBatches(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			skipWithoutRing(t, mode.plain)
			ts := startTestServerConfig(t, Config{PlainWrites: mode.plain}, nil)
			const conns = 200 // four batches of up to 64
			clients := make([]*testClient, conns)
			for i := range clients {
				clients[i] = ts.dial()
			}
			ts.srv.mu.Lock()
			server := make([]*conn, 0, conns)
			for sc := range ts.srv.conns {
				server = append(server, sc)
			}
			ts.srv.mu.Unlock()

			// A flusher of the test's own, run on this goroutine, takes
			// the replies: it claims each connection's writes once its
			// own flusher has let them go (after "connected"), so that
			// the connection's flusher stays off them.
			f := newFlusher(time.Second, 0, mode.plain, ts.srv.log)
			if !mode.plain {
				if f.ring = takeRing(ts.srv.log); f.ring == nil { // stopLocked gives it back
					t.Fatal("no ring to take")
				}
			}
			for _, sc := range server {
				waitUntil(t, "the connection's writes to be free", func() bool {
					sc.mu.Lock()
					defer sc.mu.Unlock()
					return sc.wakeLocked()
				})
				sc.reply(fmt.Appendf(nil, `{"type":"pong","id":%q}`, sc.client.ID))
				f.ready = append(f.ready, sc)
			}
			calls0 := counter(t, "fazt_ws_write_calls_total")
			f.running = true
			if f.flushUrgent() {
				t.Fatal("connections left waiting after an urgent flush of all")
			}
			if want := conns / yieldEvery; f.yields != want {
				t.Errorf("%d yields in an urgent flush of %d connections, want %d (one after each %d)", f.yields, conns, want, yieldEvery)
			}
			calls, want := counter(t, "fazt_ws_write_calls_total")-calls0, float64(conns)
			if !mode.plain {
				want = (conns + yieldEvery - 1) / yieldEvery // a call a batch
			}
			if calls != want {
				t.Errorf("%v system calls for %d urgent writes, want %v", calls, conns, want)
			}
			for i, c := range clients {
				if f := c.expect("pong"); f["id"] != c.id {
					t.Fatalf("client %d (%s): %v, want its own pong", i, c.id, f)
				}
			}
		})
	}
}

// A socket that does not take a whole write at once takes the rest from
// the connection's own writer, in order, once the client reads; for
// every connection of a batch, wherever its bytes lie in the flusher's
// buffer.
func TestFlusherFinishesFullSockets(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) {
			skipWithoutRing(t, mode.plain)
			ts := startTestServerConfig(t, Config{PlainWrites: mode.plain, SocketSendBuffer: 8192, WriteTimeout: time.Minute}, nil)
			clients := []*testClient{ts.dial(), ts.dial(), ts.dial()}
			for _, c := range clients {
				c.subscribe("big")
			}
			waits0 := counter(t, "fazt_ws_full_socket_writes_total")
			pad := bytes.Repeat([]byte("x"), 8000)
			const n = 100 // 800 KB a connection: far more than its socket takes
			facts := make([]domain.Fact, n)
			for i := range facts {
				facts[i] = &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "big", Data: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i+1, pad)}
			}
			if _, err := ts.log.Append(context.Background(), facts...); err != nil {
				t.Fatal(err)
			}
			// Nothing is read until the flusher has handed every rest on.
			waitUntil(t, "writes the sockets did not take whole", func() bool {
				return counter(t, "fazt_ws_full_socket_writes_total")-waits0 >= float64(len(clients))
			})
			for i, c := range clients {
				for want := 1; want <= n; want++ {
					f := c.expect("message")
					if f["offset"] != float64(want) || f["data"].(map[string]any)["n"] != float64(want) {
						t.Fatalf("client %d: offset %v, want offset and n %d", i, f["offset"], want)
					}
				}
			}
			// The connections go on as before.
			if _, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "big", Data: []byte(`{"n":0}`)}); err != nil {
				t.Fatal(err)
			}
			for i, c := range clients {
				if f := c.expect("message"); f["offset"] != float64(n+1) {
					t.Fatalf("client %d after the backlog: offset %v", i, f["offset"])
				}
			}
		})
	}
}
