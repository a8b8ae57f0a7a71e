package netyield

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fazt-realtime/fazt/internal/pollfd"
)

// Yield lets the goroutines waiting for the network run before the
// caller goes on.
//
// A flusher's round can keep a server of one processor busy for
// milliseconds. runtime.Gosched puts the caller on the global run queue,
// and the scheduler looks there before it polls the network: the log's
// writer or a fan-out gets to run at a yield, but not a goroutine waiting
// for a socket, until the round ends or the runtime's monitor polls (every
// 10 ms): a publish that came in during a round waited for its end.
//
// So Yield makes an eventfd of its own readable, then waits for it
// through the netpoller, which can only see it by polling: the caller
// becomes runnable again in the same poll as the sockets that became
// readable meanwhile, and takes its turn with their goroutines. It
// costs two system calls beside the poll, so a caller yields only now
// and then (a flusher every millisecond of a round, on a process of one
// processor) and uses runtime.Gosched between. Where an eventfd cannot
// be had, it is runtime.Gosched.
//
// A busy process polls only when it runs out of runnable goroutines (or
// every 10 ms): with wait above 0 the caller comes back after wait if no
// poll came, and, its timer making it the next to run, the goroutines
// that were runnable get about wait, where Gosched would have let each
// of them run first. With 0 it waits for the poll however long.
func Yield(wait time.Duration) {
	y := yielders.get()
	if y == nil {
		runtime.Gosched()
		return
	}
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	err := y.file.SetReadDeadline(deadline)
	if err == nil {
		err = y.rc.Read(y.fn)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !y.broken {
		timeouts.Add(1)
		_, rerr := unix.Read(y.fd, y.buf[:]) // the count, if it is there
		y.armed = false
		if rerr == nil || rerr == unix.EAGAIN {
			err = nil
		}
	}
	if err != nil || y.broken {
		// Not expected of an eventfd: yield as Gosched does, now and
		// from now on (drop closes the pool).
		yielders.drop(y)
		runtime.Gosched()
		return
	}
	yielders.put(y)
}

// timeouts counts the calls of Yield that ended at their deadline, for
// the tests.
var timeouts atomic.Int64

// yielder is an eventfd that Yield waits on, used by one caller at a
// time.
type yielder struct {
	fd     int
	file   *os.File
	rc     syscall.RawConn
	fn     func(fd uintptr) bool // step, bound once
	armed  bool                  // step wrote to the eventfd
	broken bool                  // a write or read failed
	buf    [8]byte
}

// step is the body of rc.Read: the first call makes the eventfd readable
// and reports not done, so that the caller waits for the netpoller to say
// so; the next reads the count back and reports done.
func (y *yielder) step(fd uintptr) bool {
	if !y.armed {
		binary.NativeEndian.PutUint64(y.buf[:], 1) // add 1 to the count
		if _, err := unix.Write(int(fd), y.buf[:]); err != nil {
			y.broken = true
			return true
		}
		y.armed = true
		return false
	}
	_, err := unix.Read(int(fd), y.buf[:])
	if err == unix.EAGAIN {
		return false // woken before the count was there: wait again
	}
	y.armed = false
	y.broken = err != nil
	return true
}

// yielderPool keeps the eventfds that are not in use: one per caller that
// yields at the same time (a flusher each), made when first needed and
// kept for the life of the process, like the read poller.
type yielderPool struct {
	mu     sync.Mutex
	free   []*yielder
	failed bool // an eventfd could not be made, polled or used: Gosched from then on
}

var yielders yielderPool

func (p *yielderPool) get() *yielder {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		y := p.free[n-1]
		p.free = p.free[:n-1]
		return y
	}
	if p.failed {
		return nil
	}
	y, err := newYielder()
	if err != nil {
		p.failed = true
		return nil
	}
	return y
}

func (p *yielderPool) put(y *yielder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		y.file.Close() // another failed meanwhile: the pool is closed
		return
	}
	p.free = append(p.free, y)
}

// drop closes y, which failed, and the pool's other eventfds: Yield
// is Gosched from then on.
func (p *yielderPool) drop(y *yielder) {
	y.file.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = true
	for _, f := range p.free {
		f.file.Close()
	}
	p.free = nil
}

func newYielder() (*yielder, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f, rc, err := pollfd.Pollable(fd, "fazt-net-yield")
	if err != nil {
		return nil, err
	}
	y := &yielder{fd: fd, file: f, rc: rc}
	y.fn = y.step
	return y, nil
}
