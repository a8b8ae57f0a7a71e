package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fazt-realtime/fazt/internal/netyield"
	"github.com/fazt-realtime/fazt/internal/pollfd"
	"github.com/fazt-realtime/fazt/internal/uring"
)

// The subscribers' sockets are read by a few pollers, each a goroutine
// with an epoll set of its own, rather than by a goroutine each. With a
// goroutine each, every delivery cost the tool two reads (one got the
// frame, the next EAGAIN) and a park and wake-up in Go's scheduler: at
// 50,000 deliveries/s the tool fell behind the server's rounds and its
// own delay entered the latency it reported (BENCHMARKS.md, stops 25 and
// 27). A poller asks epoll which of its sockets have data, reads each of
// those once, and handles every whole frame that read brought. A poller
// waits in Go's own poller, on its epoll descriptor, so that it holds no
// thread while the sockets are quiet.
//
// A socket comes to a poller once the connection is subscribed: it is
// duplicated and the net.Conn closed, so that Go's poller no longer
// watches it too (it would wake for every frame). What the connection's
// buffered reader held goes with it. The poller owns the descriptor from
// then on and closes it when the connection ends; writes (pongs, the
// close frame) go straight to the socket.
type poller struct {
	epfd   int
	wait   syscall.RawConn // epfd, in Go's poller
	waitFn func(fd uintptr) bool
	ready  int   // events epoll_wait returned
	err    error // why epoll_wait failed; the poller ends its sockets
	busy   int   // events handled since the sockets were last quiet
	events [pollBatch]unix.EpollEvent
	batch  [pollBatch]*polled // the events' connections
	ring   *uring.Ring        // reads the batch in one call; nil: a read each
	ops    []uring.Op
	// hasRing: ring is set (for the report, from another goroutine).
	hasRing atomic.Bool

	mu     sync.Mutex
	conns  map[int32]*polled // by descriptor
	broken bool              // run has ended: add refuses
	file   *os.File          // the epoll descriptor
}

// polled is a connection a poller reads.
type polled struct {
	bc     *benchConn
	l      *deliveryLatency
	fd     int // the poller's; -1 once closed (under bc.ws.wmu)
	buf    []byte
	n      int         // bytes in buf: the start of a frame not yet whole
	size   int         // buf's length but while a larger frame comes in
	werr   error       // why a write failed (under bc.ws.wmu)
	failed atomic.Bool // werr is set
	stamp  bool        // reads the kernel's receive times
	at     int64
	oob    [64]byte
}

// errClosing ends the reading of a connection the tool is closing.
var errClosing = errors.New("closed by the tool")

// pollers is the set the subscribers are spread over, one a processor,
// started with the first subscriber and kept as long as the tool runs.
var pollers struct {
	once sync.Once
	set  []*poller
	next atomic.Uint32
	// noRing: the pollers read with read(2) even with a ring
	// (--io-uring=false).
	noRing atomic.Bool
}

// usePollerRing says whether the pollers read through io_uring where
// they have a ring.
func usePollerRing(on bool) { pollers.noRing.Store(!on) }

// benchReads says how the pollers read the subscribers' sockets, for the
// report: "io_uring", "read", "io_uring and read" when some pollers had
// no ring, or "" with no poller (no subscriber, or not Linux: a
// goroutine each).
func benchReads() string {
	rings := 0
	for _, p := range pollers.set {
		if !p.plain() {
			rings++
		}
	}
	switch {
	case len(pollers.set) == 0:
		return ""
	case rings == len(pollers.set):
		return "io_uring"
	case rings == 0:
		return "read"
	default:
		return "io_uring and read"
	}
}

// plain: the poller reads with read(2), a call each.
func (p *poller) plain() bool { return !p.hasRing.Load() || pollers.noRing.Load() }

// startPolled hands bc's connection to a poller; false where it cannot,
// and bc is read as before.
func startPolled(bc *benchConn, l *deliveryLatency) bool {
	pollers.once.Do(startPollers)
	if len(pollers.set) == 0 {
		return false
	}
	p := pollers.set[int(pollers.next.Add(1))%len(pollers.set)]
	return p.add(bc, l)
}

// startPollers starts the pollers, one a processor up to 8.
func startPollers() {
	for range min(runtime.GOMAXPROCS(0), 8) {
		p, err := newPoller()
		if err != nil {
			break
		}
		pollers.set = append(pollers.set, p)
		go p.run()
	}
}

func newPoller() (*poller, error) {
	epfd, f, rc, err := pollfd.Epoll("fazt-bench-poller")
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, wait: rc, conns: make(map[int32]*polled), file: f}
	p.waitFn = p.poll
	p.ring, _ = uring.New(pollBatch) // nil where there is none
	p.hasRing.Store(p.ring != nil)
	return p, nil
}

// poll is the body of wait.Read: the sockets with data, or a wait for
// some (false).
func (p *poller) poll(fd uintptr) bool {
	n, err := unix.EpollWait(int(fd), p.events[:], 0)
	for err == unix.EINTR {
		n, err = unix.EpollWait(int(fd), p.events[:], 0)
	}
	switch {
	case err != nil:
		p.err = os.NewSyscallError("epoll_wait", err)
		return true
	case n == 0:
		p.busy = 0
		return false
	}
	p.ready = n
	return true
}

