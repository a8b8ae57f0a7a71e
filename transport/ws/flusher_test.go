package ws

import (
	"testing"
	"time"
)

// rounds feeds f n rounds, each starting every after the previous one's
// start and taking took, as run would measure them, from start on; it
// returns when the next round would start.
func rounds(f *flusher, start time.Time, n int, every, took time.Duration) time.Time {
	now := start
	for range n {
		f.load(now)
		f.last, f.took = now, took
		now = now.Add(every)
	}
	return now
}

// TestFlusherHoldsLongerUnderLoad checks the write delay's response to
// load: a flusher that spends little of its time writing keeps to the
// write delay; one busy writing holds broadcasts back for up to the most
// it may; the hold shrinks back once the load goes, and without a longer
// most it never grows.
func TestFlusherHoldsLongerUnderLoad(t *testing.T) {
	const delay, most = 2 * time.Millisecond, 10 * time.Millisecond
	f := newFlusher(delay, most)
	if p := f.period(); p != delay {
		t.Fatalf("a new flusher keeps %v between rounds, want %v", p, delay)
	}
	now := time.Unix(1e9, 0)

	// Rounds of 3 ms every 20 ms: busy 15% of the time.
	now = rounds(f, now, 100, 20*time.Millisecond, 3*time.Millisecond)
	if p := f.period(); p != delay {
		t.Fatalf("busy %.2f: %v between rounds, want the write delay %v", f.busy, p, delay)
	}

	// Rounds taking most of the time between them: the hold grows to the
	// most, and stays there while the load lasts.
	for range 100 {
		p := f.period()
		now = rounds(f, now, 1, p, p*6/10)
	}
	if p := f.period(); p != most {
		t.Fatalf("busy %.2f: %v between rounds, want the most, %v", f.busy, p, most)
	}

	// Halfway between a fifth and two fifths busy: halfway between the
	// two delays.
	now = rounds(f, now, 100, 10*time.Millisecond, 3*time.Millisecond)
	if p, want := f.period(), (delay+most)/2; p < want-time.Millisecond/10 || p > want+time.Millisecond/10 {
		t.Fatalf("busy %.2f: %v between rounds, want about %v", f.busy, p, want)
	}

	// A round after a pause of a second: the load is gone, and so is the
	// longer hold, at once.
	now = rounds(f, now.Add(time.Second), 1, 20*time.Millisecond, 3*time.Millisecond)
	if p := f.period(); p != delay {
		t.Fatalf("after a pause, busy %.2f: %v between rounds, want %v", f.busy, p, delay)
	}

	// A most no longer than the write delay: the write delay at any load.
	g := newFlusher(delay, 0)
	rounds(g, now, 100, delay, delay)
	if p := g.period(); p != delay {
		t.Fatalf("without a longer most, busy %.2f: %v between rounds, want %v", g.busy, p, delay)
	}
}
