package ws

import (
	"sync"
	"sync/atomic"
	"time"
)

// workers runs connections' readers, and the requests they read, on
// goroutines that outlive one turn. A reader starts each time a parked
// connection has something to read, and a request can need a deep stack
// (SQLite, JSON, JS hooks); on a new goroutine each time, that stack grew
// from its smallest size, a copy at each doubling, on nearly every
// connect and every frame from a quiet client.
//
// A worker that finishes waits for another turn. The one that finished
// last gets the next (its stack is the likeliest to be still grown: the
// collector halves a mostly unused one), so after a burst the others stay
// idle and end once they have waited idle; all end with done.
type workers struct {
	idle time.Duration
	done <-chan struct{}
	live atomic.Int32 // workers running or waiting

	mu  sync.Mutex
	top *worker // the stack of waiting workers, the last to finish on top
}

// A worker's turns come on its own channel, which holds the one task sent
// to it once it has been taken off the waiting stack.
type worker struct {
	next chan func()
	// Under workers.mu: its place in the stack while it waits.
	waiting   bool
	up, below *worker
}

func newWorkers(idle time.Duration, done <-chan struct{}) *workers {
	return &workers{idle: idle, done: done}
}

// run runs f on the worker that last finished, or on a new one if none
// waits. It never blocks.
func (w *workers) run(f func()) {
	w.mu.Lock()
	if wk := w.top; wk != nil {
		w.remove(wk)
		w.mu.Unlock()
		wk.next <- f
		return
	}
	w.mu.Unlock()
	w.live.Add(1)
	go w.work(f)
}

func (w *workers) work(f func()) {
	defer w.live.Add(-1)
	wk := &worker{next: make(chan func(), 1)}
	var t *time.Timer
	for {
		f()
		w.mu.Lock()
		wk.waiting, wk.below = true, w.top
		if w.top != nil {
			w.top.up = wk
		}
		w.top = wk
		w.mu.Unlock()
		if t == nil {
			t = time.NewTimer(w.idle)
		} else {
			t.Reset(w.idle)
		}
		select {
		case f = <-wk.next:
			continue
		case <-t.C:
		case <-w.done:
			t.Stop()
		}
		w.mu.Lock()
		left := wk.waiting
		if left {
			w.remove(wk)
		}
		w.mu.Unlock()
		if !left {
			// Taken off the stack meanwhile: its task is on the way.
			f = <-wk.next
			continue
		}
		return
	}
}

// remove takes a waiting worker off the stack, with w.mu held.
func (w *workers) remove(wk *worker) {
	if wk.up != nil {
		wk.up.below = wk.below
	} else {
		w.top = wk.below
	}
	if wk.below != nil {
		wk.below.up = wk.up
	}
	wk.waiting, wk.up, wk.below = false, nil, nil
}
