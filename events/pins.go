package events

import "sync"

// pins keeps retention away from the channels that a replay is reading.
// A subscribe pins its channel before it reads the channel's first retained
// offset and unpins when its replay is done; retention holds the same lock
// from its check to its commit, so a pin either stops a trim or comes after
// it, and a replay never finds the start it announced trimmed away.
type pins struct {
	mu     sync.Mutex
	counts map[chanKey]int
}

// PinHistory stops retention from trimming a channel until the returned
// function is called. Safe for concurrent use; unpin is idempotent.
func (l *Log) PinHistory(app, channel string) (unpin func()) {
	k := chanKey{app, channel}
	l.pins.mu.Lock()
	if l.pins.counts == nil {
		l.pins.counts = map[chanKey]int{}
	}
	l.pins.counts[k]++
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

// unlessPinned runs trim with the pin lock held unless the channel is
// pinned; it reports whether trim ran.
func (l *Log) unlessPinned(app, channel string, trim func() error) (ran bool, err error) {
	l.pins.mu.Lock()
	defer l.pins.mu.Unlock()
	if l.pins.counts[chanKey{app, channel}] > 0 {
		return false, nil
	}
	return true, trim()
}
