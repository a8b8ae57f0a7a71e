//go:build linux && !386 && !s390x

package ws

import (
	"syscall"
	"unsafe"
)

// rawWrites: connections get a flusher, which writes their sockets
// through rawWrite.
const rawWrites = true

// sendFlags: never wait, whatever the socket's mode, and no SIGPIPE
// when the client has gone (the write fails with EPIPE all the same).
const sendFlags = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL

// (On 386 and s390x, a direct sendto call needs Linux 4.3, newer than
// Go's minimum, and package syscall has no number for it on 386: Go
// goes through socketcall there. rawwrite_unix.go's write serves them.)

// rawWrite is the body of RawConn.Control: one send(2) of the buffer,
// never waiting for the socket to become writable. It is sendto rather
// than write, which would go through the file layer first (its checks
// and notifications: about 1.7% of the core at 200,000 deliveries/s). The
// call returns at once, and it goes to the kernel without the scheduler's
// bookkeeping for a system call that may block (syscall.Write's), a
// tenth of a microsecond a write. The kernel may still make it wait a
// little (for the socket's lock, which a read of the same socket holds
// for microseconds), and the goroutine keeps its processor meanwhile.
// What the race detector checks of syscall.Write's buffer, it does not
// check here; f.wbuf is the flusher's own, written only by its
// goroutine.
func (f *flusher) rawWrite(fd uintptr) {
	var p unsafe.Pointer
	if len(f.wbuf) > 0 {
		p = unsafe.Pointer(&f.wbuf[0])
	}
	for {
		r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(p), uintptr(len(f.wbuf)), sendFlags, 0, 0)
		switch errno {
		case 0:
			f.wn, f.werr = int(r), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			f.wn, f.werr = 0, nil
		default:
			f.wn, f.werr = 0, errno
		}
		return
	}
}
