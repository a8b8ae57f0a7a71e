package ws

import (
	"log/slog"
	"sync"

	"github.com/fazt-realtime/fazt/internal/uring"
)

// The flushers' io_uring rings, shared by every Server in the process: a
// flusher takes one for each turn of its goroutine and puts it back when
// the turn ends, so there are as many as flushers run at once, and an
// idle process holds one or a few. Where the kernel has no io_uring that
// sends, or refuses it (see uring.New), or a ring has failed, there are
// none, and the flushers write with one send(2) each.
var rings struct {
	once  sync.Once
	mu    sync.Mutex
	err   error // why there are none (under mu once once is done)
	free  []*uring.Ring
	short bool // takeRing could not make a ring, and said so
}

// ringEntries is how many writes a flusher makes in one call: a batch.
const ringEntries = yieldEvery

// ringsErr reports why the flushers write without a ring, or nil.
func ringsErr() error {
	rings.once.Do(func() {
		r, err := uring.New(ringEntries)
		rings.mu.Lock()
		defer rings.mu.Unlock()
		if err != nil {
			rings.err = err
			return
		}
		rings.free = append(rings.free, r)
	})
	rings.mu.Lock()
	defer rings.mu.Unlock()
	return rings.err
}

// takeRing returns a ring for a flusher's turn, or nil: none here, or
// none to be had now (the turn then writes with send(2); the first time,
// it says why, in log).
func takeRing(log *slog.Logger) *uring.Ring {
	if ringsErr() != nil {
		return nil
	}
	rings.mu.Lock()
	if n := len(rings.free); n > 0 {
		r := rings.free[n-1]
		rings.free = rings.free[:n-1]
		rings.mu.Unlock()
		return r
	}
	rings.mu.Unlock()
	r, err := uring.New(ringEntries)
	if err != nil {
		rings.mu.Lock()
		first := !rings.short
		rings.short = true
		rings.mu.Unlock()
		if first {
			// Before Linux 5.12 a ring counts against RLIMIT_MEMLOCK,
			// and the process may have as many descriptors as it may.
			log.Warn("a connection writer found no io_uring ring to take: it writes with send(2) until one is free (said once)", "err", err)
		}
		return nil
	}
	return r
}

// putRing returns a ring at the end of a turn.
func putRing(r *uring.Ring) {
	rings.mu.Lock()
	defer rings.mu.Unlock()
	if rings.err != nil {
		r.Close()
		return
	}
	rings.free = append(rings.free, r)
}

// ringFailed closes a ring that failed, and every idle one: the flushers
// write with send(2) from here on.
func ringFailed(r *uring.Ring, err error, log *slog.Logger) {
	r.Close()
	rings.mu.Lock()
	defer rings.mu.Unlock()
	if rings.err == nil {
		// The first failure (a ring exists, so setup had none).
		rings.err = err
		log.Error("io_uring failed; socket writes go one send(2) each from now on", "err", err)
	}
	for _, r := range rings.free {
		r.Close()
	}
	rings.free = nil
}
