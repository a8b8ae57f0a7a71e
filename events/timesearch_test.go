package events

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// TestFirstAtOrAfter checks the binary search on keys with gaps and
// repeated times, against a linear scan, for every bound.
func TestFirstAtOrAfter(t *testing.T) {
	// key -> time; keys 3, 4 and 9 are missing, times repeat.
	rows := []struct {
		key uint64
		ts  int64
	}{{1, 10}, {2, 10}, {5, 12}, {6, 15}, {7, 15}, {8, 15}, {10, 20}, {11, 21}}
	probe := func(from uint64) (uint64, int64, bool, error) {
		for _, r := range rows {
			if r.key >= from {
				return r.key, r.ts, true, nil
			}
		}
		return 0, 0, false, nil
	}
	for tm := int64(0); tm <= 25; tm++ {
		got, err := firstAtOrAfter(1, 12, tm, probe)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(12) // past the last key: no row at or after tm
		for _, r := range rows {
			if r.ts >= tm {
				want = r.key
				break
			}
		}
		// got may sit in a gap before want, but no row lies between.
		if got > want {
			t.Fatalf("t=%d: got key %d, want at most %d", tm, got, want)
		}
		for _, r := range rows {
			if r.key >= got && r.key < want {
				t.Fatalf("t=%d: got %d, but row %d (ts %d) lies before the first at or after t (%d)", tm, got, r.key, r.ts, want)
			}
		}
	}
}

// TestTimeBoundsMatchAScan checks history and audit reads bounded by time
// (which are turned into offset and sequence bounds by binary search)
// against filtering everything by time, for every bound in the range, and
// again after retention has trimmed the oldest messages.
func TestTimeBoundsMatchAScan(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	for i := 0; i < 40; i++ {
		if _, err := l.Append(ctx, broadcast("app", "room", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // some commits share a millisecond, most do not
			time.Sleep(2 * time.Millisecond)
		}
	}
	check := func(stage string) {
		all, err := l.Messages(ctx, "app", "room", domain.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		events, err := l.Events(ctx, domain.AuditQuery{App: "app"})
		if err != nil {
			t.Fatal(err)
		}
		first, last := events[0].Time, events[len(events)-1].Time
		for tm := first - 1; tm <= last+1; tm++ {
			var wantSince, wantUntil []uint64
			for _, m := range all {
				if m.Time >= tm {
					wantSince = append(wantSince, m.Offset)
				} else {
					wantUntil = append(wantUntil, m.Offset)
				}
			}
			for _, c := range []struct {
				name string
				q    domain.HistoryQuery
				want []uint64
			}{
				{"since", domain.HistoryQuery{Since: tm}, wantSince},
				{"until", domain.HistoryQuery{Until: tm}, wantUntil},
			} {
				got, err := l.Messages(ctx, "app", "room", c.q)
				if err != nil {
					t.Fatal(err)
				}
				var offs []uint64
				for _, m := range got {
					offs = append(offs, m.Offset)
				}
				if !slices.Equal(offs, c.want) {
					t.Fatalf("%s: history %s %d: got %v, want %v", stage, c.name, tm, offs, c.want)
				}
				if c.q.Until > 0 {
					continue // CountMessages takes After, Upto and Since
				}
				n, err := l.CountMessages(ctx, "app", "room", c.q)
				if err != nil || n != len(c.want) {
					t.Fatalf("%s: count %s %d: %d, %v; want %d", stage, c.name, tm, n, err, len(c.want))
				}
			}
			var wantEv []uint64
			for _, e := range events {
				if e.Time >= tm && e.Time < tm+3 {
					wantEv = append(wantEv, e.Seq)
				}
			}
			got, err := l.Events(ctx, domain.AuditQuery{App: "app", Since: tm, Until: tm + 3})
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
			}
			if !slices.Equal(seqs, wantEv) {
				t.Fatalf("%s: audit [%d, %d): got %v, want %v", stage, tm, tm+3, seqs, wantEv)
			}
			// A page cursor (After) on either side of the time bound.
			for _, after := range []uint64{0, events[len(events)/3].Seq, events[2*len(events)/3].Seq} {
				var want []uint64
				for _, e := range events {
					if e.Seq > after && e.Time >= tm {
						want = append(want, e.Seq)
					}
				}
				got, err := l.Events(ctx, domain.AuditQuery{App: "app", Since: tm, After: after})
				if err != nil {
					t.Fatal(err)
				}
				seqs = seqs[:0]
				for _, e := range got {
					seqs = append(seqs, e.Seq)
				}
				if !slices.Equal(seqs, want) {
					t.Fatalf("%s: audit since %d after %d: got %v, want %v", stage, tm, after, seqs, want)
				}
			}
		}
	}
	check("full")
	if _, err := l.TrimChannel(ctx, "app", "room", RetentionPolicy{MaxMessages: 25}, time.Now(), 4); err != nil {
		t.Fatal(err)
	}
	check("trimmed")
}