func (p *poller) run() {
	for {
		p.ready = 0
		err := p.wait.Read(p.waitFn)
		if err == nil {
			err = p.err
		}
		if err != nil {
			p.mu.Lock()
			p.broken = true
			left := make([]*polled, 0, len(p.conns))
			for _, pc := range p.conns {
				left = append(left, pc)
			}
			p.mu.Unlock()
			for _, pc := range left {
				p.remove(pc, fmt.Errorf("poller: %w", err))
			}
			return
		}
		p.mu.Lock()
		for i, ev := range p.events[:p.ready] {
			p.batch[i] = p.conns[ev.Fd] // nil for a socket not yet added
		}
		p.mu.Unlock()
		p.readAll(p.batch[:p.ready])
		clear(p.batch[:p.ready])
		if p.busy += p.ready; p.busy >= len(p.events) {
			p.yield()
		}
	}
}

// readAll reads each socket of the batch once and handles its whole
// frames; an error ends the connection. Through the poller's ring, the
// reads are one system call, which saves about a microsecond a read on
// the machines of BENCHMARKS.md, where the tool otherwise spent as long
// reading a round of 1000 deliveries as the server writing it; without a
// ring, or for a socket read for its receive times (--arrival), a read
// each.
func (p *poller) readAll(batch []*polled) {
	ops := p.ops[:0]
	plain := p.plain()
	for i, pc := range batch {
		if pc == nil {
			continue
		}
		if plain || pc.stamp {
			if err := pc.readable(); err != nil {
				p.remove(pc, err)
			}
			batch[i] = nil
			continue
		}
		if err := pc.check(); err != nil {
			p.remove(pc, err)
			batch[i] = nil
			continue
		}
		ops = append(ops, uring.Op{FD: int32(pc.fd), Buf: pc.buf[pc.n:], Recv: true})
	}
	if len(ops) == 0 {
		return
	}
	if err := p.ring.Run(ops); err != nil {
		// Never seen: the reads that the ring did not complete end their
		// connections with its error (their buffers, which it might still
		// fill, it keeps from the collector), but for those it never
		// submitted after trying for a while (EAGAIN), which epoll
		// reports again; the poller reads with read(2) from here on.
		p.hasRing.Store(false)
		p.ring.Close()
		p.ring = nil
	}
	j := 0
	for _, pc := range batch {
		if pc == nil {
			continue
		}
		op := &ops[j]
		j++
		var err error
		switch op.Err {
		case 0:
		case unix.EINTR:
			err = unix.EAGAIN // epoll says so again
		default:
			err = op.Err
		}
		if err := pc.got(op.N, err, "recv"); err != nil {
			p.remove(pc, err)
		}
		op.Buf = nil
	}
	p.ops = ops[:0]
}

// yield lets the goroutines waiting on the network run, when the poller
// has handled a batch's worth of events without finding its sockets
// quiet. Go polls the network only when nothing else is runnable (and
// its monitor every 10 ms), so on one processor a poller that never
// parked held back the answers to the tool's publishes: in unthrottled
// fan-outs their p99 went from 10.6 to 17.2 ms and the deliveries fell
// by a tenth, and with runtime.Gosched, which does not poll, the p99 was
// still 17.2 ms against 10.9 (BENCHMARKS.md, stop 27). So it waits for
// a poll of the network, as the server's flushers do in a long round,
// but for as long as that takes: bounded at a flusher's 100 us, the
// publishers were starved again (their p99 20.2 against 12.4 ms, and
// 1,990,713 deliveries/s against 2,244,119, three runs each).
func (p *poller) yield() {
	p.busy = 0
	netyield.Yield(0)
}

// add takes bc's socket over from its net.Conn; false if it cannot, with
// the connection as it was.
func (p *poller) add(bc *benchConn, l *deliveryLatency) bool {
	ws := bc.ws
	tc, ok := ws.conn.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }) != nil || err != nil {
		return false
	}
	// Watched before the net.Conn is closed, so that a refusal leaves the
	// connection as it was. Until the poller knows the descriptor it
	// skips its events, which epoll repeats (level-triggered): it may
	// spin on them for a batch or two, while the frames that came with
	// the subscription are handled below.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	p.mu.Lock()
	if p.broken {
		err = errors.New("poller ended")
	} else {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	p.mu.Unlock()
	if err != nil {
		unix.Close(fd)
		return false
	}
	pc := &polled{bc: bc, l: l, fd: fd, size: ws.br.Size()}
	if ws.stamp != nil {
		pc.stamp, pc.at = true, ws.stamp.arrival()
	}
	// What the buffered reader holds past the last message it handed out.
	ws.br.Discard(ws.skip)
	held, _ := ws.br.Peek(ws.br.Buffered())
	pc.buf = make([]byte, max(pc.size, len(held)))
	pc.n = copy(pc.buf, held)
	ws.wmu.Lock()
	ws.raw = pc
	ws.conn.Close()
	ws.br, ws.stamp, ws.skip = nil, nil, 0
	ws.wmu.Unlock()
	// Frames that came with the subscription are handled here, before the
	// poller knows the socket.
	if err := pc.frames(); err != nil {
		p.remove(pc, err)
		return true
	}
	p.mu.Lock()
	p.conns[int32(fd)] = pc
	p.mu.Unlock()
	return true
}

