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
	unpin := l.PinHistory("a", "x")
	other := l.PinHistory("a", "x")
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
		l.unlessPinned("a", "x", func() error {
			close(inTrim)
			<-release
			trimDone.Store(true)
			return nil
		})
	}()
	<-inTrim
	other := make(chan struct{})
	go func() { l.PinHistory("a", "y")(); close(other) }()
	select {
	case <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("a pin of another channel waited for the trim")
	}
	same, unpinNow, unpinned := make(chan bool), make(chan struct{}), make(chan struct{})
	go func() {
		unpin := l.PinHistory("a", "x")
		same <- trimDone.Load()
		<-unpinNow
		unpin()
		close(unpinned)
	}()
	// A waiting pin counts already, so that the trim takes no further
	// batch of the channel.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.pins.mu.Lock()
		n := l.pins.counts[chanKey{"a", "x"}]
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
	if ran, _ := l.unlessPinned("a", "x", func() error { return nil }); ran {
		t.Fatal("a trim's next batch ran while a pin waited")
	}
	if !<-same {
		t.Fatal("the pin came before the trim's end")
	}
	close(unpinNow)
	<-unpinned
	if ran, _ := l.unlessPinned("a", "x", func() error { return nil }); !ran {
		t.Fatal("a trim after the pin's end did not run")
	}
}
