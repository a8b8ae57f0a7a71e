package events

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestASecondWriterIsRefused: while a log is open for writing, opening
// the same file for writing again fails with a clear error, and reading
// it does not; once the first is closed, the file can be opened again.
func TestASecondWriterIsRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	broadcasts(t, l, "app", "c", 1, 0)
	if _, err := Open(ctx, Config{Path: path}); err == nil || !strings.Contains(err.Error(), "open for writing in another process") {
		l.Close()
		t.Fatalf("a second writer: %v, want it refused", err)
	}
	r, err := Open(ctx, Config{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatalf("a reader beside the writer: %v", err)
	}
	r.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatalf("reopened after close: %v", err)
	}
	l.Close()
}
