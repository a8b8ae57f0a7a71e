package ws

import (
	"time"

	"golang.org/x/sys/unix"
)

// peerTaking reports whether c's peer is taking what the server writes:
// something is on its way to it (sent and not yet acknowledged, queued, or
// being written), and its TCP acknowledged data within the last d.
func (c *conn) peerTaking(d time.Duration) bool {
	if c.rc == nil {
		return false
	}
	var info *unix.TCPInfo
	var err error
	if cerr := c.rc.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); cerr != nil || err != nil {
		return false
	}
	c.mu.Lock()
	pending := len(c.queue) > 0 || c.writing
	c.mu.Unlock()
	return (info.Unacked > 0 || pending) && time.Duration(info.Last_ack_recv)*time.Millisecond < d
}
