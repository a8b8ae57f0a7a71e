package ws

import (
	"sync/atomic"
	"time"
)

// workers runs connections' readers, and the requests they read, on
// goroutines that outlive one turn. A reader starts each time a parked
// connection has something to read, and a request can need a deep stack
// (SQLite, JSON, JS hooks); on a new goroutine each time, that stack grew
// from its smallest size, a copy at each doubling, on nearly every
// connect and every frame from a quiet client. A worker keeps the stack
// it grew for the next turn (the collector halves it while it is mostly
// unused), and ends after idle with nothing to do, or with done.
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only to a waiting worker
	idle  time.Duration
	done  <-chan struct{}
	live  atomic.Int32 // workers running or waiting
}

func newWorkers(idle time.Duration, done <-chan struct{}) *workers {
	return &workers{tasks: make(chan func()), idle: idle, done: done}
}

// run runs f on a waiting worker, or on a new one if none waits.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		w.live.Add(1)
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	defer w.live.Add(-1)
	var t *time.Timer
	for {
		f()
		if t == nil {
			t = time.NewTimer(w.idle)
		} else {
			t.Reset(w.idle)
		}
		select {
		case f = <-w.tasks:
		case <-t.C:
			return
		case <-w.done:
			t.Stop()
			return
		}
	}
}
