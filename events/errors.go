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
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrReadonly, sqlite3.ErrIoErr, sqlite3.ErrCantOpen, sqlite3.ErrBusy, sqlite3.ErrLocked:
		return errors.Join(domain.Errorf(domain.CodeUnavailable, "event log cannot commit: %v", se), err)
	}
	return err
}

// storageFailure says whether err, a commit's failure, is the storage's
// (a full disk, an I/O error, a locked or damaged file, no memory) rather
// than the append's own, such as a constraint one bad append breaks.
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
