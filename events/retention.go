package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// RetentionPolicy says what the log keeps of one app. Zero fields keep
// everything.
type RetentionPolicy struct {
	// MaxMessages keeps at most this many of each channel's newest messages.
	MaxMessages int
	// MaxAge drops messages committed longer ago than this.
	MaxAge time.Duration
	// AuditMaxAge drops events older than this: those of sessions that
	// ended before then (connections, subscriptions, kicks, disconnections),
	// broadcasts whose message is no longer retained, and broadcasts to
	// all. Events of sessions still open are kept, so that the live read
	// models can always be rebuilt from the log.
	AuditMaxAge time.Duration
}

// IsZero reports whether the policy keeps everything.
func (p RetentionPolicy) IsZero() bool {
	return p.MaxMessages <= 0 && p.MaxAge <= 0 && p.AuditMaxAge <= 0
}

// RetentionConfig configures RunRetention.
type RetentionConfig struct {
	// Policy returns an app's policy. Required.
	Policy func(app string) RetentionPolicy
	// Apps lists apps to consider besides those with channels in the log
	// (for audit retention of apps that never broadcast). Optional.
	Apps func() ([]string, error)
	// Applied says how far the read models have applied the log (as
	// PurgeApp's sessions and broadcasts): the audit retention keeps the
	// events after them, which a projection has yet to see. Optional:
	// without it, only the log's newest event is kept.
	Applied func() (sessions, broadcasts uint64)
	// Interval is the time between passes (default 1 minute).
	Interval time.Duration
	// Batch is how many rows one delete transaction removes (default
	// 500), fewer where their data passes trimBatchBytes: small, so that
	// appends wait at most one short transaction.
	Batch int
	// Now defaults to time.Now.
	Now func() time.Time
}

