package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

func TestRetentionByAgeAndAudit(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	if _, err := l.Append(ctx,
		&domain.ClientConnected{App: "a", Client: "gone"},
		&domain.ChannelSubscribed{App: "a", Channel: "x", Client: "gone"},
		&domain.ClientConnected{App: "a", Client: "open"},
		&domain.ChannelSubscribed{App: "a", Channel: "x", Client: "open"},
		broadcast("a", "x", `1`), broadcast("a", "x", `2`), broadcast("b", "x", `1`),
		&domain.BroadcastAll{App: "a", Data: []byte(`"all"`)},
		&domain.ClientKicked{App: "a", Client: "gone", Reason: "r"},
		&domain.ClientDisconnected{App: "a", Client: "gone", Reason: domain.ReasonKicked},
	); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	policy := map[string]RetentionPolicy{
		"a": {MaxAge: 30 * time.Minute},
		"b": {MaxMessages: 5}, // b's one message is within its limit
	}
	cfg := RetentionConfig{Policy: func(app string) RetentionPolicy { return policy[app] }, Now: func() time.Time { return later }, Batch: 1}

	// Messages by age: every message of a is older than 30 minutes an hour
	// from now. Audit events stay: no audit retention is set.
	res, err := l.RetainOnce(ctx, cfg)
	if err != nil || res.Messages != 2 || res.Events != 0 {
		t.Fatalf("first pass: %+v, %v", res, err)
	}
	info, _ := l.Channel(ctx, "a", "x")
	if info.Head != 2 || info.First != 3 {
		t.Fatalf("a/x after trimming all: %+v", info)
	}
	if info, _ := l.Channel(ctx, "b", "x"); info.First != 1 {
		t.Fatalf("b/x was trimmed: %+v", info)
	}
	all, _ := l.Events(ctx, domain.AuditQuery{App: "a"})
	if len(all) != 9 {
		t.Fatalf("audit of a has %d events, want 9", len(all))
	}

	// Audit retention drops the ended session, the broadcasts whose
	// message is gone and the broadcast to all; the open session stays,
	// and so does the newest event of the log (the disconnection), so that
	// sequence numbers are never reused.
	policy["a"] = RetentionPolicy{MaxAge: 30 * time.Minute, AuditMaxAge: 30 * time.Minute}
	if res, err = l.RetainOnce(ctx, cfg); err != nil || res.Events != 6 {
		t.Fatalf("audit pass: %+v, %v", res, err)
	}
	var names []string
	evs, _ := l.Events(ctx, domain.AuditQuery{App: "a"})
	for _, ev := range evs {
		_, _, client := ev.Fact.Scope()
		names = append(names, ev.Fact.EventName()+" "+client)
	}
	if want := []string{"client.connected.v1 open", "channel.subscribed.v1 open", "client.disconnected.v1 gone"}; !slices.Equal(names, want) {
		t.Fatalf("audit of a after retention: %v, want %v", names, want)
	}
	if subs, _ := l.SubscribersAt(ctx, "a", "x", later.UnixMilli()); !slices.Equal(subs, []string{"open"}) {
		t.Fatalf("subscribers after audit retention: %v", subs)
	}
	// Offsets continue; the sequence too, since the newest event of the
	// log is never deleted.
	evs, err = l.Append(ctx, broadcast("a", "x", `3`))
	if err != nil || evs[0].Fact.(*domain.MessageBroadcast).Offset != 3 {
		t.Fatalf("append after retention: %v %v", evs, err)
	}
	// No longer the newest, the disconnection goes at the next pass; the
	// new broadcast's message is too young to go.
	if res, err = l.RetainOnce(ctx, RetentionConfig{Policy: cfg.Policy, Now: time.Now}); err != nil || res.Events != 0 {
		t.Fatalf("pass at the present: %+v, %v", res, err)
	}
	if res, err = l.RetainOnce(ctx, cfg); err != nil || res.Events != 1 || res.Messages != 1 {
		t.Fatalf("pass an hour on: %+v, %v", res, err)
	}
	l.Close()
	l = mustOpen(t, l.cfg.Path)
	evs, err = l.Append(ctx, broadcast("a", "x", `4`))
	if err != nil || evs[0].Seq != 12 {
		t.Fatalf("sequence after reopening: %v, %v; want 12", evs, err)
	}
}

