package main

import (
	"testing"
	"time"
)

// A poller's yield comes back each time: the eventfd it writes wakes it
// through Go's poller, however often it yields.
func TestPollerYieldReturns(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		done := make(chan struct{})
		go func() { p.yield(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second): // a guard against a hang, not a measure
			t.Fatalf("yield %d did not return", i)
		}
	}
}
