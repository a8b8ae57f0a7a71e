//go:build !linux

package ws

import (
	"runtime"
	"time"
)

// netYield is runtime.Gosched here: without an eventfd, the goroutines
// waiting for the network run at a round's end, or when the runtime's
// monitor polls.
func netYield() { runtime.Gosched() }

// netYieldEvery is how much of a round a flusher runs between calls to
// netYield.
const netYieldEvery = time.Millisecond
