package ws

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestWorkersReuseAWaitingWorker checks the pool's life cycle in a bubble
// (synctest.Wait returns once every worker is blocked; time is fake): a
// task goes to a waiting worker rather than a new goroutine, two at once
// take two, an idle worker ends after the idle time, and all end with
// done.
func TestWorkersReuseAWaitingWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		w := newWorkers(10*time.Second, done)
		live := func(want int32, when string) {
			t.Helper()
			synctest.Wait()
			if got := w.live.Load(); got != want {
				t.Fatalf("%s: %d workers, want %d", when, got, want)
			}
		}
		ran := 0
		w.run(func() { ran++ })
		live(1, "after the first task")
		w.run(func() { ran++ })
		live(1, "after a second task, the first worker waiting")
		if ran != 2 {
			t.Fatalf("ran %d tasks, want 2", ran)
		}

		release := make(chan struct{})
		block := func() { <-release }
		w.run(block)
		w.run(block)
		live(2, "with two tasks running at once")
		close(release)
		live(2, "with both waiting")

		time.Sleep(10*time.Second + time.Millisecond)
		live(0, "after the idle time")

		w.run(func() {})
		live(1, "after a task on an empty pool")
		time.Sleep(5 * time.Second)
		w.run(func() {})
		time.Sleep(6 * time.Second)
		live(1, "6 s after its last task, 11 s after its first")
		close(done)
		live(0, "after done")
	})
}
