//go:build !linux || !cgo

package main

import "time"

// timerSlack: only Linux has a timer slack to set (timerslack_linux.go);
// FAZT_TIMER_SLACK is ignored elsewhere.
func timerSlack() (time.Duration, error) { return 0, nil }
