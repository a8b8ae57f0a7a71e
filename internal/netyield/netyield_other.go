//go:build !linux

package netyield

import (
	"runtime"
	"time"
)

// Yield is runtime.Gosched here: without an eventfd, the goroutines
// waiting for the network run at a round's end, or when the runtime's
// monitor polls.
func Yield(time.Duration) { runtime.Gosched() }
