package ws

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A readPoller lets a connection with nothing to read give up its reader
// goroutine. The reader parks the connection (its socket goes into one
// epoll set, one-shot) and returns; when the client sends something or
// hangs up, the poller starts a new reader. An idle connection then holds
// no goroutine and no stack, only its heap state: most connections of a
// realtime server are idle most of the time.
//
// Go's own netpoller still owns the sockets' reads and writes; this set
// only says when to start reading again. The set's own descriptor is in
// the netpoller too, so the poller's goroutine waits like any reader (no
// thread blocked in epoll_wait) and wakes when a parked socket is ready.
// One poller serves the process, like the runtime's netpoller; it starts
// with the first connection that parks.
type readPoller struct {
	epfd int
	set  syscall.RawConn // epfd, through the netpoller

	mu    sync.Mutex
	conns map[int32]*conn // parked connections by socket
}

// pollState is a connection's part in the poller, under readPoller.mu.
type pollState struct {
	fd         int32 // the socket; -1 when it has none the poller can use
	registered bool  // in the epoll set (armed or not)
	parked     bool  // armed, with no reader running
	closed     bool  // the socket is being closed: never park again
}

var poller = sync.OnceValue(func() *readPoller {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil // connections keep a reader goroutine each
	}
	// A non-blocking descriptor makes a pollable file.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil
	}
	set, err := os.NewFile(uintptr(epfd), "fazt-read-poller").SyscallConn()
	if err != nil {
		unix.Close(epfd)
		return nil
	}
	p := &readPoller{epfd: epfd, set: set, conns: map[int32]*conn{}}
	go p.run()
	return p
})

// park arms c's socket and reports whether it did; the caller's reader
// must then return at once and not touch c.ws, since a new reader may
// already be running. It refuses once the socket is closing.
func (p *readPoller) park(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &c.poll
	if st.closed || st.fd < 0 {
		return false
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: st.fd}
	op := unix.EPOLL_CTL_MOD
	if !st.registered {
		op = unix.EPOLL_CTL_ADD
	}
	if err := unix.EpollCtl(p.epfd, op, int(st.fd), &ev); err != nil {
		return false
	}
	st.registered, st.parked = true, true
	p.conns[st.fd] = c
	return true
}

// closing marks c's socket as about to close, before it is closed (so its
// number, which the kernel may give to a new connection, is forgotten
// first), and reports whether c was parked: the caller then starts a
// reader, which finds the socket closed and ends the connection.
func (p *readPoller) closing(c *conn) (wasParked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &c.poll
	st.closed = true
	wasParked, st.parked = st.parked, false
	if st.registered && p.conns[st.fd] == c {
		delete(p.conns, st.fd)
	}
	return wasParked
}

// run waits for parked sockets to become readable and starts their
// readers. It runs for the life of the process.
func (p *readPoller) run() {
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		if werr == unix.EINTR {
			n, werr = 0, nil
		}
		return n > 0 || werr != nil // false: wait until the set is readable
	}
	for {
		if err := p.set.Read(wait); err != nil {
			panic("ws: read poller: " + err.Error())
		}
		if werr != nil {
			panic("ws: read poller: epoll_wait: " + werr.Error())
		}
		p.mu.Lock()
		for i := range n {
			c := p.conns[events[i].Fd]
			if c == nil || !c.poll.parked {
				continue // a socket closed since; its number may be reused
			}
			c.poll.parked = false
			go c.readLoop()
		}
		p.mu.Unlock()
	}
}
