package events

import (
	"context"
	"path/filepath"
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
