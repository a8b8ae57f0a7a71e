package events

import (
	"errors"

	"github.com/mattn/go-sqlite3"

	"github.com/fazt-realtime/fazt/domain"
)

// classify turns storage failures that are the machine's state rather than
// a bug (a full disk, a read-only file, an I/O error, a lock held too long)
// into unavailable errors, so that callers answer 503 with the cause instead
// of an opaque internal error.
func classify(err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	if storageCodes[se.Code] {
		return errors.Join(domain.Errorf(domain.CodeUnavailable, "event log cannot commit: %v", se), err)
	}
	return err
}

// storageCodes are SQLite's failures of the storage: a full disk, an I/O
// error, a file made read-only, damaged or not a database, another
// process holding the lock past the wait, no memory.
var storageCodes = map[sqlite3.ErrNo]bool{
	sqlite3.ErrFull: true, sqlite3.ErrReadonly: true, sqlite3.ErrIoErr: true, sqlite3.ErrCantOpen: true,
	sqlite3.ErrBusy: true, sqlite3.ErrLocked: true, sqlite3.ErrCorrupt: true, sqlite3.ErrNotADB: true,
	sqlite3.ErrNomem: true, sqlite3.ErrPerm: true,
}

// storageFailure says whether err, a commit's failure, is the storage's
// (storageCodes; what an append is answered as unavailable) rather than
// the append's own.
func storageFailure(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && storageCodes[se.Code]
}
