package netyield

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// On one processor, a goroutine that yields with Yield lets a
// goroutine waiting for a socket read what has come, where
// runtime.Gosched would keep it waiting until the runtime's monitor
// polled the network (up to 10 ms later).
// testWait is a flusher's bound on a yield's wait.
const testWait = 100 * time.Microsecond

func TestYieldLetsReadersRun(t *testing.T) {
	t.Run("bounded", func(t *testing.T) { yieldLetsReadersRun(t, testWait) })
	t.Run("unbounded", func(t *testing.T) { yieldLetsReadersRun(t, 0) })
}

func yieldLetsReadersRun(t *testing.T, wait time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for round := range 20 {
		var got atomic.Bool
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 1)
			_, err := server.Read(buf) // parks: nothing sent yet
			got.Store(true)
			done <- err
		}()
		runtime.Gosched() // the reader runs and parks in the netpoller
		if _, err := client.Write([]byte{byte(round)}); err != nil {
			t.Fatal(err)
		}
		// The byte is in the server's socket now (loopback delivers it in
		// the write). Yield as a flusher does, without blocking: the
		// reader may be readied with us and run after us, and on a loaded
		// machine a yield may end at its deadline before the poll, so
		// allow 200 (20 ms at their deadlines, by when the runtime's
		// monitor has polled too). Gosched in its place makes 200 yields
		// in well under its 10 ms, and fails.
		yields := 0
		for !got.Load() && yields < 200 {
			Yield(wait)
			yields++
		}
		if !got.Load() {
			t.Fatalf("round %d: the reader had not run after %d yields", round, yields)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// Yield can be called again and again, and from many goroutines at
// once: each takes an eventfd of its own.
func TestYieldConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				Yield(testWait)
			}
		}()
	}
	wg.Wait()
	yielders.mu.Lock()
	defer yielders.mu.Unlock()
	if yielders.failed {
		t.Fatal("no eventfd could be made or polled")
	}
	if n := len(yielders.free); n == 0 || n > 8+1 {
		t.Fatalf("%d eventfds kept, want 1 to 9", n)
	}
}

// While the process has always something runnable, it does not poll
// (but every 10 ms): Yield comes back at its deadline then, and its
// eventfd goes back to the pool, emptied, for the next call.
func TestYieldWhileBusy(t *testing.T) {
	Yield(testWait) // one eventfd in the pool at least
	yielders.mu.Lock()
	before := len(yielders.free)
	yielders.mu.Unlock()

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	spun := make(chan struct{})
	go func() {
		defer close(spun)
		for !stop.Load() {
			runtime.Gosched() // always runnable: the scheduler never runs out
		}
	}()
	ended := timeouts.Load()
	for range 50 {
		Yield(testWait)
	}
	stop.Store(true)
	<-spun
	// Nothing but the monitor polled meanwhile, every 10 ms: most of the
	// yields ended at their deadline, not all of them at the monitor's.
	if timeouts.Load() == ended {
		t.Error("no yield ended at its deadline while the process was busy")
	}

	yielders.mu.Lock()
	after, failed := len(yielders.free), yielders.failed
	for _, y := range yielders.free {
		if y.armed {
			t.Error("an eventfd went back to the pool armed: its next yield would not wait")
		}
	}
	yielders.mu.Unlock()
	if failed || after != before {
		t.Fatalf("pool: %d eventfds before, %d after (failed %v)", before, after, failed)
	}
	// The eventfd is still good: a reader waiting for its socket runs.
	yieldLetsReadersRun(t, testWait)
}
