//go:build !linux

package main

// startPolled is false here: each subscriber has a reader goroutine.
func startPolled(*benchConn, *deliveryLatency) bool { return false }

// benchReads is "": the subscribers are read by a goroutine each.
func benchReads() string { return "" }

// usePollerRing does nothing: there are no pollers.
func usePollerRing(bool) {}