// TestRetentionAlongsideAppends trims a channel in small batches while
// writers append to it: every append succeeds, offsets stay contiguous, and
// what is retained is exactly the newest MaxMessages.
func TestRetentionAlongsideAppends(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	cfg := RetentionConfig{Policy: func(string) RetentionPolicy { return RetentionPolicy{MaxMessages: 50} }, Batch: 7}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	passes := 0
	go func() {
		defer wg.Done()
		for i := 0; i < 10000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.RetainOnce(ctx, cfg); err != nil {
				t.Error(err)
				return
			}
			passes++
		}
	}()
	var offs []uint64
	for i := 0; i < 600; i++ {
		evs, err := l.Append(ctx, broadcast("app", "ch", fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, evs[0].Fact.(*domain.MessageBroadcast).Offset)
	}
	close(stop)
	wg.Wait()
	if !slices.Equal(offs, func() []uint64 {
		var s []uint64
		for i := uint64(1); i <= 600; i++ {
			s = append(s, i)
		}
		return s
	}()) {
		t.Fatalf("offsets not contiguous: %v", offs)
	}
	if _, err := l.RetainOnce(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	msgs, _ := l.Messages(ctx, "app", "ch", domain.HistoryQuery{})
	if len(msgs) != 50 || msgs[0].Offset != 551 || msgs[49].Offset != 600 {
		t.Fatalf("retained %d messages from %d", len(msgs), msgs[0].Offset)
	}
	if passes == 0 {
		t.Fatal("retention never ran alongside the appends")
	}
}

// TestChannelsDue checks which channels a pass hands to TrimChannel: those
// holding more messages than the policy keeps or one older than it keeps,
// and no others (a pass visits every channel, so the rest must cost no
// more than the listing).
func TestChannelsDue(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	put := func(channel string, n int) {
		for i := 0; i < n; i++ {
			if _, err := l.Append(ctx, broadcast("app", channel, `{}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("over", 11)  // one more than kept
	put("exact", 10) // as many as kept
	put("old", 2)    // few, but the first is old
	put("young", 2)
	put("gone", 3) // its messages were all trimmed
	now := time.Now()
	if _, err := l.wdb.ExecContext(ctx, `UPDATE messages SET ts = ? WHERE channel = 'old' AND "offset" = 1`, now.Add(-48*time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.wdb.ExecContext(ctx, `DELETE FROM messages WHERE channel = 'gone'`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    RetentionPolicy
		want []string
	}{
		{RetentionPolicy{MaxMessages: 10}, []string{"over"}},
		{RetentionPolicy{MaxAge: 24 * time.Hour}, []string{"old"}},
		{RetentionPolicy{MaxMessages: 10, MaxAge: 24 * time.Hour}, []string{"old", "over"}},
		{RetentionPolicy{MaxMessages: 1}, []string{"exact", "old", "over", "young"}},
	} {
		got, err := l.channelsDue(ctx, "app", tc.p, now)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: due %v, want %v", tc.p, got, tc.want)
		}
	}
}

// auditRule is the audit retention's rule as one query: an app's events
// committed before a cutoff, but the newest of the log, that are the
// session events of a session that ended before the cutoff, kicks that
// came after such an end (with no new session of the client between),
// broadcasts to all, or broadcasts whose message is gone. It reads every event in
// the range, so TrimAudit does not run it; the test below checks
// TrimAudit against it.
var auditRule = `SELECT e.seq FROM events e
	WHERE e.app = ? AND e.ts < ? AND e.seq < (SELECT MAX(seq) FROM events)
	AND ((e.name IN (` + strings.TrimSuffix(strings.Repeat("?,", len(sessionEvents)), ",") + `) AND e.client <> '' AND EXISTS (SELECT 1 FROM events d
			WHERE d.app = e.app AND d.client = e.client AND d.name = ? AND d.seq >= e.seq AND d.ts < ?))
		OR (e.name = ? AND e.client <> '' AND EXISTS (SELECT 1 FROM events d
			WHERE d.app = e.app AND d.client = e.client AND d.name = ? AND d.seq < e.seq AND d.ts < ?
			AND NOT EXISTS (SELECT 1 FROM events c
				WHERE c.app = e.app AND c.client = e.client AND c.name = ? AND c.seq > d.seq AND c.seq < e.seq)))
		OR e.name = ?
		OR (e.name = ? AND NOT EXISTS (SELECT 1 FROM messages m
			WHERE m.app = e.app AND m.channel = e.channel AND m."offset" = e."offset")))
	ORDER BY e.seq`

// TestTrimAuditFollowsItsRule runs random sessions (with subscribes,
// unsubscribes, kicks and disconnections), broadcasts, broadcasts to all
// and message trims in two apps, then trims one app's audit at a cutoff in
// the middle of the log and at one after all of it: the events deleted are
// exactly those auditRule selects, in pages of 2 to 4. Client ids recur,
// after a disconnection and across the two apps, and the newest event is
// at times a disconnection of a.
func TestTrimAuditFollowsItsRule(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 6; round++ {
		l := randomAuditLog(t, 11, round)
		evs, err := l.Events(ctx, domain.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cutoff := range []int64{evs[len(evs)/2].Time, time.Now().Add(time.Hour).UnixMilli()} {
			args := []any{"a", cutoff}
			for _, n := range sessionEvents {
				args = append(args, n)
			}
			args = append(args, domain.NameClientDisconnected, cutoff,
				domain.NameClientKicked, domain.NameClientDisconnected, cutoff, domain.NameClientConnected,
				domain.NameBroadcastAll, domain.NameMessageBroadcast)
			want := map[uint64]bool{}
			rows, err := l.rdb.QueryContext(ctx, auditRule, args...)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s uint64
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				want[s] = true
			}
			rows.Close()
			before, _ := l.Events(ctx, domain.AuditQuery{})
			deleted, err := l.TrimAudit(ctx, "a", cutoff, 2+round%3)
			if err != nil {
				t.Fatal(err)
			}
			checkTrimmed(t, l)
			after, _ := l.Events(ctx, domain.AuditQuery{})
			kept := map[uint64]bool{}
			for _, ev := range after {
				kept[ev.Seq] = true
			}
			var missing, extra []uint64
			for _, ev := range before {
				switch gone := !kept[ev.Seq]; {
				case gone && !want[ev.Seq]:
					extra = append(extra, ev.Seq)
				case !gone && want[ev.Seq]:
					missing = append(missing, ev.Seq)
				}
			}
			if len(missing) > 0 || len(extra) > 0 || deleted != len(want) {
				t.Fatalf("round %d, cutoff %d: deleted %d, the rule selects %d; kept %v, deleted beyond the rule %v",
					round, cutoff, deleted, len(want), missing, extra)
			}
		}
	}
}

// randomAuditLog opens a log in a temporary directory and fills it with
// fillAuditLog, by chance drawn from seed and round.
func randomAuditLog(t *testing.T, seed uint32, round int) *Log {
	t.Helper()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	rng := seed*7919 + uint32(round)
	fillAuditLog(t, l, round, func(n int) int { rng = rng*1664525 + 1013904223; return int(rng>>8) % n })
	return l
}

// fillAuditLog appends 300 random events, in two apps and four channels
// of each, with retention trimming a channel now and then: sessions,
// subscribes, kicks, broadcasts to all and to channels. Even rounds end on
// a disconnection of app a. next(n) is the source of chance, in [0, n).
func fillAuditLog(t *testing.T, l *Log, round int, next func(n int) int) {
	t.Helper()
	ctx := context.Background()
	var open [2][]string
	for i := 0; i < 300; i++ {
		a := next(2)
		app := []string{"a", "b"}[a]
		channel := fmt.Sprintf("room-%d", next(4))
		var f domain.Fact
		switch k := next(10); {
		case k < 2 || len(open[a]) == 0:
			// Ids come back, after a disconnection and in the other
			// app, so that a session's bounds are what tells them apart.
			id := fmt.Sprintf("c%d", next(12))
			open[a] = append(open[a], id)
			f = &domain.ClientConnected{App: app, Client: id}
		case k < 4:
			f = &domain.ChannelSubscribed{App: app, Channel: channel, Client: open[a][next(len(open[a]))]}
		case k == 4:
			f = &domain.ChannelUnsubscribed{App: app, Channel: channel, Client: open[a][next(len(open[a]))]}
		case k == 5:
			j := next(len(open[a]))
			if next(2) == 0 {
				f = &domain.ClientKicked{App: app, Client: open[a][j], Reason: "test"}
			} else {
				f = &domain.ClientDisconnected{App: app, Client: open[a][j], Reason: "client"}
				if next(4) == 0 {
					// A kick committed just after the end, as the
					// connection was closing: it outlives its session.
					if _, err := l.Append(ctx, f); err != nil {
						t.Fatal(err)
					}
					f = &domain.ClientKicked{App: app, Client: open[a][j], Reason: "late"}
				}
				open[a] = append(open[a][:j], open[a][j+1:]...)
			}
		case k == 6:
			f = &domain.BroadcastAll{App: app, Data: []byte(`1`)}
		case k == 7:
			if _, err := l.TrimChannel(ctx, app, channel, RetentionPolicy{MaxMessages: next(3)}, time.Now(), 3); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			f = broadcast(app, channel, `1`)
		}
		if _, err := l.Append(ctx, f); err != nil {
			t.Fatal(err)
		}
		if i == 150 {
			time.Sleep(3 * time.Millisecond) // a cutoff between two halves
		}
	}
	if round%2 == 0 && len(open[0]) > 0 {
		// The newest event of the log is a disconnection of a: it
		// stays, and the events of its session before it go.
		if _, err := l.Append(ctx, &domain.ClientDisconnected{App: "a", Client: open[0][0], Reason: "client"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetentionLeavesWhatSubscribersHaveToRead has a subscription fall
// behind a tail too small for the burst, so it reads the broadcasts back
// from the file, while retention runs: every broadcast must reach it with
// its data, and retention trims them once it has read them. A subscription
// that takes no broadcasts holds nothing back.
func TestRetentionLeavesWhatSubscribersHaveToRead(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "log.db"), TailSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sessions := l.Subscriber(SubscriberConfig{Names: []string{domain.NameClientConnected}})
	defer sessions.Close()
	if _, err := sessions.Subscribe(ctx, Topic); err != nil {
		t.Fatal(err)
	}
	sub := l.Subscriber(SubscriberConfig{PageSize: 3})
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, Topic)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		if _, err := l.Append(ctx, broadcast("a", "c", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	keepOne := RetentionPolicy{MaxMessages: 1}
	next := func() *domain.MessageBroadcast {
		t.Helper()
		select {
		case msg := <-msgs:
			ev, err := EventOf(msg)
			if err != nil {
				t.Fatal(err)
			}
			msg.Ack()
			return ev.Fact.(*domain.MessageBroadcast)
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
			return nil
		}
	}
	// Retention runs between deliveries: what the subscription has had
	// may go, and nothing after it.
	for want := uint64(1); want <= 10; want++ {
		mb := next()
		if mb.Offset != want || string(mb.Data) != fmt.Sprint(want) {
			t.Fatalf("offset %d: data %q, want offset %d data %d", mb.Offset, mb.Data, want, want)
		}
		if _, err := l.TrimChannel(ctx, "a", "c", keepOne, time.Now(), 4); err != nil {
			t.Fatal(err)
		}
		if info, err := l.Channel(ctx, "a", "c"); err != nil || info.First > want+1 {
			t.Fatalf("after delivering offset %d, retention kept from %d (%v)", want, info.First, err)
		}
	}
	// Read all: retention keeps only the newest now.
	for deadline := time.Now().Add(10 * time.Second); ; {
		l.TrimChannel(ctx, "a", "c", keepOne, time.Now(), 4)
		if info, err := l.Channel(ctx, "a", "c"); err == nil && info.First == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the messages read were never trimmed")
		}
		time.Sleep(time.Millisecond)
	}
	// Once the subscription ends, it holds nothing back either.
	sub.Close()
	if _, err := l.Append(ctx, broadcast("a", "c", "11")); err != nil {
		t.Fatal(err)
	}
	if n, err := l.TrimChannel(ctx, "a", "c", keepOne, time.Now(), 4); err != nil || n != 1 {
		t.Fatalf("trimmed %d (%v) after the subscription ended, want 1", n, err)
	}
}

// TestTrimmedSince: whether retention dropped a message sent at or after a
// time, by the dropped message's event, or, once the audit retention has
// dropped that too, by the first message retained.
func TestTrimmedSince(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	var times []int64
	for _, ev := range broadcasts(t, l, "a", "c", 3, 2*time.Millisecond) { // a millisecond of its own each
		times = append(times, ev.Time)
	}
	if _, err := l.TrimChannel(ctx, "a", "c", RetentionPolicy{MaxMessages: 1}, time.Now(), 10); err != nil {
		t.Fatal(err)
	}
	check := func(since int64, want bool) {
		t.Helper()
		if got, err := l.TrimmedSince(ctx, "a", "c", 3, since); err != nil || got != want {
			t.Errorf("since %d (messages at %v): %v, %v; want %v", since, times, got, err, want)
		}
	}
	check(0, true)
	check(times[1], true)    // message 2 was dropped
	check(times[1]+1, false) // after it: only message 3, kept
	// The audit retention drops the dropped messages' events: the first
	// message kept still rules out a gap after its time.
	if err := l.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM events WHERE "offset" < 3`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check(times[2]+1, false) // after the first kept: nothing dropped
	check(times[2], true)    // message 2 may have been sent at that time
	check(times[1], true)
	if got, err := l.TrimmedSince(ctx, "a", "c", 1, 0); err != nil || got {
		t.Errorf("nothing trimmed: %v, %v", got, err)
	}
}

// TestTrimStopsAtAMessageHeldBack: once a batch leaves a message that a
// subscription has yet to read, TrimChannel deletes nothing after it in
// that pass, even if the subscription reads on meanwhile. What a channel
// retains stays one run of offsets, which the next pass and every replay
// count on.
func TestTrimStopsAtAMessageHeldBack(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	var seqs []uint64
	for _, ev := range broadcasts(t, l, "a", "c", 10, 0) {
		seqs = append(seqs, ev.Seq)
	}
	// A subscription has read up to offset 3.
	cursor, done := l.trackReader(seqs[2])
	defer done()
	// Between batches, it reads everything.
	batches := 0
	testHookTrimBatch = func() { batches++; cursor.Store(seqs[9]) }
	defer func() { testHookTrimBatch = nil }()

	n, err := l.TrimChannel(ctx, "a", "c", RetentionPolicy{MaxMessages: 1}, time.Now(), 4)
	if err != nil {
		t.Fatal(err)
	}
	var kept []uint64
	err = l.ReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT "offset" FROM messages WHERE app = 'a' AND channel = 'c' ORDER BY "offset"`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o uint64
			if err := rows.Scan(&o); err != nil {
				return err
			}
			kept = append(kept, o)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{4, 5, 6, 7, 8, 9, 10}; n != 3 || !slices.Equal(kept, want) || batches != 0 {
		t.Fatalf("trimmed %d in %d batches after the first, kept offsets %v; want 3 in one batch, kept %v", n, batches, kept, want)
	}
	// What was held back is not recorded as trimmed.
	checkTrimmed(t, l)
	// The next pass, once the subscription has read on, goes on from
	// there.
	cursor.Store(seqs[9])
	if n, err := l.TrimChannel(ctx, "a", "c", RetentionPolicy{MaxMessages: 1}, time.Now(), 4); err != nil || n != 6 {
		t.Fatalf("the next pass trimmed %d (%v), want 6", n, err)
	}
	if info, err := l.Channel(ctx, "a", "c"); err != nil || info.First != 10 {
		t.Fatalf("after the next pass the channel starts at %d (%v), want 10", info.First, err)
	}
	checkTrimmed(t, l)
}

// TestHeadOutlivesItsMessages: a broadcast does not write its channel's
// row, so a head is read from the channel's newest message
// (channel_heads). Once retention has deleted every message of a channel,
// its head is still the last offset given: in the reads of one channel and
// of the list, and after a restart, whether the writer loads every head at
// start or reads each one back from the file.
func TestHeadOutlivesItsMessages(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	// One commit each: the channel's row is written by the first only.
	broadcasts(t, l, "a", "gone", 5, 0)
	broadcasts(t, l, "a", "kept", 3, 0)
	later := time.Now().Add(time.Hour)
	if n, err := l.TrimChannel(ctx, "a", "gone", RetentionPolicy{MaxAge: time.Minute}, later, 2); err != nil || n != 5 {
		t.Fatalf("trimmed %d (%v), want all 5", n, err)
	}
	// gone's first retained message is the one broadcast after the trim,
	// 6, or, with none, the one after its head.
	check := func(when string, gone, kept uint64) {
		t.Helper()
		for _, want := range []domain.ChannelInfo{
			{Channel: "gone", Head: gone, First: min(gone+1, 6)},
			{Channel: "kept", Head: kept, First: 1},
		} {
			info, err := l.Channel(ctx, "a", want.Channel)
			if err != nil || info.Head != want.Head || info.First != want.First {
				t.Fatalf("%s: %s has head %d, first %d (%v); want %d, %d", when, want.Channel, info.Head, info.First, err, want.Head, want.First)
			}
		}
		list, err := l.Channels(ctx, "a", "", 10)
		if err != nil || len(list) != 2 || list[0].Head != gone || list[0].First != min(gone+1, 6) || list[1].Head != kept {
			t.Fatalf("%s: the list is %+v (%v); want gone at %d and kept at %d", when, list, err, gone, kept)
		}
	}
	check("after trimming", 5, 3)
	// Nothing is retained of gone, and kept is within 3 messages.
	if due, err := l.channelsDue(ctx, "a", RetentionPolicy{MaxMessages: 3}, later); err != nil || len(due) != 0 {
		t.Fatalf("due: %v (%v), want none", due, err)
	}
	l.Close()
	for i, cache := range []int{8, 1} { // all heads loaded, then each read back
		l, err = Open(ctx, Config{Path: path, HeadCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		if l.allHeads != (cache == 8) {
			t.Fatalf("cache of %d: all heads loaded %v", cache, l.allHeads)
		}
		check(fmt.Sprintf("reopened with a cache of %d", cache), uint64(5+i), uint64(3+i))
		for _, ch := range []struct {
			name string
			want uint64
		}{{"gone", uint64(6 + i)}, {"kept", uint64(4 + i)}} {
			evs, err := l.Append(ctx, &domain.ChannelSubscribed{App: "a", Channel: ch.name, Client: "c"}, broadcast("a", ch.name, "1"))
			if err != nil {
				t.Fatal(err)
			}
			sub, mb := evs[0].Fact.(*domain.ChannelSubscribed), evs[1].Fact.(*domain.MessageBroadcast)
			if *sub.Head != ch.want-1 || mb.Offset != ch.want {
				t.Fatalf("cache of %d, %s: subscribed at head %d, broadcast at %d; want %d, %d", cache, ch.name, *sub.Head, mb.Offset, ch.want-1, ch.want)
			}
		}
		l.Close()
	}
}

// TestPurgeTakesWhatCameBeforeIt: a purge of an app deletes every
// message of its channels committed before it, whatever their times say,
// and keeps the ones committed after its start (an app made again
// meanwhile), and other apps'. Its heads stay.
func TestPurgeTakesWhatCameBeforeIt(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	broadcasts(t, l, "a", "c", 3, 0)
	broadcasts(t, l, "a", "d", 2, 0)
	broadcasts(t, l, "b", "c", 2, 0)
	before := l.Head()
	broadcasts(t, l, "a", "c", 2, 0) // committed after the purge began
	res, err := l.purgeAppUpto(ctx, "a", false, 0, 0, before)
	if err != nil || res.Messages != 5 || res.Events != 0 {
		t.Fatalf("purge: %+v, %v; want the 5 messages before it", res, err)
	}
	for _, tc := range []struct {
		app, channel string
		offsets      []uint64
	}{{"a", "c", []uint64{4, 5}}, {"a", "d", nil}, {"b", "c", []uint64{1, 2}}} {
		msgs, err := l.Messages(ctx, tc.app, tc.channel, domain.HistoryQuery{Limit: 10})
		var got []uint64
		for _, m := range msgs {
			got = append(got, m.Offset)
		}
		if err != nil || !slices.Equal(got, tc.offsets) {
			t.Errorf("%s/%s after the purge: %v, %v; want %v", tc.app, tc.channel, got, err, tc.offsets)
		}
	}
	if info, err := l.Channel(ctx, "a", "d"); err != nil || info.Head != 2 {
		t.Fatalf("a/d's head after the purge: %+v, %v", info, err)
	}
	// Again, with the audit: a/c's last two messages go now, and the
	// broadcasts whose messages are gone go, up to what the fan-out has
	// applied, however far the projections of sessions are (here,
	// nowhere: there are none): 7 of them, less the log's newest event,
	// which stays.
	head := l.Head()
	if res, err := l.purgeAppUpto(ctx, "a", true, 0, head, head); err != nil || res.Messages != 2 || res.Events != 6 {
		t.Fatalf("purge with the audit: %+v, %v; want 2 messages and 6 events", res, err)
	}
}

// endedSession opens a log that holds app a's session of client c1 (its
// connect, a subscribe, a broadcast to all, its end), then another app's
// broadcast, the log's newest event, which always stays. It returns the
// broadcast's and the end's sequences, and a count of a's events left.
func endedSession(t *testing.T) (l *Log, all, end uint64, count func() int) {
	t.Helper()
	ctx := context.Background()
	l = mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	evs, err := l.Append(ctx, &domain.ClientConnected{App: "a", Client: "c1"},
		&domain.ChannelSubscribed{App: "a", Channel: "room", Client: "c1"},
		&domain.BroadcastAll{App: "a", Data: json.RawMessage("1")},
		&domain.ClientDisconnected{App: "a", Client: "c1", Reason: domain.ReasonClientClosed})
	if err != nil {
		t.Fatal(err)
	}
	broadcasts(t, l, "b", "c", 1, 0)
	count = func() int {
		got, err := l.Events(ctx, domain.AuditQuery{App: "a"})
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	return l, evs[2].Seq, evs[3].Seq, count
}

// TestPurgeKeepsWhatProjectionsHaveYetToApply: a purge's audit keeps an
// app's session events past what the projections of sessions have
// applied, and its broadcasts past what the fan-out has: a projection
// that never saw a session's end would keep a ghost session for good.
// What they have applied goes, and a session whose end is not applied
// stays whole (its start gone and its end kept, fazt rebuild would find
// the session the stored projection holds open missing from the log).
func TestPurgeKeepsWhatProjectionsHaveYetToApply(t *testing.T) {
	ctx := context.Background()
	l, all, end, count := endedSession(t)
	head := l.Head()
	// Neither the session's end nor the broadcast to all applied yet:
	// all four stay.
	if res, err := l.purgeAppUpto(ctx, "a", true, end-1, all-1, head); err != nil || res.Events != 0 || count() != 4 {
		t.Fatalf("purge before they are applied: %+v, %v; %d events left, want 4", res, err, count())
	}
	// The broadcast applied, the end not.
	if res, err := l.purgeAppUpto(ctx, "a", true, end-1, head, head); err != nil || res.Events != 1 || count() != 3 {
		t.Fatalf("purge with the broadcast applied: %+v, %v; %d events left, want 3", res, err, count())
	}
	if res, err := l.purgeAppUpto(ctx, "a", true, head, head, head); err != nil || res.Events != 3 || count() != 0 {
		t.Fatalf("purge with everything applied: %+v, %v; %d events left", res, err, count())
	}
}

// TestAuditRetentionKeepsWhatProjectionsHaveYetToApply: the periodic
// audit retention, as the purge, keeps a session whose end, and a
// broadcast to all, that the projections (RetentionConfig.Applied) have not applied
// yet: a projection lagging behind (a failing flush, a catch-up at start)
// would otherwise never see them, and keep the session open for good.
func TestAuditRetentionKeepsWhatProjectionsHaveYetToApply(t *testing.T) {
	ctx := context.Background()
	l, all, end, count := endedSession(t)
	var sessions, broadcasts uint64 = end - 1, all - 1 // neither applied
	cfg := RetentionConfig{
		Policy:  func(string) RetentionPolicy { return RetentionPolicy{AuditMaxAge: time.Millisecond} },
		Apps:    func() ([]string, error) { return []string{"a"}, nil }, // it has no channel
		Now:     func() time.Time { return time.Now().Add(time.Hour) },
		Applied: func() (uint64, uint64) { return sessions, broadcasts },
	}
	if res, err := l.RetainOnce(ctx, cfg); err != nil || res.Events != 0 || count() != 4 {
		t.Fatalf("a pass before they are applied: %+v, %v; %d events left, want 4", res, err, count())
	}
	sessions, broadcasts = l.Head(), l.Head()
	if res, err := l.RetainOnce(ctx, cfg); err != nil || res.Events != 4 || count() != 0 {
		t.Fatalf("a pass once they are applied: %+v, %v; %d events left, want 0", res, err, count())
	}
}

// TestPurgeSaysWhatIsLeft: PurgeApp counts what is left of the app, and
// says apart that the log's newest event, which always stays, is the
// app's: no later call can take it.
func TestPurgeSaysWhatIsLeft(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	if _, err := l.Append(ctx, &domain.ClientConnected{App: "a", Client: "c1"}); err != nil {
		t.Fatal(err)
	}
	broadcasts(t, l, "a", "c", 2, 0)
	if _, err := l.Append(ctx, &domain.ClientDisconnected{App: "a", Client: "c1", Reason: domain.ReasonClientClosed}); err != nil {
		t.Fatal(err)
	}
	head := l.Head()
	p, err := l.PurgeApp(ctx, "a", false, head, head)
	if err != nil || p != (domain.Purged{Messages: 2, EventsLeft: 3, NewestKept: true}) {
		t.Fatalf("purge without the audit: %+v, %v", p, err)
	}
	p, err = l.PurgeApp(ctx, "a", true, head, head)
	if err != nil || p != (domain.Purged{Events: 3, NewestKept: true}) {
		t.Fatalf("purge with the audit: %+v, %v", p, err)
	}
	broadcasts(t, l, "b", "c", 1, 0)
	if p, err := l.PurgeApp(ctx, "a", true, l.Head(), l.Head()); err != nil || p != (domain.Purged{Events: 1}) {
		t.Fatalf("purge once another app's event is the newest: %+v, %v", p, err)
	}
	// Its channel's head stays: the app is known still.
	if p, err := l.PurgeApp(ctx, "a", true, l.Head(), l.Head()); err != nil || p != (domain.Purged{}) {
		t.Fatalf("purge of what is purged: %+v, %v", p, err)
	}
	// A name the log never saw is said to be one.
	if p, err := l.PurgeApp(ctx, "typo", true, l.Head(), l.Head()); err != nil || p != (domain.Purged{Unknown: true}) {
		t.Fatalf("purge of an app never hosted: %+v, %v", p, err)
	}
}

// Retention ages by the time it has seen pass, not by a wall clock that
// jumped ahead of it: a clock a year ahead would otherwise delete by age
// every message at once. Here the clock is a year on from the second
// pass, and stays so: nothing goes, where by the wall clock the second
// pass took both messages (and, with a guard of one pass, the third).
func TestRetentionAgesByTheTimeItHasSeenPass(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	broadcasts(t, l, "a", "x", 2, 0)
	start := time.Now()
	var passes atomic.Int32
	cfg := RetentionConfig{
		Policy:   func(string) RetentionPolicy { return RetentionPolicy{MaxAge: 7 * 24 * time.Hour, MaxMessages: 10} },
		Interval: 10 * time.Millisecond,
		Now: func() time.Time {
			if passes.Add(1) >= 2 {
				return start.Add(365 * 24 * time.Hour)
			}
			return time.Now()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.RunRetention(ctx, cfg); close(done) }()
	for passes.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if info, _ := l.Channel(context.Background(), "a", "x"); info.First != 1 || info.Head != 2 {
		t.Fatalf("after a pass a year ahead: %+v, want both messages kept", info)
	}
}

// TestTrimBatchesAreBoundedByBytes: a trim's transactions delete at most
// trimBatchBytes of data each (but one message, whatever its size), not a
// whole batch of rows: 500 messages of 16 MiB were 8 GiB to read in one
// transaction, every append waiting. Here 1 MiB: 300 KiB messages go
// three to a transaction, and one of 2 MiB alone.
func TestTrimBatchesAreBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	defer func(b int64) { trimBatchBytes = b }(trimBatchBytes)
	trimBatchBytes = 1 << 20
	data := func(size int) string { return `"` + strings.Repeat("x", size-2) + `"` }
	sizes := []int{300 << 10, 300 << 10, 300 << 10, 300 << 10, 2 << 20, 300 << 10, 300 << 10, 10}
	for _, n := range sizes {
		if _, err := l.Append(ctx, broadcast("a", "c", data(n))); err != nil {
			t.Fatal(err)
		}
	}
	batches := 0
	testHookTrimBatch = func() { batches++ }
	defer func() { testHookTrimBatch = nil }()
	// Offsets 1 to 7 go: {1, 2, 3}, {4}, {5}, {6, 7}.
	n, err := l.TrimChannel(ctx, "a", "c", RetentionPolicy{MaxMessages: 1}, time.Now(), 500)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := l.Channel(ctx, "a", "c"); err != nil || n != 7 || batches != 4 || info.First != 8 {
		t.Fatalf("trimmed %d in %d transactions, first offset now %d (%v); want 7 in 4, from 8", n, batches, info.First, err)
	}
	checkTrimmed(t, l)
}

// A kick committed just after its client's disconnection (the connection
// was closing as the kick came) goes with the session, in the pass that
// trims it or a later one. Before, the session's trim went up to the
// disconnection, and the kick stayed for good: `fazt purge --audit` of a
// removed app reported an event left at every run.
func TestALateKickGoesWithItsSession(t *testing.T) {
	l := mustOpen(t, filepath.Join(t.TempDir(), "log.db"))
	ctx := context.Background()
	for _, f := range []domain.Fact{
		&domain.ClientConnected{App: "a", Client: "c"},
		&domain.ClientDisconnected{App: "a", Client: "c", Reason: "client"},
		&domain.ClientKicked{App: "a", Client: "c", Reason: "late"},
		&domain.ClientConnected{App: "a", Client: "d"}, // open; and the newest event
	} {
		if _, err := l.Append(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.TrimAudit(ctx, "a", time.Now().Add(time.Hour).UnixMilli(), 500)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.Events(ctx, domain.AuditQuery{App: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, ev := range evs {
		left = append(left, ev.Fact.EventName())
	}
	if n != 3 || !slices.Equal(left, []string{domain.NameClientConnected}) {
		t.Fatalf("deleted %d; left %v, want only d's connection", n, left)
	}
}
