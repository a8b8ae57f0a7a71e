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

// probeableFailure says whether err is a failure the writer's probe, a
// write of its own, fails as an append does while it lasts: one of
// storageCodes (the file full, locked, read-only or not to be opened, an
// I/O error, no memory or permission) but a damaged file, whose damaged
// pages the probe's are not.
func probeableFailure(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && storageCodes[se.Code] && se.Code != sqlite3.ErrCorrupt && se.Code != sqlite3.ErrNotADB
}

// wholeFileFailure says whether err is a failure of the whole file that
// every transaction meets alike: the lock held elsewhere, a file made
// read-only or that cannot be opened, one that is not a database (its
// header damaged, the file replaced), no permission. A damaged page, an
// I/O error, a full disk or no memory may be met by some appends and not
// by others.
func wholeFileFailure(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrReadonly, sqlite3.ErrCantOpen, sqlite3.ErrNotADB, sqlite3.ErrPerm:
		return true
	}
	return false
}

// storageFailure says whether err, a commit's failure, is the log's
// rather than the append's own: any SQLite failure but those one bad
// append causes (a constraint, a value too big, of the wrong type or out
// of range). storageCodes are those of them an append is answered as
// unavailable; the others (a damaged schema, a failure of SQLite's own)
// are internal to it, and fail the log's health all the same.
func storageFailure(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrConstraint, sqlite3.ErrTooBig, sqlite3.ErrMismatch, sqlite3.ErrRange:
		return false
	}
	return true
}
