// Package pollfd puts descriptors of the process's own making (an epoll
// set, an eventfd) in Go's network poller, so that a goroutine can wait
// for them there, through syscall.RawConn.Read, without holding a thread:
// the server's read poller, its flushers' yield (internal/netyield) and
// `fazt bench`'s pollers wait so.
package pollfd

import (
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pollable wraps fd, which must be non-blocking, in a File that Go's
// poller watches. Go takes a non-blocking file if deadlines can be set on
// it; where they cannot, a wait would block a thread, and Pollable closes
// fd and fails. The RawConn keeps the File, and so fd, open.
func Pollable(fd int, name string) (*os.File, syscall.RawConn, error) {
	f := os.NewFile(uintptr(fd), name)
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// Epoll makes an epoll set that Go's poller watches: epfd for
// epoll_ctl(2) and epoll_wait(2), rc to wait for it to have events.
func Epoll(name string) (epfd int, f *os.File, rc syscall.RawConn, err error) {
	epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, nil, nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return -1, nil, nil, os.NewSyscallError("fcntl", err)
	}
	if f, rc, err = Pollable(epfd, name); err != nil {
		return -1, nil, nil, err
	}
	return epfd, f, rc, nil
}
