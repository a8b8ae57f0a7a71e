package pollfd

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A goroutine waits for an epoll set through Go's poller, and is let go
// when a descriptor in the set becomes ready.
func TestEpollWaitsInGosPoller(t *testing.T) {
	epfd, f, rc, err := Epoll("test-epoll")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		t.Fatal(err)
	}
	var events [4]unix.EpollEvent
	tries, got := 0, 0
	err = rc.Read(func(fd uintptr) bool {
		tries++
		if tries == 1 { // nothing ready yet: make the eventfd ready, then wait
			unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			return false
		}
		got, _ = unix.EpollWait(int(fd), events[:], 0)
		return got > 0
	})
	if err != nil || got != 1 || events[0].Fd != int32(efd) {
		t.Fatalf("err %v, %d events (%v), after %d tries", err, got, events[:got], tries)
	}
}

// A descriptor Go cannot poll (a regular file) is refused, and closed.
func TestPollableRefusesAFile(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(file.Fd()))
	file.Close()
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fd, true)
	if _, _, err := Pollable(fd, "plain"); err == nil {
		t.Fatal("a regular file was taken")
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("the refused descriptor is still open: %v", err)
	}
}
