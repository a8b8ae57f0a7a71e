package ws

import (
	"log/slog"
	"testing"
	"time"
)

// rounds feeds f n rounds as run records them: each starts every after
// the previous one's start, from start on, takes took, and makes writes
// writes, of which repeats to connections it wrote for within its most
// hold. It returns when the next round would start.
func rounds(t *testing.T, f *flusher, start time.Time, n int, every, took time.Duration, writes, repeats int) time.Time {
	t.Helper()
	now := start
	for range n {
		f.beginRound(now)
		if f.writes != 0 || f.repeats != 0 {
			t.Fatalf("a round starts with %d writes, %d repeats counted", f.writes, f.repeats)
		}
		f.writes, f.repeats = writes, repeats
		f.endRound(now.Add(took))
		if f.busy < 0 || f.busy > 1 || f.repeat < 0 || f.repeat > 1 {
			t.Fatalf("load out of range: busy %v, repeats %v", f.busy, f.repeat)
		}
		now = now.Add(every)
	}
	return now
}

// TestFlusherHoldsLongerUnderLoad checks the write delay's response to
// load: a flusher that spends little of its time writing keeps to the
// write delay; one busy writing for the same connections again and again
// holds broadcasts back for up to the most it may; one busy writing for
// connections that get a broadcast now and then does not; the hold
// shrinks back once the load goes, and without a longer most it never
// grows.
func TestFlusherHoldsLongerUnderLoad(t *testing.T) {
	const delay, most = 2 * time.Millisecond, 10 * time.Millisecond
	f := newFlusher(delay, most, false, slog.Default())
	if p := f.period(); p != delay {
		t.Fatalf("a new flusher keeps %v between rounds, want %v", p, delay)
	}
	now := time.Unix(1e9, 0)

	// Rounds of 3 ms every 20 ms, each writing for the same connections:
	// busy 15% of the time.
	now = rounds(t, f, now, 100, 20*time.Millisecond, 3*time.Millisecond, 1000, 1000)
	if p := f.period(); p != delay {
		t.Fatalf("busy %.2f: %v between rounds, want the write delay %v", f.busy, p, delay)
	}

	// Rounds taking most of the time between them: the hold grows to the
	// most, and stays there while the load lasts.
	for range 100 {
		p := f.period()
		now = rounds(t, f, now, 1, p, p*6/10, 1000, 1000)
	}
	if p := f.period(); p != most {
		t.Fatalf("busy %.2f: %v between rounds, want the most, %v", f.busy, p, most)
	}

	// Halfway between a fifth and two fifths busy: halfway between the
	// two delays.
	now = rounds(t, f, now, 100, 10*time.Millisecond, 3*time.Millisecond, 1000, 1000)
	if p, want := f.period(), (delay+most)/2; p < want-time.Millisecond/10 || p > want+time.Millisecond/10 {
		t.Fatalf("busy %.2f: %v between rounds, want about %v", f.busy, p, want)
	}

	// As busy, but no write goes to a connection written for lately (a
	// connection gets a broadcast now and then): waiting would not share
	// writes, so it does not wait. With a quarter of the writes repeats,
	// half the growth.
	now = rounds(t, f, now, 100, 10*time.Millisecond, 6*time.Millisecond, 1000, 0)
	if p := f.period(); p > delay+time.Millisecond/100 {
		t.Fatalf("busy %.2f, repeats %.2f: %v between rounds, want %v", f.busy, f.repeat, p, delay)
	}
	now = rounds(t, f, now, 100, 10*time.Millisecond, 6*time.Millisecond, 1000, 250)
	if p, want := f.period(), (delay+most)/2; p < want-time.Millisecond/10 || p > want+time.Millisecond/10 {
		t.Fatalf("busy %.2f, repeats %.2f: %v between rounds, want about %v", f.busy, f.repeat, p, want)
	}

	// A round after a pause of a second: the load is gone, and so is the
	// longer hold, at once.
	now = rounds(t, f, now.Add(time.Second), 1, 20*time.Millisecond, 3*time.Millisecond, 1000, 1000)
	if p := f.period(); p != delay {
		t.Fatalf("after a pause, busy %.2f: %v between rounds, want %v", f.busy, p, delay)
	}

	// A most no longer than the write delay: the write delay at any load.
	g := newFlusher(delay, 0, false, slog.Default())
	rounds(t, g, now, 100, delay, delay, 1000, 1000)
	if p := g.period(); p != delay {
		t.Fatalf("without a longer most, busy %.2f: %v between rounds, want %v", g.busy, p, delay)
	}
}
