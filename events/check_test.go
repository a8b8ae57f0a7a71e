package events

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckChannelsAfterRetention: a healthy log stays healthy for the
// channel checks whatever retention did: a channel trimmed whole (its
// head kept by its floor), one trimmed to its newest message, and the
// audit's old events dropped.
func TestCheckChannelsAfterRetention(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	for _, ch := range []string{"whole", "newest", "kept"} {
		for range 10 {
			if _, err := l.Append(ctx, broadcast("a", ch, "1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	later := time.Now().Add(time.Hour)
	if _, err := l.TrimChannel(ctx, "a", "whole", RetentionPolicy{MaxAge: time.Minute}, later, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TrimChannel(ctx, "a", "newest", RetentionPolicy{MaxMessages: 1}, time.Now(), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TrimAudit(ctx, "a", later.UnixMilli(), 4); err != nil {
		t.Fatal(err)
	}
	for ch, first := range map[string]uint64{"whole": 11, "newest": 10, "kept": 1} {
		info, err := l.Channel(ctx, "a", ch)
		if err != nil || info.Head != 10 || info.First != first {
			t.Fatalf("%s after retention: %+v, %v; want first offset %d", ch, info, err, first)
		}
	}
	problems, channels, err := l.CheckChannels(ctx)
	if err != nil || channels != 3 || len(problems) != 0 {
		t.Fatalf("%d channels, problems %q, %v", channels, problems, err)
	}
}
