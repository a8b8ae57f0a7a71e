package main

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxStamp reads a TCP connection with recvmsg(2) and keeps the kernel's
// receive time of what each read returned (SO_TIMESTAMPNS): when the
// kernel took the data in for the socket (on loopback, in the sender's
// own pass through the receiving side), before the tool's waking, reading
// and parsing. The subscribers' readers give it as the arrival of every
// frame parsed from that read; a frame that came in an earlier read than
// the stamp's is given a later arrival than its own, never an earlier
// one. The kernel starts stamping shortly after the first socket asks,
// not at once, and stops when the last one that asked closes, so the
// first reads of a run may have no time (at is 0).
type rxStamp struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // recv, bound once: a read allocates nothing
	p   []byte
	n   int
	err error
	oob [64]byte
	at  int64 // unix nanos of the last read's data; 0 if it had no stamp
}

// newRxStamp turns on receive timestamps for conn; nil where it cannot.
func newRxStamp(conn net.Conn) arrivalReader {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil
	}
	s := &rxStamp{rc: rc}
	s.fn = s.recv
	return s
}

func (s *rxStamp) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.p, s.n, s.err = p, 0, nil
	if err := s.rc.Read(s.fn); err != nil {
		return 0, err
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.n == 0 {
		return 0, io.EOF
	}
	return s.n, nil
}

func (s *rxStamp) arrival() int64 { return s.at }

// recv is the body of rc.Read: one recvmsg, or a wait for the socket.
func (s *rxStamp) recv(fd uintptr) bool {
	n, at, err := recvStamped(int(fd), s.p, s.oob[:])
	switch {
	case err == unix.EAGAIN:
		return false // wait for the socket
	case err != nil:
		s.err = os.NewSyscallError("recvmsg", err)
		return true
	}
	s.n = n
	if n > 0 {
		s.at = at
	}
	return true
}

// recvStamped is one recvmsg of fd into p, retried on EINTR, with the
// receive time of what it read (see rxTime); oob holds the control
// messages.
func recvStamped(fd int, p, oob []byte) (n int, at int64, err error) {
	n, oobn, _, _, err := unix.Recvmsg(fd, p, oob, 0)
	for err == unix.EINTR {
		n, oobn, _, _, err = unix.Recvmsg(fd, p, oob, 0)
	}
	if err != nil || n == 0 {
		return n, 0, err
	}
	return n, rxTime(oob[:oobn]), nil
}

// rxTime finds the receive time in a read's control messages: unix nanos,
// or 0.
func rxTime(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			return (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		}
		oob = rest
	}
	return 0
}
