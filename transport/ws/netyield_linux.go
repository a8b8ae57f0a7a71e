package ws

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
)

// netYield lets the goroutines waiting for the network run before the
// caller goes on, where runtime.Gosched would not.
//
// A flusher's round can keep a server of one processor busy for
// milliseconds. runtime.Gosched puts the caller on the global run queue,
// and the scheduler looks there before it polls the network: the log's
// writer or a fan-out gets to run at a yield, but not a goroutine waiting
// for a socket, until the round ends or the runtime's monitor polls (every
// 10 ms): a publish that came in during a round waited for its end.
//
// So netYield makes an eventfd of its own readable, then waits for it
// through the netpoller, which can only see it by polling: the caller
// becomes runnable again in the same poll as the sockets that became
// readable meanwhile, and takes its turn with their goroutines. It
// costs two system calls beside the poll, so a flusher calls it only
// every netYieldEvery of a round, on a process of one processor, and
// runtime.Gosched between. Where an eventfd cannot be had, it is
// runtime.Gosched.
func netYield() {
	y := yielders.get()
	if y == nil {
		runtime.Gosched()
		return
	}
	// A busy process polls only when it runs out of runnable goroutines
	// (or every 10 ms): the deadline brings the caller back after
	// netYieldWait if no poll came. The timer makes it the next to run,
	// so the goroutines that were runnable get about netYieldWait, where
	// Gosched would have let each of them run first.
	err := y.file.SetReadDeadline(time.Now().Add(netYieldWait))
	if err == nil {
		err = y.rc.Read(y.fn)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !y.broken {
		netYieldTimeouts.Add(1)
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

// netYieldWait is the longest netYield waits for the process to poll.
// Unbounded, the wait held a saturated server's rounds back: `fazt bench
// channels` (95% of the core) went from a p99 of 19 to 20 ms to one of
// 35 to 97 ms. At 100 us it was 18 to 21 ms, and the p99 at 200,000
// deliveries/s kept its gain (BENCHMARKS.md, stop 22).
const netYieldWait = 100 * time.Microsecond

// netYieldTimeouts counts the calls of netYield that ended at their
// deadline, for the tests.
var netYieldTimeouts atomic.Int64

// yielder is an eventfd that netYield waits on, used by one caller at a
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

// drop closes y, which failed, and the pool's other eventfds: netYield
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
	f := os.NewFile(uintptr(fd), "fazt-net-yield")
	// The netpoller takes a non-blocking file if deadlines can be set on
	// it; without the netpoller the wait would block a thread.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	y := &yielder{fd: fd, file: f, rc: rc}
	y.fn = y.step
	return y, nil
}
