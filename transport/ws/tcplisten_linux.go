package ws

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenConfig sets keep-alive on the listening socket, which Linux
// copies to each connection it accepts (tcp_create_openreq_child arms
// the copy's timer), and stops net from setting it again on each. net
// listens with Multipath TCP where the kernel has it; the options then
// go to the MPTCP socket, which passes them to its TCP side, so plain
// and MPTCP clients' connections get them alike
// (TestListenTCPConnectionsKeepAlive). A kernel that refused them on an
// MPTCP socket would fail this Control, and net would listen with plain
// TCP instead.
func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{
		KeepAlive: -1,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) {
				err = setKeepAlive(int(fd))
			}); cerr != nil {
				return cerr
			}
			return err
		},
	}
}

func setKeepAlive(fd int) error {
	for _, o := range []struct {
		level, name, value int
		what               string
	}{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(keepAliveIdle.Seconds()), "TCP_KEEPIDLE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(keepAliveInterval.Seconds()), "TCP_KEEPINTVL"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepAliveCount, "TCP_KEEPCNT"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return os.NewSyscallError("setsockopt "+o.what, err)
		}
	}
	return nil
}
