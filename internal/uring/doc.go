// Package uring sends to and receives from many sockets with one system
// call, through Linux's io_uring: the caller lists the sends and
// receives, the kernel runs each one at once as a send(2) or recv(2) that
// never waits would, and reports what each socket took or gave.
//
// A system call costs about a microsecond on the machines Fazt is
// measured on (a virtual machine with page-table isolation), and a small
// send to a loopback socket about six in all; sends made in batches of
// 64 here cost about four. The server's flushers write every connection
// of a round this way where the kernel allows it (Linux 5.6 or later,
// io_uring not disabled by sysctl or seccomp), and one send(2) each
// elsewhere; `fazt bench` reads its subscribers' sockets so too.
//
// Only what those need is here: a ring of fixed size, sends and receives
// that never wait (MSG_DONTWAIT), and a call that returns once every one
// has completed, so that no buffer is in the kernel's hands after it.
package uring
