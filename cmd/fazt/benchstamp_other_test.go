//go:build !linux

package main

// receiveTimesWork: the tool reads receive times on Linux only.
func receiveTimesWork() bool { return false }
