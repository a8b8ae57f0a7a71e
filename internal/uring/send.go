package uring

import "syscall"

// Send is one send of Buf to the socket FD. Ring.Send fills in N and Err.
type Send struct {
	FD  int32
	Buf []byte
	// N is how many bytes of Buf the socket took; Err is why it took
	// none: EAGAIN when its send buffer is full (the socket is fine), or
	// the send's error (EPIPE, ECONNRESET, EBADF ...).
	N   int
	Err syscall.Errno
}
