//go:build unix && !(linux && !386 && !s390x)

package ws

import "syscall"

// rawWrites: connections get a flusher, which writes their sockets
// through rawWrite.
const rawWrites = true

// rawWrite is the body of RawConn.Control: one write(2), never waiting
// for the socket to become writable (it is non-blocking).
func (f *flusher) rawWrite(fd uintptr) {
	for {
		n, err := syscall.Write(int(fd), f.wbuf)
		if err == syscall.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		if err == syscall.EAGAIN {
			err = nil
		}
		f.wn, f.werr = n, err
		return
	}
}
