//go:build !linux

package ws

// Without epoll every connection keeps its reader goroutine.
type readPoller struct{}

type pollState struct{ fd int32 }

var poller = func() *readPoller { return nil }

func (p *readPoller) park(c *conn) bool                { return false }
func (p *readPoller) closing(c *conn) (wasParked bool) { return false }
