// Package health keeps the state /healthz reports: whether a part of the
// server (the log's commits, a projection) is failing, since when, and
// why.
package health

import (
	"sync/atomic"
	"time"
)

// Failing says whether a part is failing: from its first failure until it
// works again. The zero value is a part that works. Safe for concurrent
// use.
type Failing struct {
	p atomic.Pointer[failure]
}

type failure struct {
	since time.Time
	err   error
}

// Fail records err: the part has failed since now, unless it was failing
// already, when the first failure's time stays and err is the latest
// reason. It reports whether the failure began now.
func (f *Failing) Fail(err error) bool {
	for {
		old := f.p.Load()
		next := &failure{since: time.Now(), err: err}
		if old != nil {
			next.since = old.since
		}
		if f.p.CompareAndSwap(old, next) {
			return old == nil
		}
	}
}

// Works records that the part works again, and reports whether it had
// been failing.
func (f *Failing) Works() bool {
	if f.p.Load() == nil { // the common case: one load, no write
		return false
	}
	return f.p.Swap(nil) != nil
}

// Older returns, of the failures that states report, the one that has
// lasted longest; err is nil when none fails. A part made of several
// (a consumer's handler and its reads) fails as long as any does.
func Older(states ...func() (time.Time, error)) (since time.Time, err error) {
	for _, state := range states {
		if t, e := state(); e != nil && (err == nil || t.Before(since)) {
			since, err = t, e
		}
	}
	return since, err
}

// State returns the latest failure's reason, and since when the part has
// failed; err is nil while it works.
func (f *Failing) State() (since time.Time, err error) {
	if p := f.p.Load(); p != nil {
		return p.since, p.err
	}
	return time.Time{}, nil
}
