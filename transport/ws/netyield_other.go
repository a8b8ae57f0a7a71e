//go:build !linux

package ws

import "runtime"

// netYield is runtime.Gosched here: without an eventfd, the goroutines
// waiting for the network run at a round's end, or when the runtime's
// monitor polls.
func netYield() { runtime.Gosched() }
