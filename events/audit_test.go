package events

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// TestAuditByChannelReadsTheWholeTrail: since migration 0005 a channel's
// trail comes from three places (the index by channel for its events other
// than broadcasts, its retained messages and its trimmed broadcasts for
// the broadcasts). In random logs where retention trims messages, before
// and after the audit retention deletes events, every page of every
// channel's trail, in pages of 1, 3 and all, with types, a client and
// time bounds, must be what filtering the whole log gives.
func TestAuditByChannelReadsTheWholeTrail(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 4; round++ {
		l := randomAuditLog(t, 5, round)
		check := func(stage string) {
			t.Helper()
			all, err := l.Events(ctx, domain.AuditQuery{})
			if err != nil {
				t.Fatal(err)
			}
			since, until := all[len(all)/3].Time, all[2*len(all)/3].Time+1
			filters := []domain.AuditQuery{
				{},
				{Types: []string{domain.NameMessageBroadcast}},
				{Types: []string{domain.NameChannelSubscribed}},
				{Types: []string{domain.NameMessageBroadcast, domain.NameChannelUnsubscribed}},
				{Client: "c3"},
				{Since: since},
				{Until: until},
				{Since: since, Until: until, Types: []string{domain.NameMessageBroadcast}},
			}
			for _, app := range []string{"a", "b", ""} {
				for c := 0; c < 5; c++ { // room-4 has no events
					for _, f := range filters {
						q := f
						q.App, q.Channel = app, fmt.Sprintf("room-%d", c)
						var want []uint64
						for _, ev := range all {
							a, ch, client := ev.Fact.Scope()
							if (q.App == "" || a == q.App) && ch == q.Channel &&
								(len(q.Types) == 0 || slices.Contains(q.Types, ev.Fact.EventName())) &&
								(q.Client == "" || client == q.Client) &&
								(q.Since == 0 || ev.Time >= q.Since) && (q.Until == 0 || ev.Time < q.Until) {
								want = append(want, ev.Seq)
							}
						}
						for _, limit := range []int{1, 3, MaxPage} {
							var got []uint64
							q.After, q.Limit = 0, limit
							for {
								page, err := l.Events(ctx, q)
								if err != nil {
									t.Fatalf("%s: %+v: %v", stage, q, err)
								}
								for _, ev := range page {
									got = append(got, ev.Seq)
								}
								if len(page) < limit {
									break
								}
								q.After = page[len(page)-1].Seq
							}
							if !slices.Equal(got, want) {
								t.Fatalf("round %d, %s: %+v in pages of %d:\n\tgot  %v\n\twant %v", round, stage, q, limit, got, want)
							}
						}
					}
				}
			}
		}
		check("before the audit retention")
		evs, err := l.Events(ctx, domain.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.TrimAudit(ctx, "a", evs[len(evs)/2].Time, 3); err != nil {
			t.Fatal(err)
		}
		checkTrimmed(t, l)
		check("after the audit retention")
	}
}

// checkTrimmed checks trimmed_broadcasts against the log: it holds exactly
// the broadcasts whose messages are gone and whose events are not.
func checkTrimmed(t *testing.T, l *Log) {
	t.Helper()
	ctx := context.Background()
	read := func(query string) []string {
		rows, err := l.rdb.QueryContext(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var app, channel string
			var seq int64
			if err := rows.Scan(&app, &channel, &seq); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s/%s/%d", app, channel, seq))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := read(`SELECT app, channel, seq FROM trimmed_broadcasts ORDER BY seq`)
	want := read(`SELECT e.app, e.channel, e.seq FROM events e WHERE e."offset" IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.app = e.app AND m.channel = e.channel AND m."offset" = e."offset") ORDER BY e.seq`)
	if !slices.Equal(got, want) {
		t.Fatalf("trimmed_broadcasts:\n\tgot  %v\n\twant %v", got, want)
	}
}

// TestMigration0005RecordsTrimmedBroadcasts: a file from before 0005,
// whose retention had trimmed messages, gets its trimmed broadcasts
// recorded and its index by channel without broadcasts; the trails read
// the same.
func TestMigration0005RecordsTrimmedBroadcasts(t *testing.T) {
	ctx := context.Background()
	l := randomAuditLog(t, 3, 1)
	path := l.cfg.Path
	// A channel whose every message retention trimmed, after a subscribe,
	// and one that will have gaps in its retained offsets.
	if _, err := l.Append(ctx, &domain.ChannelSubscribed{App: "a", Channel: "all-gone", Client: "c"}); err != nil {
		t.Fatal(err)
	}
	broadcasts(t, l, "a", "all-gone", 4, 0)
	if n, err := l.TrimChannel(ctx, "a", "all-gone", RetentionPolicy{MaxAge: time.Millisecond}, time.Now().Add(time.Hour), 3); err != nil || n != 4 {
		t.Fatalf("trimmed %d (%v), want all 4", n, err)
	}
	broadcasts(t, l, "a", "gappy", 6, 0)
	channels := []string{"room-0", "room-1", "room-2", "room-3", "all-gone", "gappy"}
	trail := func(l *Log) (out [][]domain.Event) {
		for _, c := range channels {
			evs, err := l.Events(ctx, domain.AuditQuery{App: "a", Channel: c})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs)
		}
		return out
	}
	before := trail(l)
	var trimmed int
	if err := l.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM trimmed_broadcasts`).Scan(&trimmed); err != nil || trimmed == 0 {
		t.Fatalf("%d trimmed broadcasts (%v): the test needs some", trimmed, err)
	}
	l.Close()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	// Builds of 27 November could trim a later range of a channel while
	// holding back an earlier message.
	if _, err := db.ExecContext(ctx, undo0005+`DELETE FROM messages WHERE app = 'a' AND channel = 'gappy' AND "offset" IN (2, 4)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	l = mustOpen(t, path)
	checkTrimmed(t, l)
	var index string
	if err := l.rdb.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'events_app_channel'`).Scan(&index); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(index, `"offset" IS NULL`) {
		t.Fatalf("index by channel after the migration: %s", index)
	}
	after := trail(l)
	for c := range before {
		if len(after[c]) != len(before[c]) {
			t.Fatalf("%s: %d events after the migration, %d before", channels[c], len(after[c]), len(before[c]))
		}
		for i := range before[c] {
			if after[c][i].Seq != before[c][i].Seq {
				t.Fatalf("%s: event %d is %d after the migration, %d before", channels[c], i, after[c][i].Seq, before[c][i].Seq)
			}
		}
	}
}

// TestAuditPageTakesWhatCommitsWhileItIsRead: a page of a channel's trail
// reads the bounds of its retained messages before the page itself, and a
// broadcast committed in between must be on the page, whether the channel
// had no message before or only messages before the page's start (as for
// someone who has read the trail to its end and asks for what follows).
func TestAuditPageTakesWhatCommitsWhileItIsRead(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	sub := func(channel string) uint64 {
		evs, err := l.Append(ctx, &domain.ChannelSubscribed{App: "app", Channel: channel, Client: "c"})
		if err != nil {
			t.Fatal(err)
		}
		return evs[0].Seq
	}
	after := map[string]uint64{"empty": sub("empty")}
	broadcasts(t, l, "app", "caught-up", 3, 0)
	after["caught-up"] = sub("caught-up")
	for _, channel := range []string{"empty", "caught-up"} {
		q := domain.AuditQuery{App: "app", Channel: channel, After: after[channel], Limit: 10}
		where, args, err := l.auditWhere(ctx, q, q.Limit)
		if err != nil {
			t.Fatal(err)
		}
		// Committed after the bounds were read, before the page is.
		evs := broadcasts(t, l, "app", channel, 1, 0)
		recs, err := l.queryRecords(ctx, where, args, q.Limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].ev.Seq != evs[0].Seq {
			var got []uint64
			for _, r := range recs {
				got = append(got, r.ev.Seq)
			}
			t.Errorf("%s: page %v, want the broadcast %d", channel, got, evs[0].Seq)
		}
	}
}
