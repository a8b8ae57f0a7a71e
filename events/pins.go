package events

import (
	"math"
	"sync"
	"sync/atomic"
)

// pins keeps retention away from the channels that a replay is reading.
// A subscribe pins its channel before it reads the channel's first retained
// offset and unpins when its replay is done. Retention marks the channel
// it trims from its check to its commit, and a pin of that channel waits
// for the mark to go: a pin either stops a trim or comes after it, and a
// replay never finds the start it announced trimmed away. Pins of other
// channels do not wait (the lock was held for the whole trim, which waits
// for the writer: up to 5 s of every subscribe on every channel).
type pins struct {
	mu       sync.Mutex
	cond     *sync.Cond // on mu: a trim ended
	counts   map[chanKey]int
	trimming map[chanKey]bool
}

func (p *pins) init() {
	if p.counts == nil {
		p.counts, p.trimming = map[chanKey]int{}, map[chanKey]bool{}
		p.cond = sync.NewCond(&p.mu)
	}
}

// PinHistory stops retention from trimming a channel until the returned
// function is called; it waits for a trim of the channel under way to
// end. Safe for concurrent use; unpin is idempotent.
func (l *Log) PinHistory(app, channel string) (unpin func()) {
	k := chanKey{app, channel}
	l.pins.mu.Lock()
	l.pins.init()
	// Counted before waiting: the trim under way then takes no further
	// batch of the channel (unlessPinned), rather than winning the lock
	// back batch after batch while this waits.
	l.pins.counts[k]++
	for l.pins.trimming[k] {
		l.pins.cond.Wait()
	}
	l.pins.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.pins.mu.Lock()
			if l.pins.counts[k]--; l.pins.counts[k] <= 0 {
				delete(l.pins.counts, k)
			}
			l.pins.mu.Unlock()
		})
	}
}

// unlessPinned runs trim, with the channel marked as being trimmed,
// unless the channel is pinned (or being trimmed already); it reports
// whether trim ran.
func (l *Log) unlessPinned(app, channel string, trim func() error) (ran bool, err error) {
	k := chanKey{app, channel}
	l.pins.mu.Lock()
	l.pins.init()
	if l.pins.counts[k] > 0 || l.pins.trimming[k] {
		l.pins.mu.Unlock()
		return false, nil
	}
	l.pins.trimming[k] = true
	l.pins.mu.Unlock()
	defer func() {
		l.pins.mu.Lock()
		delete(l.pins.trimming, k)
		l.pins.cond.Broadcast()
		l.pins.mu.Unlock()
	}()
	return true, trim()
}

// readers are the positions of the running subscriptions that deliver
// broadcasts. Retention leaves every message a subscription has yet to
// read: a burst can outrun the in-memory tail, and the live fan-out then
// reads the broadcasts back from the file, where a trimmed message would
// have lost its data.
type readers struct {
	mu  sync.Mutex
	pos map[*atomic.Uint64]struct{}
}

// trackReader registers a subscription at position after; the caller
// stores each new position in the returned cursor and calls done when the
// subscription ends.
func (l *Log) trackReader(after uint64) (cursor *atomic.Uint64, done func()) {
	cursor = new(atomic.Uint64)
	cursor.Store(after)
	l.readers.mu.Lock()
	if l.readers.pos == nil {
		l.readers.pos = map[*atomic.Uint64]struct{}{}
	}
	l.readers.pos[cursor] = struct{}{}
	l.readers.mu.Unlock()
	return cursor, func() {
		l.readers.mu.Lock()
		delete(l.readers.pos, cursor)
		l.readers.mu.Unlock()
	}
}

// readLow is the sequence up to which every running subscription has read
// the log; math.MaxInt64 when none is running.
func (l *Log) readLow() uint64 {
	low := uint64(math.MaxInt64)
	l.readers.mu.Lock()
	for c := range l.readers.pos {
		low = min(low, c.Load())
	}
	l.readers.mu.Unlock()
	return low
}
