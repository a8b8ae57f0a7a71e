package events

import (
	"context"
	"os"
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

// TestTheLockFollowsTheName: a file renamed over the database between
// lockFile's open and its lock (as fazt restore does) would leave the lock
// on a file that no longer has the name; lockFile locks the one that has.
// A file locked by another holder under the name is then refused.
func TestTheLockFollowsTheName(t *testing.T) {
	defer func() { lockOpened = func(string) {} }()
	dir := t.TempDir()
	path := filepath.Join(dir, "fazt.db")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	replaced := false
	lockOpened = func(string) {
		if !replaced {
			replaced = true
			if err := os.WriteFile(path+".new", []byte("new"), 0o644); err != nil {
				t.Error(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Error(err)
			}
		}
	}
	f, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	held, _ := f.Stat()
	named, _ := os.Stat(path)
	if !replaced || !os.SameFile(held, named) {
		t.Fatalf("the lock is on another file than the one named %s (replaced %v)", path, replaced)
	}
	lockOpened = func(string) {}
	if _, err := lockFile(path); err == nil || !strings.Contains(err.Error(), "open for writing in another process") {
		t.Fatalf("a second lock of the file: %v", err)
	}
}
