package events

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// lockOpened is called between lockFile's open and its lock: a test's way
// in.
var lockOpened = func(string) {}

// lockFile takes an exclusive lock on the database file, held for as long
// as the returned file is open, so that a second writer of the same file
// (another `fazt serve`) refuses to start: the writer assigns offsets from
// what it keeps in memory (Log.heads), which another process's appends
// would make wrong. It is flock(2), which on Linux is apart from the
// fcntl(2) locks SQLite takes on the same file (flock(2)'s manual); not
// every system keeps them apart, so elsewhere nothing is locked
// (lock_other.go). Readers (ReadOnly) take none.
//
// A file renamed over path between the open and the lock (fazt restore's
// copy) leaves the lock on a file that no longer has the name: the lock
// is taken again on the one that has it.
func lockFile(path string) (*os.File, error) {
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		lockOpened(path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is open for writing in another process (another fazt serve?)", path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		named, err := os.Stat(path)
		if err == nil && os.SameFile(held, named) {
			return f, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return nil, fmt.Errorf("lock %s: the file kept being replaced while it was locked", path)
}
