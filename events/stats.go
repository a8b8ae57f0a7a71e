package events

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// Stats is what the database holds, for operators.
type Stats struct {
	// Events counts the events the log retains; FirstSeq and LastSeq are
	// the oldest and newest of their sequence numbers (0 when empty).
	Events            int64
	FirstSeq, LastSeq uint64
	// Channels counts channels that have had a message.
	Channels int64
	// Messages counts retained message payloads; OldestMessage is the
	// commit time (unix ms) of the oldest one (0 when there are none).
	Messages      int64
	OldestMessage int64
	// Kinds has, per event name, how many events the log retains and the
	// oldest of them, ordered by name.
	Kinds []KindStats
	// FileBytes is the size of the database file, WALBytes of its
	// write-ahead log.
	FileBytes, WALBytes int64
}

// KindStats describes the retained events of one name.
type KindStats struct {
	Name       string
	Count      int64
	OldestSeq  uint64
	OldestTime int64 // unix ms
}

// Stats counts what the database holds, for one app or (app "") for all.
// It reads in one transaction so the numbers agree with each other.
func (l *Log) Stats(ctx context.Context, app string) (Stats, error) {
	var s Stats
	tx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s, fmt.Errorf("stats: %w", err)
	}
	defer tx.Rollback()
	where, args := "", []any{}
	if app != "" {
		where, args = " WHERE app = ?", []any{app}
	}
	var first, last, oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), MIN(seq), MAX(seq) FROM events`+where, args...).Scan(&s.Events, &first, &last); err != nil {
		return s, fmt.Errorf("stats: count events: %w", err)
	}
	s.FirstSeq, s.LastSeq = uint64(first.Int64), uint64(last.Int64)
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM channels`+where, args...).Scan(&s.Channels); err != nil {
		return s, fmt.Errorf("stats: count channels: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), MIN(ts) FROM messages`+where, args...).Scan(&s.Messages, &oldest); err != nil {
		return s, fmt.Errorf("stats: count messages: %w", err)
	}
	s.OldestMessage = oldest.Int64
	// MIN(seq) picks the oldest row; SQLite returns ts from that same row.
	rows, err := tx.QueryContext(ctx, `SELECT name, COUNT(*), MIN(seq), ts FROM events`+where+` GROUP BY name ORDER BY name`, args...)
	if err != nil {
		return s, fmt.Errorf("stats: events by kind: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k KindStats
		if err := rows.Scan(&k.Name, &k.Count, &k.OldestSeq, &k.OldestTime); err != nil {
			return s, fmt.Errorf("stats: events by kind: %w", err)
		}
		s.Kinds = append(s.Kinds, k)
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("stats: events by kind: %w", err)
	}
	if fi, err := os.Stat(l.cfg.Path); err == nil {
		s.FileBytes = fi.Size()
	}
	s.WALBytes = l.walSize()
	return s, nil
}
