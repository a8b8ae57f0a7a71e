package events

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fazt-realtime/fazt/domain"
)

// A page of history stops at the message that takes its data to
// domain.MaxPageBytes (or the query's MaxBytes): 30 messages of 300 KiB
// are read 28 to a page, not 30 (9 MiB). Before, a page held its 1000
// messages whatever their size: up to 16 GiB in memory for one replay or
// request. A negative MaxBytes reads without the bound; `last` gives the
// newest that fit.
func TestHistoryPagesAreBoundedByBytes(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	const n, size = 30, 300 << 10
	for i := 1; i <= n; i++ {
		data := fmt.Sprintf(`"%d%s"`, i, strings.Repeat("x", size-2-len(fmt.Sprint(i))))
		if _, err := l.Append(ctx, broadcast("app", "big", data)); err != nil {
			t.Fatal(err)
		}
	}
	perPage := (domain.MaxPageBytes + size - 1) / size // the message that reaches the bound is in
	for _, tc := range []struct {
		name     string
		q        domain.HistoryQuery
		from, to uint64
		full     bool
	}{
		{"default", domain.HistoryQuery{Limit: 1000}, 1, uint64(perPage), true},
		{"next page", domain.HistoryQuery{After: uint64(perPage), Limit: 1000}, uint64(perPage) + 1, n, false},
		{"1 MiB", domain.HistoryQuery{Limit: 1000, MaxBytes: 1 << 20}, 1, 4, true},
		{"a message past the bound", domain.HistoryQuery{Limit: 1000, MaxBytes: 1}, 1, 1, true},
		{"unbounded", domain.HistoryQuery{Limit: 1000, MaxBytes: -1}, 1, n, false},
		{"last", domain.HistoryQuery{Last: n, Limit: n}, n - uint64(perPage) + 1, n, true},
	} {
		msgs, err := l.Messages(ctx, "app", "big", tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 || msgs[0].Offset != tc.from || msgs[len(msgs)-1].Offset != tc.to || uint64(len(msgs)) != tc.to-tc.from+1 {
			t.Errorf("%s: %d messages, want %d to %d", tc.name, len(msgs), tc.from, tc.to)
			continue
		}
		if full := domain.HistoryPageFull(msgs, tc.q.Limit); full != tc.full && tc.q.MaxBytes == 0 {
			t.Errorf("%s: HistoryPageFull %v, want %v", tc.name, full, tc.full)
		}
		for _, m := range msgs {
			if !strings.HasPrefix(string(m.Data), fmt.Sprintf(`"%dx`, m.Offset)) {
				t.Fatalf("%s: offset %d holds %.10s", tc.name, m.Offset, m.Data)
			}
		}
	}
	// One snapshot's read takes the same bound.
	_, msgs, err := l.ChannelHistory(ctx, "app", "big", domain.HistoryQuery{Limit: 1000}, false)
	if err != nil || len(msgs) != perPage {
		t.Fatalf("ChannelHistory: %d messages (%v), want %d", len(msgs), err, perPage)
	}
}
