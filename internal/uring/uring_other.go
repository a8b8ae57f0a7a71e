//go:build !linux

package uring

import "errors"

// Ring is Linux's alone; New fails elsewhere.
type Ring struct{}

// New fails: io_uring is Linux's.
func New(entries uint32) (*Ring, error) {
	return nil, errors.New("uring: io_uring is Linux's")
}

// Calls returns 0: there is no ring.
func (r *Ring) Calls() uint64 { return 0 }

// Close does nothing.
func (r *Ring) Close() error { return nil }

// Run is never called: there is no ring.
func (r *Ring) Run(ops []Op) error { return errors.New("uring: io_uring is Linux's") }
