package ws

import (
	"log/slog"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fazt-realtime/fazt/internal/pollfd"
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
// with the first connection that parks. If it fails, it wakes every
// parked connection and refuses to park more: each keeps its reader.
type readPoller struct {
	epfd int
	file *os.File        // epfd's file; closing it stops the poller
	set  syscall.RawConn // epfd, through the netpoller

	mu     sync.Mutex
	conns  map[int32]*conn // registered connections by socket
	gen    int32           // last generation handed out
	broken bool            // the poller stopped; nothing parks
}

// pollState is a connection's part in the poller, under readPoller.mu.
type pollState struct {
	fd         int32 // the socket; -1 when it has none the poller can use
	gen        int32 // tells this connection's events from those of an earlier socket with the same number
	registered bool  // in the epoll set (armed or not)
	parked     bool  // armed, with no reader running
	closed     bool  // the socket is being closed: never park again
}

// poller is the process's read poller, made when first needed.
var poller = sync.OnceValue(newReadPoller)

// newReadPoller returns a running poller, or nil where epoll cannot be
// used.
func newReadPoller() *readPoller {
	epfd, f, set, err := pollfd.Epoll("fazt-read-poller")
	if err != nil {
		return nil // connections keep a reader goroutine each
	}
	p := &readPoller{epfd: epfd, file: f, set: set, conns: map[int32]*conn{}}
	go p.run()
	return p
}

// park arms c's socket and reports whether it did; the caller's reader
// must then return at once and not touch c.ws, since a new reader may
// already be running. It refuses once the socket is closing.
func (p *readPoller) park(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &c.poll
	if p.broken || st.closed || st.fd < 0 {
		return false
	}
	op := unix.EPOLL_CTL_MOD
	if !st.registered {
		op = unix.EPOLL_CTL_ADD
		p.gen++
		st.gen = p.gen
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: st.fd, Pad: st.gen}
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
// reader, which reads until the client's answer, the socket's end or
// the linger's deadline, and ends the connection.
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
// readers, for the life of the process or until the set fails.
func (p *readPoller) run() {
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		for {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr != unix.EINTR {
				return n > 0 || werr != nil // false: wait until the set is readable
			}
		}
	}
	for {
		err := p.set.Read(wait)
		if err == nil {
			err = werr
		}
		if err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			c := p.conns[ev.Fd]
			if c == nil || c.poll.gen != ev.Pad || !c.poll.parked {
				continue // its socket closed since, and the number may be a new one's
			}
			c.poll.parked = false
			c.srv.workers.run(c.readLoop)
		}
		p.mu.Unlock()
	}
}

// fail stops parking and starts a reader for every parked connection.
func (p *readPoller) fail(err error) {
	slog.Error("ws: the read poller stopped; every connection keeps a reader goroutine from now on", "err", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.broken = true
	for _, c := range p.conns {
		if c.poll.parked {
			c.poll.parked = false
			c.srv.workers.run(c.readLoop)
		}
	}
}
