package ws

import (
	"syscall"
	"unsafe"
)

// rawWrites: connections get a flusher, which writes their sockets
// through rawWrite.
const rawWrites = true

// rawWrite is the body of RawConn.Control: one write(2), never waiting
// for the socket to become writable. The socket is non-blocking, so the call
// returns at once, and it goes to the kernel without the scheduler's
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
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(p), uintptr(len(f.wbuf)))
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
