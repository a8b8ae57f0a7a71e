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

// size is about how much memory r holds: its payload and, for a
// broadcast, the data its fact still points to.
func (r *record) size() int {
	n := len(r.payload) + len(r.uuid) + 128
	if mb, ok := r.ev.Fact.(*domain.MessageBroadcast); ok {
		n += len(mb.Data)
	}
	return n
}

// tail keeps the most recent committed records in a ring so that live
// Subscribers read them from memory, and wakes waiters on every commit.
// The ring holds at most len(ring) records and about maxBytes of them,
// whichever is less: big messages would otherwise make a ring of 16,384
// records a gigabyte.
type tail struct {
	mu       sync.Mutex
	ring     []*record
	head     uint64 // seq of the newest record
	oldest   uint64 // seq of the oldest record the ring holds
	bytes    int    // the sizes of the records the ring holds
	maxBytes int
	changed  chan struct{}
	done     bool
}

func newTail(size, maxBytes int) *tail {
	return &tail{ring: make([]*record, size), maxBytes: maxBytes, changed: make(chan struct{}), oldest: 1}
}

func (t *tail) push(recs []*record) {
	if len(recs) == 0 {
		return
	}
	t.mu.Lock()
	n := uint64(len(t.ring))
	for _, r := range recs {
		i := r.ev.Seq % n
		if old := t.ring[i]; old != nil {
			t.bytes -= old.size()
		}
		t.ring[i] = r
		t.bytes += r.size()
		t.head = r.ev.Seq
	}
	if t.head >= n && t.head-n+1 > t.oldest {
		t.oldest = t.head - n + 1
	}
	// Past the byte budget the oldest go first; the newest always stays.
	for t.bytes > t.maxBytes && t.oldest < t.head {
		i := t.oldest % n
		if r := t.ring[i]; r != nil && r.ev.Seq == t.oldest {
			t.bytes -= r.size()
			t.ring[i] = nil
		}
		t.oldest++
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
