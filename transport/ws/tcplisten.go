package ws

import (
	"context"
	"net"
)

// ListenTCP listens on addr (host:port) for Listener. Its connections
// have TCP keep-alive as net.Listen's would, and TCP_NODELAY. Where the
// kernel lets accepted connections inherit the listening socket's
// keep-alive (Linux), it is set once on the listening socket rather
// than by net's four setsockopt calls on each connection accepted:
// about 2.6% of the server's samples through `fazt bench conns` on the
// machines of BENCHMARKS.md, where a system call costs a microsecond.
// Elsewhere net sets it as usual.
func ListenTCP(ctx context.Context, addr string) (net.Listener, error) {
	return listenConfig().Listen(ctx, "tcp", addr)
}
