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
		live := workerCount(t, w)
		ran := 0
		w.run(func() { ran++ })
		live(1, "after the first task")
		w.run(func() { ran++ })
		live(1, "after a second task, the first worker waiting")
		if ran != 2 {
			t.Fatalf("ran %d tasks, want 2", ran)
		}

		release := make(chan struct{})
		defer close(release) // on failure, lets the bubble end
		block := func() { <-release }
		w.run(block)
		w.run(block)
		live(2, "with two tasks running at once")
		release <- struct{}{}
		release <- struct{}{}
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

// TestWorkersShrinkAfterABurst checks that the worker that finished last
// takes the next task, so that after a burst a steady trickle of tasks
// keeps one worker busy and the others end. (Handed out in turn, the
// trickle would keep every worker of the burst alive.)
func TestWorkersShrinkAfterABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		defer close(done)
		w := newWorkers(10*time.Second, done)
		live := workerCount(t, w)
		const burst = 4
		release := make([]chan struct{}, burst)
		for i := range release {
			release[i] = make(chan struct{})
			w.run(func() { <-release[i] })
		}
		live(burst, "during the burst")
		for _, r := range release {
			close(r)
			synctest.Wait() // each finishes in turn; the last is on top
		}
		var last int
		for i := range 25 {
			w.run(func() { last = i })
			time.Sleep(time.Second)
		}
		live(1, "after 25 s of one task a second")
		if last != 24 {
			t.Fatalf("the last task to run was %d, want 24", last)
		}
	})
}

// workerCount returns a check that, once every goroutine of the bubble
// is blocked, w has want workers.
func workerCount(t *testing.T, w *workers) func(want int32, when string) {
	return func(want int32, when string) {
		t.Helper()
		synctest.Wait()
		if got := w.live.Load(); got != want {
			t.Fatalf("%s: %d workers, want %d", when, got, want)
		}
	}
}

// TestWorkersRunATaskHandedOverAsTheyEnd hands a task to a waiting worker
// just as done ends the pool: whether the worker sees done first or the
// task, the task runs, since a reader that never ran would leave its
// connection hanging. (The two orders race; a hundred rounds see both.)
func TestWorkersRunATaskHandedOverAsTheyEnd(t *testing.T) {
	for range 100 {
		synctest.Test(t, func(t *testing.T) {
			done := make(chan struct{})
			w := newWorkers(10*time.Second, done)
			w.run(func() {})
			synctest.Wait() // the worker waits
			ran := false
			close(done)
			w.run(func() { ran = true })
			synctest.Wait()
			if !ran {
				t.Fatal("a task handed to a worker as the pool ended did not run")
			}
			if n := w.live.Load(); n != 0 {
				t.Fatalf("%d workers after done", n)
			}
		})
	}
}