// remove ends a connection: the poller forgets it and closes its socket.
func (p *poller) remove(pc *polled, err error) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
	p.mu.Lock()
	delete(p.conns, int32(pc.fd))
	p.mu.Unlock()
	pc.close()
	pc.bc.end(err)
}

// check is why the connection is not to be read any more, if it is not.
func (pc *polled) check() error {
	if pc.bc.closing.Load() {
		return errClosing // what is still coming is not the run's
	}
	if pc.failed.Load() {
		return pc.writeErr()
	}
	return nil
}

// readable reads what the socket holds, once, and handles each whole
// frame; an error ends the connection.
func (pc *polled) readable() error {
	if err := pc.check(); err != nil {
		return err
	}
	if pc.stamp {
		n, at, err := recvStamped(pc.fd, pc.buf[pc.n:], pc.oob[:])
		if n > 0 {
			pc.at = at
		}
		return pc.got(n, err, "recvmsg")
	}
	n, err := unix.Read(pc.fd, pc.buf[pc.n:])
	for err == unix.EINTR {
		n, err = unix.Read(pc.fd, pc.buf[pc.n:])
	}
	return pc.got(n, err, "read")
}

// got takes the result of a read (by the system call named call) and
// handles each whole frame; an error ends the connection.
func (pc *polled) got(n int, err error, call string) error {
	switch {
	case err == unix.EAGAIN:
		return nil // not ready after all
	case err != nil:
		return os.NewSyscallError(call, err)
	case n == 0:
		return io.EOF
	}
	pc.n += n
	return pc.frames()
}

// frames handles every whole frame at the start of buf and keeps the rest;
// the buffer grows to hold a frame larger than it.
func (pc *polled) frames() error {
	ws := pc.bc.ws
	off := 0
	for {
		fin, op, hl, n, err := frameHeader(pc.buf[off:pc.n])
		if err != nil {
			return err
		}
		if n < 0 || off+hl+n > pc.n {
			if hl+max(n, 0) > len(pc.buf) {
				grown := make([]byte, hl+max(n, 0))
				pc.n = copy(grown, pc.buf[off:pc.n])
				pc.buf = grown
				return nil
			}
			break
		}
		msg, done, err := ws.frame(fin, op, pc.buf[off+hl:off+hl+n])
		if err != nil {
			return err
		}
		if done {
			at := int64(-1)
			if pc.stamp {
				at = pc.at
			}
			pc.bc.handle(msg, pc.l, at)
		}
		off += hl + n
	}
	if len(pc.buf) > pc.size && pc.n-off <= pc.size { // the large frame is handled
		pc.buf = append(make([]byte, 0, pc.size), pc.buf[off:pc.n]...)[:pc.size]
		pc.n -= off
		return nil
	}
	pc.n = copy(pc.buf, pc.buf[off:pc.n])
	return nil
}

// write sends b on the socket (the caller holds ws.wmu). It does not
// wait for room: the poller writes the pongs, and a wait there would
// hold back every socket it reads. The tool sends next to nothing, so a
// full buffer is an error.
func (pc *polled) write(b []byte) error {
	if pc.failed.Load() {
		return pc.werr
	}
	for len(b) > 0 {
		if pc.fd < 0 {
			return net.ErrClosed
		}
		n, err := unix.SendmsgN(pc.fd, b, nil, nil, unix.MSG_NOSIGNAL)
		switch {
		case err == unix.EINTR:
		case err != nil:
			if err == unix.EAGAIN {
				err = errors.New("write: the socket's send buffer is full")
			} else {
				err = os.NewSyscallError("sendmsg", err)
			}
			// What went out may end mid-frame: the connection ends here,
			// with this error, which its poller records.
			pc.werr = err
			pc.failed.Store(true)
			unix.Shutdown(pc.fd, unix.SHUT_RDWR)
			return err
		default:
			b = b[n:]
		}
	}
	return nil
}

// writeErr is why a write ended the connection.
func (pc *polled) writeErr() error {
	ws := pc.bc.ws
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	return pc.werr
}

// shutdown ends the socket both ways (the caller holds ws.wmu), which
// wakes its poller; that one, seeing the connection closing, closes it.
func (pc *polled) shutdown() {
	if pc.fd >= 0 {
		unix.Shutdown(pc.fd, unix.SHUT_RDWR)
	}
}

// close closes the socket, once no write can be using it.
func (pc *polled) close() {
	ws := pc.bc.ws
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if pc.fd >= 0 {
		unix.Close(pc.fd)
		pc.fd = -1
	}
}
