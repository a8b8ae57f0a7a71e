package ws

import (
	"context"
	"net"
	"time"
)

// TCP keep-alive as the net package sets it on each connection it
// accepts: the first probe after 15 s without traffic, then one every
// 15 s, and the connection ends after 9 unanswered.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

// ListenTCP listens on addr (host:port) for Listener. Its connections
// have TCP keep-alive as net.Listen's would, and TCP_NODELAY. Where the
// kernel lets accepted connections inherit the listening socket's
// keep-alive (Linux), it is set once on the listening socket rather
// than by net's four setsockopt calls on each connection accepted:
// about 2.5% of a connect's cost on the machines of BENCHMARKS.md, where
// a system call costs a microsecond. Elsewhere net sets it as usual.
func ListenTCP(ctx context.Context, addr string) (net.Listener, error) {
	return listenConfig().Listen(ctx, "tcp", addr)
}
