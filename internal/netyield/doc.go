// Package netyield lets the goroutines waiting for the network run
// before the caller goes on, where runtime.Gosched would not. The
// server's flushers yield with it during a long round of writes, and
// `fazt bench`'s pollers during a long run of reads.
package netyield
