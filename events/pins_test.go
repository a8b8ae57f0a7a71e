package events

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestPinnedChannelIsNotTrimmed checks that retention leaves a channel
// alone while a replay has it pinned, and trims it once unpinned.
func TestPinnedChannelIsNotTrimmed(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := l.Append(ctx, broadcast("a", "x", "1")); err != nil {
			t.Fatal(err)
		}
	}
	policy := RetentionPolicy{MaxMessages: 5}
	_, unpin := l.PinHistory("a", "x")
	_, other := l.PinHistory("a", "x")
	n, err := l.TrimChannel(ctx, "a", "x", policy, time.Now(), 4)
	if err != nil || n != 0 {
		t.Fatalf("pinned channel trimmed: %d, %v", n, err)
	}
	unpin()
	unpin() // idempotent: the other pin still holds
	if n, _ := l.TrimChannel(ctx, "a", "x", policy, time.Now(), 4); n != 0 {
		t.Fatalf("trimmed while still pinned once: %d", n)
	}
	other()
	n, err = l.TrimChannel(ctx, "a", "x", policy, time.Now(), 4)
	if err != nil || n != 15 {
		t.Fatalf("after unpin: trimmed %d, %v; want 15", n, err)
	}
	info, _ := l.Channel(ctx, "a", "x")
	if info.First != 16 || info.Head != 20 {
		t.Fatalf("after trim: %+v", info)
	}
}

// TestATrimHoldsOnlyItsChannelsPins: while a channel is being trimmed
// (its transaction may wait seconds for the writer), a pin of another
// channel is taken at once, and a pin of that channel waits for the trim
// to end. Before, the pin lock was held for the whole trim: every
// subscribe of every channel waited for it.
func TestATrimHoldsOnlyItsChannelsPins(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	inTrim, release := make(chan struct{}), make(chan struct{})
	var trimDone atomic.Bool
	trimReturned := make(chan struct{})
	go func() {
		defer close(trimReturned)
		l.unlessPinned("a", "x", 1, 1, func(uint64) error {
			close(inTrim)
			<-release
			trimDone.Store(true)
			return nil
		})
	}()
	<-inTrim
	other := make(chan struct{})
	go func() { _, unpin := l.PinHistory("a", "y"); unpin(); close(other) }()
	select {
	case <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("a pin of another channel waited for the trim")
	}
	same, unpinNow, unpinned := make(chan bool), make(chan struct{}), make(chan struct{})
	go func() {
		_, unpin := l.PinHistory("a", "x")
		same <- trimDone.Load()
		<-unpinNow
		unpin()
		close(unpinned)
	}()
	// A waiting pin counts already, so that the trim takes no further
	// batch of the channel.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.pins.mu.Lock()
		n := len(l.pins.held[chanKey{"a", "x"}])
		l.pins.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a pin waiting for a trim does not count")
		}
	}
	select { // the pin must still be waiting when the trim is let go
	case <-same:
		t.Fatal("a pin of the channel being trimmed was taken during the trim")
	case <-time.After(200 * time.Millisecond):
	}
	// The trim's next batch, which comes as soon as this one ends, is
	// not taken: the waiting pin holds the channel already. (Before, the
	// trim could win the lock back at each batch, and the pin wait for
	// the whole trim.)
	close(release)
	<-trimReturned
	if ran, _ := l.unlessPinned("a", "x", 1, 1, func(uint64) error { return nil }); ran {
		t.Fatal("a trim's next batch ran while a pin waited")
	}
	if !<-same {
		t.Fatal("the pin came before the trim's end")
	}
	close(unpinNow)
	<-unpinned
	if ran, _ := l.unlessPinned("a", "x", 1, 1, func(uint64) error { return nil }); !ran {
		t.Fatal("a trim after the pin's end did not run")
	}
}

// A pin narrowed to the offsets a replay has yet to read lets retention
// trim what is older, and no more: a channel that new subscribers replay
// all the time is still trimmed. A pin not yet narrowed (its replay's
// start is not known) holds the whole history, and the lowest of several
// pins bounds the trim.
func TestNarrowedPinsBoundTheTrim(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := l.Append(ctx, broadcast("a", "x", "1")); err != nil {
			t.Fatal(err)
		}
	}
	policy := RetentionPolicy{MaxMessages: 5} // drops 1 to 15
	trim := func() (int, uint64) {
		t.Helper()
		n, err := l.TrimChannel(ctx, "a", "x", policy, time.Now(), 4)
		if err != nil {
			t.Fatal(err)
		}
		info, err := l.Channel(ctx, "a", "x")
		if err != nil {
			t.Fatal(err)
		}
		if info.Head != 20 {
			t.Fatalf("head %d after a trim; want 20", info.Head)
		}
		return n, info.First
	}
	keepA, unpinA := l.PinHistory("a", "x")
	keepB, unpinB := l.PinHistory("a", "x")
	if n, first := trim(); n != 0 || first != 1 {
		t.Fatalf("whole pins: trimmed %d, first %d; want 0, 1", n, first)
	}
	keepA(7)
	if n, first := trim(); n != 0 || first != 1 {
		t.Fatalf("one pin narrowed, one whole: trimmed %d, first %d; want 0, 1", n, first)
	}
	keepB(10)
	if n, first := trim(); n != 6 || first != 7 {
		t.Fatalf("pins from 7 and 10: trimmed %d, first %d; want 6, 7", n, first)
	}
	keepA(3) // lower than before: changes nothing
	keepA(12)
	if n, first := trim(); n != 3 || first != 10 {
		t.Fatalf("pins from 12 and 10: trimmed %d, first %d; want 3, 10", n, first)
	}
	unpinB()
	if n, first := trim(); n != 2 || first != 12 {
		t.Fatalf("a pin from 12: trimmed %d, first %d; want 2, 12", n, first)
	}
	unpinA()
	if n, first := trim(); n != 4 || first != 16 {
		t.Fatalf("no pin: trimmed %d, first %d; want 4, 16", n, first)
	}
	if len(l.pins.held) != 0 {
		t.Fatalf("pins left after every unpin: %v", l.pins.held)
	}
}
