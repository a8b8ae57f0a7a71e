//go:build !linux

package main

// startPolled is false here: each subscriber has a reader goroutine.
func startPolled(*benchConn, *deliveryLatency) bool { return false }
