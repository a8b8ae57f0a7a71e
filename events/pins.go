package events

import (
	"math"
	"sync"
	"sync/atomic"
)

// pins keeps retention away from the messages that a replay has yet to
// read. A subscribe pins its channel's whole history before it reads the
// channel's first retained offset; once it knows where its replay starts,
// and again after each page, it narrows the pin to the offsets it has yet
// to read (keep), and it unpins when the replay is done. A channel that
// new subscribers replay all day is then still trimmed, up to the oldest
// offset a replay still needs: with whole pins held for whole replays, it
// was skipped by every pass that found one running, and a slow client
// replaying a long history held it off for as long as it took.
//
// Retention marks the channel it trims from its check to its commit, and
// a pin of that channel waits for the mark to go: a pin either bounds a
// trim or comes after it, and a replay never finds the start it announced
// trimmed away. Pins of other channels do not wait (the lock was held for
// the whole trim, which waits for the writer: up to 5 s of every
// subscribe on every channel).
type pins struct {
	mu       sync.Mutex
	cond     *sync.Cond // on mu: a trim ended
	held     map[chanKey]map[*pin]struct{}
	trimming map[chanKey]bool
}

// A pin is one replay's hold on a channel: every offset after upto, the
// last one it no longer needs; 0 for the whole history (under pins.mu).
type pin struct{ upto uint64 }

func (p *pins) init() {
	if p.held == nil {
		p.held, p.trimming = map[chanKey]map[*pin]struct{}{}, map[chanKey]bool{}
		p.cond = sync.NewCond(&p.mu)
	}
}

// PinHistory stops retention from trimming a channel's messages until
// unpin is called; it waits for a trim of the channel under way to end.
// keep(from) narrows the pin to the offsets from on, the ones the replay
// has yet to read; a lower from than before changes nothing. Safe for
// concurrent use; unpin is idempotent.
func (l *Log) PinHistory(app, channel string) (keep func(from uint64), unpin func()) {
	k := chanKey{app, channel}
	p := &pin{}
	l.pins.mu.Lock()
	l.pins.init()
	// Counted before waiting: the trim under way then takes no further
	// batch of the channel (unlessPinned), rather than winning the lock
	// back batch after batch while this waits.
	set := l.pins.held[k]
	if set == nil {
		set = map[*pin]struct{}{}
		l.pins.held[k] = set
	}
	set[p] = struct{}{}
	for l.pins.trimming[k] {
		l.pins.cond.Wait()
	}
	l.pins.mu.Unlock()
	keep = func(from uint64) {
		if from == 0 {
			return // the whole history, as before
		}
		l.pins.mu.Lock()
		p.upto = max(p.upto, from-1)
		l.pins.mu.Unlock()
	}
	var once sync.Once
	return keep, func() {
		once.Do(func() {
			l.pins.mu.Lock()
			// The channel's set holds p until now: a set is dropped
			// only once empty.
			set := l.pins.held[k]
			if delete(set, p); len(set) == 0 {
				delete(l.pins.held, k)
			}
			l.pins.mu.Unlock()
		})
	}
}

// unlessPinned runs trim, with the channel marked as being trimmed, to
// drop offsets first to upto, or fewer: trim gets the newest offset it
// may drop, upto or, when a replay still needs it, the last one before
// the oldest that a replay needs. It does not run trim, and reports false,
// when the channel is being trimmed already or when a replay needs first
// (or the whole history).
func (l *Log) unlessPinned(app, channel string, first, upto uint64, trim func(upto uint64) error) (ran bool, err error) {
	k := chanKey{app, channel}
	l.pins.mu.Lock()
	l.pins.init()
	limit := upto
	for p := range l.pins.held[k] {
		limit = min(limit, p.upto)
	}
	if limit < first || l.pins.trimming[k] {
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
	return true, trim(limit)
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
