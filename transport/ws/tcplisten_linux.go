package ws

import (
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TCP keep-alive as the net package sets it on each connection it
// accepts: the first probe after 15 s without traffic, then one every
// 15 s, and the connection ends after 9 unanswered.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

// listenConfig sets keep-alive on the listening socket, which Linux
// copies to each connection it accepts (tcp_create_openreq_child arms
// the copy's timer), and stops net from setting it again on each. net
// listens with Multipath TCP where the kernel has it; the options then
// go to the MPTCP socket, which passes them to its TCP side, so plain
// and MPTCP clients' connections get them alike
// (TestListenTCPConnectionsKeepAlive). A kernel that refused them on an
// MPTCP socket would fail this Control, and net would listen with plain
// TCP instead, without a word.
func listenConfig() *net.ListenConfig {
	return keepAliveListenConfig(keepAliveIdle, keepAliveInterval, keepAliveCount)
}

// keepAliveListenConfig is listenConfig with the keep-alive given.
func keepAliveListenConfig(idle, interval time.Duration, count int) *net.ListenConfig {
	return &net.ListenConfig{
		KeepAlive: -1,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) {
				err = setKeepAlive(int(fd), idle, interval, count)
			}); cerr != nil {
				return cerr
			}
			return err
		},
	}
}

func setKeepAlive(fd int, idle, interval time.Duration, count int) error {
	for _, o := range []struct {
		level, name, value int
		what               string
	}{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(idle.Seconds()), "TCP_KEEPIDLE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(interval.Seconds()), "TCP_KEEPINTVL"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, count, "TCP_KEEPCNT"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return os.NewSyscallError("setsockopt "+o.what, err)
		}
	}
	return nil
}
