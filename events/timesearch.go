package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Commit times never go backwards (see writeTx), so the events are in time
// order by sequence and a channel's messages by offset. A time bound is
// turned into a sequence or offset bound by binary search over the primary
// key, which is why neither table has an index on time: each would be one
// more B-tree written by every append.

// firstAtOrAfter returns the smallest key k in [lo, hi] such that every
// row with a key below k has a time before t: the first row with a key at
// or after k, if any, is the first at or after t. probe returns the first
// row with a key at or after its argument (ok false if there is none).
// It makes about log2(hi-lo) probes.
func firstAtOrAfter(lo, hi uint64, t int64, probe func(from uint64) (key uint64, ts int64, ok bool, err error)) (uint64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		key, ts, ok, err := probe(mid)
		if err != nil {
			return 0, err
		}
		if !ok || ts >= t {
			hi = mid
		} else {
			lo = key + 1
		}
	}
	return lo, nil
}

// SQLite finds a MIN or a MAX by one descent of the index only when it is
// the query's single aggregate; both in one SELECT read every row between
// them (0.3 s per million). So the bounds below are two subqueries.

// seqFrom returns a sequence s such that the events before s were
// committed before t (unix ms) and the first event at or after s, if any,
// at or after t.
func (l *Log) seqFrom(ctx context.Context, t int64) (uint64, error) {
	var lo, hi sql.NullInt64
	if err := l.rdb.QueryRowContext(ctx, `SELECT (SELECT MIN(seq) FROM events), (SELECT MAX(seq) FROM events)`).Scan(&lo, &hi); err != nil {
		return 0, fmt.Errorf("find events from %d: %w", t, err)
	}
	if !lo.Valid {
		return 0, nil
	}
	return firstAtOrAfter(uint64(lo.Int64), uint64(hi.Int64)+1, t, func(from uint64) (uint64, int64, bool, error) {
		var seq, ts int64
		err := l.rdb.QueryRowContext(ctx, `SELECT seq, ts FROM events WHERE seq >= ? ORDER BY seq LIMIT 1`, from).Scan(&seq, &ts)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("find events from %d: %w", t, err)
		}
		return uint64(seq), ts, true, nil
	})
}

// offsetFrom returns an offset o of a channel such that its retained
// messages before o were committed before t (unix ms) and the first at or
// after o, if any, at or after t.
func offsetFrom(ctx context.Context, rd reader, app, channel string, t int64) (uint64, error) {
	o, _, err := messageFrom(ctx, rd, app, channel, "ts", t)
	return o, err
}

// offsetAfterSeq returns an offset at or before that of every retained
// message of a channel with a sequence after seq: that of the first such
// message, or, when none has one (found false), an offset past every
// retained message (0 when none is).
func (l *Log) offsetAfterSeq(ctx context.Context, app, channel string, seq uint64) (offset uint64, found bool, err error) {
	// Sequences, like times, rise with offsets.
	o, end, err := messageFrom(ctx, l.rdb, app, channel, "seq", int64(seq)+1)
	return o, o < end, err
}

// messageFrom returns an offset o of a channel such that the column col
// (ts or seq, which rise with offsets) of its retained messages before o
// is below v, and that of the first at or after o, if any, at or above v;
// and end, the offset after its newest retained message (0 with none).
// A bound before the first message, such as a trail's first page, costs
// one probe.
func messageFrom(ctx context.Context, rd reader, app, channel, col string, v int64) (o, end uint64, err error) {
	var lo, hi sql.NullInt64
	if err := rd.QueryRowContext(ctx, `SELECT (SELECT MIN("offset") FROM messages WHERE app = ?1 AND channel = ?2),
		(SELECT MAX("offset") FROM messages WHERE app = ?1 AND channel = ?2)`, app, channel).Scan(&lo, &hi); err != nil {
		return 0, 0, fmt.Errorf("find messages from %s %d: %w", col, v, err)
	}
	if !lo.Valid {
		return 0, 0, nil
	}
	probe := func(from uint64) (uint64, int64, bool, error) {
		var off, got int64
		err := rd.QueryRowContext(ctx, `SELECT "offset", `+col+` FROM messages WHERE app = ? AND channel = ? AND "offset" >= ? ORDER BY "offset" LIMIT 1`, app, channel, from).Scan(&off, &got)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("find messages from %s %d: %w", col, v, err)
		}
		return uint64(off), got, true, nil
	}
	end = uint64(hi.Int64) + 1
	if _, first, ok, err := probe(uint64(lo.Int64)); err != nil || !ok || first >= v {
		return uint64(lo.Int64), end, err
	}
	o, err = firstAtOrAfter(uint64(lo.Int64), end, v, probe)
	return o, end, err
}
