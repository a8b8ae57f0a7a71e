package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrReadOnly is returned by writes to a log opened with Config.ReadOnly.
var ErrReadOnly = errors.New("database is open read-only")

// WriteTx runs fn in one transaction on the log's writer connection and
// commits it if fn returns nil. It is how projections and retention write
// to the file: SQLite allows one writer, and the log's connection is it, so
// fn runs between the writer's group commits and must be short (a batch of
// rows, not a scan of the log). fn must not call Append, which would wait
// for the connection fn holds.
func (l *Log) WriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if l.wdb == nil {
		return ErrReadOnly
	}
	select {
	case <-l.closed:
		return ErrClosed
	default:
	}
	tx, err := l.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	l.checkpointSoon()
	return nil
}

// ReadTx runs fn in one read-only transaction on a reader connection, so
// that everything fn reads comes from one snapshot of the file, even while
// the writer commits.
func (l *Log) ReadTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := l.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// Checkpoint returns the last sequence the named projection recorded as
// applied; 0 when it never ran.
func Checkpoint(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, name string) (uint64, error) {
	var seq uint64
	err := q.QueryRowContext(ctx, `SELECT seq FROM projection_checkpoints WHERE name = ?`, name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint of %s: %w", name, err)
	}
	return seq, nil
}

// SetCheckpoint records, inside a projection's write transaction, that it
// has applied every event up to seq.
func SetCheckpoint(ctx context.Context, tx *sql.Tx, name string, seq uint64, now int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, seq, updated) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated = excluded.updated`, name, seq, now); err != nil {
		return fmt.Errorf("record checkpoint of %s: %w", name, err)
	}
	return nil
}
