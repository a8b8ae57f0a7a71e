package ws

import (
	"context"
	"maps"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// socketOptions reads the options that ListenTCP's connections must
// have off an accepted connection's socket.
func socketOptions(t *testing.T, c net.Conn) map[string]int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
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

// accepted dials ln and returns the server's side of the connection.
func accepted(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The connections that ListenTCP accepts have the keep-alive that net
// sets on each connection it accepts, though it is set once, on the
// listening socket.
func TestListenTCPConnectionsKeepAlive(t *testing.T) {
	ln, err := ListenTCP(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := socketOptions(t, accepted(t, ln))
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

	// What net.Listen's own connections get, so that a change of net's
	// defaults shows here.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if net := socketOptions(t, accepted(t, plain)); !maps.Equal(net, got) {
		t.Errorf("net.Listen's connections have %v, ListenTCP's %v", net, got)
	}
}