func (c *RetentionConfig) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Batch <= 0 {
		c.Batch = 500
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// RetentionResult counts what one pass removed.
type RetentionResult struct {
	Messages int // message payloads deleted
	Events   int // audit events deleted
}

// RunRetention trims the log by cfg.Policy every cfg.Interval until ctx
// ends, logging what it removed and any failure (a failed pass is retried
// at the next interval). The offsets of what stays never change: only the
// oldest messages of a channel go, so its first retained offset moves up.
//
// Ages are measured against the wall clock only as far as this process
// has seen time pass: a pass trims by its own clock, the first pass's
// time plus the time measured since (the monotonic clock), whenever the
// wall clock is further ahead than that by more than clockJumpSlack (a
// clock set wrong, a machine resumed before its clock is corrected, a
// stale clock stepped forward by NTP); its clock then catches up at most
// as fast again as time passes. By the wall clock, a clock a year ahead
// would delete everything at once; this way a jump ahead keeps messages
// longer, for as long as the jump at most (or until a restart).
func (l *Log) RunRetention(ctx context.Context, cfg RetentionConfig) {
	cfg.setDefaults()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	var trusted, prevRun time.Time // the retention's clock, and when it was read
	ahead := false                 // the wall clock is past trusted: said once
	for {
		wall, run := cfg.Now(), time.Now()
		elapsed := run.Sub(prevRun)
		if prevRun.IsZero() {
			trusted, elapsed = wall, 0
		} else {
			trusted = trusted.Add(elapsed)
		}
		prevRun = run
		now := wall
		if by := wall.Round(0).Sub(trusted.Round(0)); by > clockJumpSlack {
			// Caught up at most as fast again as time passes: a clock
			// stepped forward by NTP after a start on a stale one (a
			// machine without a real-time clock) is followed within as
			// long as the step, a clock set a year ahead not at once.
			trusted = trusted.Add(min(by-clockJumpSlack, elapsed))
			now = trusted
			if !ahead {
				l.log.Warn("retention: the clock is ahead of the time this server has seen pass; messages and events are aged by the latter while it catches up", "ahead", by.Round(time.Second))
			}
			ahead = true
		} else {
			trusted, ahead = wall, false // on time, or set back: aged by it
		}
		pass := cfg
		pass.Now = func() time.Time { return now }
		res, err := l.RetainOnce(ctx, pass)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.log.Error("retention", "err", err)
		} else if res.Messages > 0 || res.Events > 0 {
			l.log.Info("retention trimmed the log", "messages", res.Messages, "events", res.Events)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// clockJumpSlack is how far the wall clock may be ahead of the time
// retention has seen pass before retention ages by the latter
// (RunRetention).
const clockJumpSlack = time.Minute

// RetainOnce makes one retention pass over every app. An app whose trim
// fails is said in the error returned, and the pass goes on with the
// others (a damaged page in one app's channel would otherwise stop every
// pass there, and the apps after it would never be trimmed again).
func (l *Log) RetainOnce(ctx context.Context, cfg RetentionConfig) (RetentionResult, error) {
	cfg.setDefaults()
	var res RetentionResult
	if cfg.Policy == nil {
		return res, fmt.Errorf("retention: no policy")
	}
	apps, err := l.appsWithChannels(ctx)
	if err != nil {
		return res, err
	}
	if cfg.Apps != nil {
		more, err := cfg.Apps()
		if err != nil {
			return res, fmt.Errorf("retention: list apps: %w", err)
		}
		seen := map[string]bool{}
		for _, a := range apps {
			seen[a] = true
		}
		for _, a := range more {
			if !seen[a] {
				apps = append(apps, a)
			}
		}
	}
	now := cfg.Now()
	// The audit's bounds, for the whole pass: an event of a session or a
	// broadcast that a projection has not applied yet stays, or the
	// projection would never see it (a session it stored as open would
	// stay so, and be closed at each start as left by a crash).
	head := l.Head()
	applied, last, lastBroadcast := head, head, head
	if cfg.Applied != nil {
		sessions, broadcasts := cfg.Applied()
		applied, last, lastBroadcast = sessions, min(head, sessions+1), min(head, broadcasts+1)
	}
	var errs []error
	for _, app := range apps {
		if err := l.retainApp(ctx, cfg, app, now, applied, last, lastBroadcast, &res); err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > maxPassErrors {
		// A failure of the whole file (a disk's I/O error) fails every
		// app alike: the first few say it.
		errs = append(errs[:maxPassErrors], fmt.Errorf("and %d more apps failed", len(errs)-maxPassErrors))
	}
	return res, errors.Join(errs...)
}

// maxPassErrors is how many apps' errors a retention pass returns.
const maxPassErrors = 3

// retainApp is RetainOnce's pass over one app, adding to res.
func (l *Log) retainApp(ctx context.Context, cfg RetentionConfig, app string, now time.Time, applied, last, lastBroadcast uint64, res *RetentionResult) error {
	p := cfg.Policy(app)
	if p.MaxMessages > 0 || p.MaxAge > 0 {
		due, err := l.channelsDue(ctx, app, p, now)
		if err != nil {
			return err
		}
		for _, channel := range due {
			n, err := l.TrimChannel(ctx, app, channel, p, now, cfg.Batch)
			res.Messages += n
			if err != nil {
				return err
			}
		}
	}
	if p.AuditMaxAge > 0 {
		n, err := l.trimAudit(ctx, app, now.Add(-p.AuditMaxAge).UnixMilli(), cfg.Batch, applied, last, lastBroadcast)
		res.Events += n
		if err != nil {
			return err
		}
	}
	return nil
}

// channelsDueQuery reads each channel of an app with its head and its
// oldest retained message's offset and time.
const channelsDueQuery = `SELECT c.name, c.head, m."offset", m.ts FROM channel_heads c
	LEFT JOIN messages m ON m.app = c.app AND m.channel = c.name
		AND m."offset" = (SELECT MIN("offset") FROM messages WHERE app = c.app AND channel = c.name)
	WHERE c.app = ?`

// channelsDue lists the channels of app that hold more messages than p
// keeps or an older one than it keeps, at now. A pass visits every
// channel, so this is one read of the channels and of each one's oldest
// message; TrimChannel does the rest for the few that are due.
func (l *Log) channelsDue(ctx context.Context, app string, p RetentionPolicy, now time.Time) ([]string, error) {
	rows, err := l.rdb.QueryContext(ctx, channelsDueQuery, app)
	if err != nil {
		return nil, fmt.Errorf("retention of %s: list channels: %w", app, err)
	}
	defer rows.Close()
	cutoff := now.Add(-p.MaxAge).UnixMilli()
	var due []string
	for rows.Next() {
		var name string
		var head int64
		var first, oldest sql.NullInt64
		if err := rows.Scan(&name, &head, &first, &oldest); err != nil {
			return nil, fmt.Errorf("retention of %s: list channels: %w", app, err)
		}
		if !first.Valid {
			continue // nothing retained
		}
		if p.MaxMessages > 0 && head-first.Int64+1 > int64(p.MaxMessages) ||
			p.MaxAge > 0 && oldest.Int64 < cutoff {
			due = append(due, name)
		}
	}
	return due, rows.Err()
}

// PurgeApp deletes what the log retains of an app the server no longer
// hosts, on the operator's word: every message of its channels committed
// before the call, as retention would (whatever its time says: commit
// times never go back, so after the clock is set back they run ahead of
// it), and, with audit, the
// events that audit retention would drop at any age: those of its ended
// sessions up to sessions, the last event every projection of sessions
// has applied, and those of its broadcasts (to all, and whose messages
// are gone) up to broadcasts, the last event the live fan-out has
// applied. The caller checks that the app is gone. What a replay or a
// subscription has yet to read, and events not yet applied, stay for a
// later call, and are counted as left; the channels' heads stay, so
// that, should the app come back, its offsets never repeat. An app of
// which the log holds nothing (no channel, no event: a name mistyped,
// never hosted here, or without a channel and purged before) is said to
// be Unknown, so that a purge of nothing does not read as one of an app
// that had nothing.
func (l *Log) PurgeApp(ctx context.Context, app string, audit bool, sessions, broadcasts uint64) (domain.Purged, error) {
	var known bool
	if err := l.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM channels WHERE app = ?1)
		OR EXISTS (SELECT 1 FROM events WHERE app = ?1)`, app).Scan(&known); err != nil {
		return domain.Purged{}, fmt.Errorf("purge %s: look it up: %w", app, err)
	}
	if !known {
		return domain.Purged{Unknown: true}, nil
	}
	// What is committed from here on is not the purge's: an app made
	// again meanwhile keeps it.
	res, err := l.purgeAppUpto(ctx, app, audit, sessions, broadcasts, l.Head())
	p := domain.Purged{Messages: res.Messages, Events: res.Events}
	if err != nil {
		return p, err
	}
	var newest sql.NullString
	if err := l.rdb.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages WHERE app = ?1),
		(SELECT COUNT(*) FROM events WHERE app = ?1 AND seq < (SELECT MAX(seq) FROM events)),
		(SELECT app FROM events ORDER BY seq DESC LIMIT 1)`, app).Scan(&p.MessagesLeft, &p.EventsLeft, &newest); err != nil {
		return p, fmt.Errorf("purge %s: count what is left: %w", app, err)
	}
	p.NewestKept = newest.String == app
	return p, nil
}

// purgeAppUpto is PurgeApp for what was committed up to head.
func (l *Log) purgeAppUpto(ctx context.Context, app string, audit bool, sessions, broadcasts, head uint64) (RetentionResult, error) {
	var res RetentionResult
	channels, err := l.appChannels(ctx, app)
	if err != nil {
		return res, fmt.Errorf("purge %s: list channels: %w", app, err)
	}
	// Every message and event is older than this: the sequences bound
	// what goes.
	later := time.Now().AddDate(1000, 0, 0)
	for _, channel := range channels {
		n, err := l.trimChannel(ctx, app, channel, RetentionPolicy{MaxAge: time.Nanosecond}, later, 0, head)
		res.Messages += n
		if err != nil {
			return res, err
		}
	}
	if audit {
		n, err := l.trimAudit(ctx, app, later.UnixMilli(), 0, min(head, sessions), min(head, sessions+1), min(head, broadcasts+1))
		res.Events += n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// appChannels lists the names of an app's channels.
func (l *Log) appChannels(ctx context.Context, app string) ([]string, error) {
	return l.queryStrings(ctx, `SELECT name FROM channels WHERE app = ?`, app)
}

func (l *Log) appsWithChannels(ctx context.Context) ([]string, error) {
	out, err := l.queryStrings(ctx, `SELECT DISTINCT app FROM channels ORDER BY app`)
	if err != nil {
		return nil, fmt.Errorf("retention: list apps: %w", err)
	}
	return out, nil
}

// queryStrings runs query, whose rows are one string each, on a reader.
func (l *Log) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := l.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// testHookTrimBatch, when set by a test, runs after each of TrimChannel's
// batches that held nothing back.
var testHookTrimBatch func()

// trimBatchBytes bounds the data one of TrimChannel's transactions
// deletes (but for its first message, whatever its size): freeing a
// message reads every page of its data, and a batch of 500 messages of
// 16 MiB (an app's max_message_bytes at most) would read 8 GiB with the
// write lock held, every append waiting. A variable for tests.
var trimBatchBytes int64 = 8 << 20

// trimBound is the last offset, from first to want, of the messages of
// channel whose data, with that of the ones before them from first, comes
// within trimBatchBytes; first at least. Its query reads each message
// it steps over whole (its key and data are one record, which SQLite
// reads whole to compare its key with the range's end), so it stops at
// the first past the bound: about trimBatchBytes read, and one message.
// The delete then reads them again, under the write lock: read there
// instead, the lengths would hold every append back for the whole
// batch's 500 rows, the read this bounds.
func (l *Log) trimBound(ctx context.Context, app, channel string, first, want uint64) (uint64, error) {
	rows, err := l.rdb.QueryContext(ctx, `SELECT "offset", length(data) FROM messages
		WHERE app = ? AND channel = ? AND "offset" >= ? AND "offset" <= ? ORDER BY "offset"`, app, channel, first, want)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	bound, sum := want, int64(0)
	for rows.Next() {
		var off uint64
		var n int64
		if err := rows.Scan(&off, &n); err != nil {
			return 0, err
		}
		if sum += n; sum > trimBatchBytes && off > first {
			bound = off - 1
			break
		}
	}
	return bound, rows.Err()
}

// TrimChannel deletes the messages of one channel that p drops at time
// now, oldest first, at most batch rows and about trimBatchBytes of data
// per transaction, and returns how many it deleted. The events that recorded the broadcasts stay.
func (l *Log) TrimChannel(ctx context.Context, app, channel string, p RetentionPolicy, now time.Time, batch int) (int, error) {
	return l.trimChannel(ctx, app, channel, p, now, batch, math.MaxInt64)
}

// trimChannel is TrimChannel for the messages committed at or before
// sequence maxSeq.
func (l *Log) trimChannel(ctx context.Context, app, channel string, p RetentionPolicy, now time.Time, batch int, maxSeq uint64) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	info, err := l.Channel(ctx, app, channel)
	if err != nil {
		return 0, err
	}
	// cut is the newest offset to drop.
	var cut uint64
	if p.MaxMessages > 0 && info.Head > uint64(p.MaxMessages) {
		cut = info.Head - uint64(p.MaxMessages)
	}
	if p.MaxAge > 0 {
		// Messages before the first one young enough are dropped.
		keep, err := offsetFrom(ctx, l.rdb, app, channel, now.Add(-p.MaxAge).UnixMilli())
		if err != nil {
			return 0, fmt.Errorf("retention of %s/%s: %w", app, channel, err)
		}
		if keep > 0 {
			cut = max(cut, keep-1)
		}
	}
	deleted := 0
	// Offsets are contiguous from info.First, so each batch is one range;
	// each takes one offset at least, so the loop ends.
	for first := info.First; first <= cut; {
		want, err := l.trimBound(ctx, app, channel, first, min(cut, first+uint64(batch)-1))
		if err != nil {
			return deleted, fmt.Errorf("retention of %s/%s: %w", app, channel, err)
		}
		held := false
		// What a replay has yet to read is left for a later pass.
		var gone int // what this batch deletes, once committed
		ran, err := l.unlessPinned(app, channel, first, want, func(upto uint64) error {
			held = upto < want
			// What a subscription has yet to deliver stays for the next
			// pass (Log.readers).
			read := min(l.readLow(), maxSeq)
			return l.WriteTx(ctx, func(tx *sql.Tx) error {
				// The row's floor is raised first: a head is the newest
				// offset in messages or the floor, whichever is larger
				// (channel_heads), and deleting the newest messages would
				// otherwise take it back to an offset already given.
				// upto is at most the head (cut comes from the head or
				// from a retained message), so this never moves the head,
				// even when rows are held back below.
				if _, err := tx.ExecContext(ctx, `UPDATE channels SET head_floor = MAX(head_floor, ?) WHERE app = ? AND name = ?`, upto, app, channel); err != nil {
					return err
				}
				// The broadcasts' events stay, and are found by channel
				// from here once their messages are gone (migration 0005).
				if _, err := tx.ExecContext(ctx, `INSERT INTO trimmed_broadcasts (app, channel, seq)
					SELECT app, channel, seq FROM messages WHERE app = ? AND channel = ? AND "offset" >= ? AND "offset" <= ? AND seq <= ?`, app, channel, first, upto, read); err != nil {
					return err
				}
				r, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE app = ? AND channel = ? AND "offset" >= ? AND "offset" <= ? AND seq <= ?`, app, channel, first, upto, read)
				if err != nil {
					return err
				}
				n, _ := r.RowsAffected()
				gone = int(n)
				// Sequences rise with offsets: once one is held back,
				// so is every later one.
				held = held || uint64(n) < upto-first+1
				return nil
			})
		})
		if !ran {
			return deleted, nil
		}
		if err != nil {
			// Rolled back: what it counted is not gone.
			return deleted, fmt.Errorf("retention of %s/%s: %w", app, channel, err)
		}
		deleted += gone
		// The stop keeps what is retained one range of offsets: a later
		// batch reads the subscriptions' positions again, and could
		// delete messages after the one held back, once they have moved
		// past it.
		if held {
			return deleted, nil
		}
		if testHookTrimBatch != nil {
			testHookTrimBatch()
		}
		first = want + 1
	}
	return deleted, nil
}

// sessionEvents are the events that belong to one client's session.
var sessionEvents = []string{
	domain.NameClientConnected, domain.NameClientDisconnected, domain.NameChannelSubscribed,
	domain.NameChannelUnsubscribed, domain.NameClientKicked,
}

// The audit retention's reads (see TrimAudit), each by the index it names:
// without statistics, SQLite may prefer the index by app and sequence and
// read every event in the range. The literal tests for a non-empty client
// or channel are what allow the partial indexes on them.
const (
	// the disconnections in a range
	trimEndsQuery = `SELECT seq, client FROM events INDEXED BY events_app_name
		WHERE app = ? AND name = ? AND seq > ? AND seq < ? ORDER BY seq LIMIT ?`
	// the broadcasts to all before a sequence
	trimAllQuery = `SELECT seq FROM events INDEXED BY events_app_name WHERE app = ? AND name = ? AND seq < ? ORDER BY seq LIMIT ?`
	// a channel's broadcasts whose messages are gone, before a sequence
	trimChannelQuery = `SELECT seq FROM trimmed_broadcasts WHERE app = ? AND channel = ? AND seq < ? ORDER BY seq LIMIT ?`
	// the next channel after one that has such broadcasts
	trimNextChannelQuery = `SELECT channel FROM trimmed_broadcasts WHERE app = ? AND channel > ? ORDER BY channel LIMIT 1`
	// the kicks in a range
	trimKicksQuery = `SELECT seq, client FROM events INDEXED BY events_app_name
		WHERE app = ? AND name = ? AND seq > ? AND seq < ? ORDER BY seq LIMIT ?`
	// whether a client's session started before a sequence
	trimStartedQuery = `SELECT 1 FROM events INDEXED BY events_app_client
		WHERE app = ? AND client = ? AND client <> '' AND name = ? AND seq < ? LIMIT 1`
)

// trimSessionQuery is a session's events up to its disconnection.
var trimSessionQuery = `SELECT seq FROM events INDEXED BY events_app_client WHERE app = ? AND client = ? AND client <> '' AND seq <= ? AND seq < ?
	AND name IN (` + strings.TrimSuffix(strings.Repeat("?,", len(sessionEvents)), ",") + `) ORDER BY seq LIMIT ?`

// TrimAudit deletes an app's events committed before cutoff (unix ms) that
// the audit retention drops (see RetentionPolicy.AuditMaxAge), at most
// batch per transaction, and returns how many it deleted. The newest event
// of the log is never deleted, so sequence numbers are never reused.
//
// A pass runs every minute, and the events it keeps (broadcasts whose
// message is retained, sessions still open) can be most of a long log, so
// it never reads them one by one. It goes through:
//   - the disconnections before cutoff: each ends a session, whose events
//     up to it go, found by the index by client; the disconnection goes
//     too, so the next pass does not see it again;
//   - the kicks before cutoff whose session's start is gone: a kick can be
//     committed just after its client's disconnection (the connection was
//     closing meanwhile), which the session's trim leaves;
//   - the broadcasts to all before cutoff, which all go;
//   - each channel's broadcasts before cutoff whose message is gone,
//     found in trimmed_broadcasts, where retention recorded them when it
//     deleted their messages; their rows there go with them.
func (l *Log) TrimAudit(ctx context.Context, app string, cutoff int64, batch int) (int, error) {
	head := l.Head()
	return l.trimAudit(ctx, app, cutoff, batch, head, head, head)
}

// trimAudit is TrimAudit for the sessions whose disconnection is at or
// before applied (the sessions projection has applied it), of whose
// events those before last go, and the broadcasts before lastBroadcast.
func (l *Log) trimAudit(ctx context.Context, app string, cutoff int64, batch int, applied, last, lastBroadcast uint64) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	// Events committed before cutoff are those before cut; last, the
	// newest event unless the caller says otherwise, stays (a
	// disconnection can be it: the events of its session before it go).
	cut, err := l.seqFrom(ctx, cutoff)
	if err != nil {
		return 0, fmt.Errorf("audit retention of %s: %w", app, err)
	}
	end := min(cut, lastBroadcast)
	deleted := 0
	// drain deletes the events query selects, a page of batch at a time,
	// until a page comes back short; with a channel, their rows in
	// trimmed_broadcasts too.
	drain := func(channel, query string, args ...any) error {
		for {
			n, err := l.trimEvents(ctx, app, channel, query, append(args, batch)...)
			deleted += n
			if err != nil || n < batch {
				return err
			}
		}
	}

	// Ended sessions, one disconnection at a time.
	sessionArgs := make([]any, len(sessionEvents))
	for i, n := range sessionEvents {
		sessionArgs[i] = n
	}
	var after uint64
	for {
		var ends []struct {
			seq    uint64
			client string
		}
		// A session whose end the projection has not applied waits for a
		// later pass: its events before last alone would go, and the
		// stored session it holds open would have no start in the log
		// (which fazt rebuild reports as a difference).
		rows, err := l.rdb.QueryContext(ctx, trimEndsQuery, app, domain.NameClientDisconnected, after, min(cut, applied+1), batch)
		if err != nil {
			return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
		}
		for rows.Next() {
			var e struct {
				seq    uint64
				client string
			}
			if err := rows.Scan(&e.seq, &e.client); err != nil {
				rows.Close()
				return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
			}
			ends = append(ends, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
		}
		for _, e := range ends {
			if e.client == "" {
				continue
			}
			if err := drain("", trimSessionQuery, append([]any{app, e.client, e.seq, last}, sessionArgs...)...); err != nil {
				return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
			}
		}
		if len(ends) < batch {
			break
		}
		after = ends[len(ends)-1].seq
	}

	// Kicks that came after their session's end, once it is gone. Kicks
	// are few: those still in the log before cutoff are almost all of
	// this kind, the others going with their sessions above.
	for after = 0; ; {
		kicks, err := l.trimOrphanKicks(ctx, app, after, min(cut, applied+1, last), batch)
		if err != nil {
			return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
		}
		if len(kicks.orphans) > 0 {
			n, err := l.deleteEvents(ctx, app, "", kicks.orphans)
			deleted += n
			if err != nil {
				return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
			}
		}
		if kicks.read < batch {
			break
		}
		after = kicks.last
	}

	// Broadcasts to all.
	if err := drain("", trimAllQuery, app, domain.NameBroadcastAll, end); err != nil {
		return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
	}

	// Broadcasts whose message is gone, channel by channel: only the
	// channels that have any, found along trimmed_broadcasts' key one
	// channel after another. (Listing every channel of the app and asking
	// each took 0.3 to 0.6 s a pass for 20,000 channels that had none,
	// BENCHMARKS.md: an app with a channel per user paid that every
	// minute.)
	for c := ""; ; {
		err := l.rdb.QueryRowContext(ctx, trimNextChannelQuery, app, c).Scan(&c)
		if errors.Is(err, sql.ErrNoRows) {
			return deleted, nil
		}
		if err != nil {
			return deleted, fmt.Errorf("audit retention of %s: %w", app, err)
		}
		if err := drain(c, trimChannelQuery, app, c, end); err != nil {
			return deleted, fmt.Errorf("audit retention of %s/%s: %w", app, c, err)
		}
	}
}

// orphanKicks is a page of kicks that trimOrphanKicks read: how many, the
// last one's sequence, and those whose session's start is gone.
type orphanKicks struct {
	read    int
	last    uint64
	orphans []any
}

// trimOrphanKicks reads a page of up to batch of app's kicks after after
// and before before, and finds those with no start of their client's
// session before them in the log.
func (l *Log) trimOrphanKicks(ctx context.Context, app string, after, before uint64, batch int) (orphanKicks, error) {
	var out orphanKicks
	type kick struct {
		seq    uint64
		client string
	}
	var kicks []kick
	rows, err := l.rdb.QueryContext(ctx, trimKicksQuery, app, domain.NameClientKicked, after, before, batch)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		var k kick
		if err := rows.Scan(&k.seq, &k.client); err != nil {
			rows.Close()
			return out, err
		}
		kicks = append(kicks, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	for _, k := range kicks {
		out.read, out.last = out.read+1, k.seq
		var one int
		err := l.rdb.QueryRowContext(ctx, trimStartedQuery, app, k.client, domain.NameClientConnected, k.seq).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out.orphans = append(out.orphans, int64(k.seq))
		case err != nil:
			return out, err
		}
	}
	return out, nil
}

// trimEvents deletes, in one transaction on the writer, the events whose
// sequences query (on a reader) returns, and says how many it deleted.
// Given a channel, it deletes their rows in trimmed_broadcasts too.
func (l *Log) trimEvents(ctx context.Context, app, channel, query string, args ...any) (int, error) {
	rows, err := l.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	var seqs []any
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return 0, err
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(seqs) == 0 {
		return 0, err
	}
	return l.deleteEvents(ctx, app, channel, seqs)
}

// deleteEvents deletes, in one transaction on the writer, the events of
// sequences seqs (int64s), and says how many it deleted. Given a channel,
// it deletes their rows in trimmed_broadcasts too.
func (l *Log) deleteEvents(ctx context.Context, app, channel string, seqs []any) (int, error) {
	in := strings.TrimSuffix(strings.Repeat("?,", len(seqs)), ",")
	deleted := 0
	err := l.WriteTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq IN (`+in+`)`, seqs...)
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		deleted = int(n)
		if channel == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM trimmed_broadcasts WHERE app = ? AND channel = ? AND seq IN (`+in+`)`, append([]any{app, channel}, seqs...)...)
		return err
	})
	if err != nil {
		return 0, err // rolled back: nothing was deleted
	}
	return deleted, nil
}
