package events

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

func TestWriteTxAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := mustOpen(t, path)
	// A failing fn rolls back; a good one commits with its checkpoint.
	boom := errors.New("boom")
	if err := l.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := SetCheckpoint(ctx, tx, "p.v1", 7, 1); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("WriteTx = %v, want boom", err)
	}
	if seq, err := Checkpoint(ctx, l.rdb, "p.v1"); err != nil || seq != 0 {
		t.Fatalf("checkpoint after a rollback: %d, %v", seq, err)
	}
	for _, seq := range []uint64{5, 9} {
		if err := l.WriteTx(ctx, func(tx *sql.Tx) error { return SetCheckpoint(ctx, tx, "p.v1", seq, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := Checkpoint(ctx, l.rdb, "p.v1"); err != nil || seq != 9 {
		t.Fatalf("checkpoint: %d, %v; want 9", seq, err)
	}
	// A read-only log refuses to write.
	ro, err := Open(ctx, Config{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.WriteTx(ctx, func(*sql.Tx) error { return nil }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("WriteTx on a read-only log: %v", err)
	}
	l.Close()
	if err := l.WriteTx(ctx, func(*sql.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteTx after Close: %v", err)
	}
}
