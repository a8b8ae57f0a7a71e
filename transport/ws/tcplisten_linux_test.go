package ws

import (
	"context"
	"maps"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketOptions reads the options that ListenTCP's connections must
// have off an accepted connection's socket.
func socketOptions(t *testing.T, c *net.TCPConn) map[string]int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var gerr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range []struct {
			level, name int
			what        string
		}{
			{unix.SOL_SOCKET, unix.SO_KEEPALIVE, "SO_KEEPALIVE"},
			{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, "TCP_KEEPIDLE"},
			{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, "TCP_KEEPINTVL"},
			{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, "TCP_KEEPCNT"},
			{unix.IPPROTO_TCP, unix.TCP_NODELAY, "TCP_NODELAY"},
		} {
			v, err := unix.GetsockoptInt(int(fd), o.level, o.name)
			if err != nil && gerr == nil {
				gerr = err
			}
			got[o.what] = v
		}
	})
	if err == nil {
		err = gerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// accepted dials ln, through Multipath TCP if mptcp, and returns the
// server's side of the connection.
func accepted(t *testing.T, ln net.Listener, mptcp bool) *net.TCPConn {
	t.Helper()
	var dialer net.Dialer
	dialer.SetMultipathTCP(mptcp)
	d, err := dialer.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// The connections that ListenTCP accepts have the keep-alive that net
// sets on each connection it accepts, though it is set once, on the
// listening socket; for clients of plain TCP and of Multipath TCP (net
// listens with MPTCP where the kernel has it, and a plain client's
// connection is then made from the listener's TCP side).
func TestListenTCPConnectionsKeepAlive(t *testing.T) {
	for _, mptcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "mptcp"}[mptcp], func(t *testing.T) {
			ln, err := ListenTCP(context.Background(), "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c := accepted(t, ln, mptcp)
			if used, _ := c.MultipathTCP(); used != mptcp {
				t.Skipf("the connection is not what the client asked for (MPTCP %v): no MPTCP here", used)
			}
			got := socketOptions(t, c)
			want := map[string]int{
				"SO_KEEPALIVE":  1,
				"TCP_KEEPIDLE":  15,
				"TCP_KEEPINTVL": 15,
				"TCP_KEEPCNT":   9,
				"TCP_NODELAY":   1,
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}

			// What net.Listen's own connections get, so that a change of
			// net's defaults shows here.
			plain, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if std := socketOptions(t, accepted(t, plain, mptcp)); !maps.Equal(std, got) {
				t.Errorf("net.Listen's connections have %v, ListenTCP's %v", std, got)
			}
		})
	}
}

// The listening socket's keep-alive is what the connections keep: net
// does not set its own on each (it would set 15 s, 15 s and 9).
func TestListenTCPConnectionsKeepTheListenersKeepAlive(t *testing.T) {
	ln, err := keepAliveListenConfig(16*time.Second, 17*time.Second, 8).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := socketOptions(t, accepted(t, ln, false))
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 16, "TCP_KEEPINTVL": 17, "TCP_KEEPCNT": 8, "TCP_NODELAY": 1}
	if !maps.Equal(got, want) {
		t.Errorf("accepted connection: %v, want %v", got, want)
	}
}
