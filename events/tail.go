package events

import (
	"context"
	"sync"

	"github.com/fazt-realtime/fazt/domain"
)

// record is one committed event as the tail keeps it: the event, its message
// uuid, and its full JSON payload.
type record struct {
	ev      domain.Event
	uuid    string
	payload []byte
}

// tail keeps the most recent committed records in a ring so that live
// Subscribers read them from memory, and wakes waiters on every commit.
type tail struct {
	mu      sync.Mutex
	ring    []*record
	head    uint64 // seq of the newest record
	oldest  uint64 // seq of the oldest record the ring holds
	changed chan struct{}
	done    bool
}

func newTail(size int) *tail {
	return &tail{ring: make([]*record, size), changed: make(chan struct{}), oldest: 1}
}

func (t *tail) push(recs []*record) {
	if len(recs) == 0 {
		return
	}
	t.mu.Lock()
	for _, r := range recs {
		t.ring[r.ev.Seq%uint64(len(t.ring))] = r
		t.head = r.ev.Seq
	}
	if n := uint64(len(t.ring)); t.head >= n && t.head-n+1 > t.oldest {
		t.oldest = t.head - n + 1
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

func (t *tail) lastSeq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.head
}

// read returns up to max records after seq. ok is false when the ring no
// longer holds seq+1, so the caller must read the file.
func (t *tail) read(after uint64, max int) (recs []*record, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if after >= t.head {
		return nil, true
	}
	if after+1 < t.oldest {
		return nil, false
	}
	for s := after + 1; s <= t.head && len(recs) < max; s++ {
		recs = append(recs, t.ring[s%uint64(len(t.ring))])
	}
	return recs, true
}

// wait blocks until an event after seq is committed, ctx ends or the tail is
// closed; it reports whether there may be something new.
func (t *tail) wait(ctx context.Context, after uint64, stop <-chan struct{}) bool {
	t.mu.Lock()
	if t.head > after {
		t.mu.Unlock()
		return true
	}
	if t.done {
		t.mu.Unlock()
		return false
	}
	ch := t.changed
	t.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

func (t *tail) close() {
	t.mu.Lock()
	if !t.done {
		t.done = true
		close(t.changed)
		t.changed = make(chan struct{})
	}
	t.mu.Unlock()
}
