package uring

import "syscall"

// Op is one send of Buf to the socket FD, or with Recv one receive into
// Buf from it. Ring.Run fills in N and Err.
type Op struct {
	FD  int32
	Buf []byte
	// Recv receives instead of sending: recv(2) with MSG_DONTWAIT.
	Recv bool
	// N is how many bytes of Buf the socket took, or gave (0 for a
	// receive at the end of the stream); Err is why it took or gave
	// none: EAGAIN when its buffer is full, or has nothing (the socket
	// is fine), or the call's error (EPIPE, ECONNRESET, EBADF ...).
	N   int
	Err syscall.Errno
}
