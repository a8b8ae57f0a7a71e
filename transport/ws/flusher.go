package ws

import (
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/netyield"
	"github.com/fazt-realtime/fazt/internal/uring"
)

// A flusher writes queued frames for many connections from one goroutine.
//
// The kernel's cost of a socket write is per call, not per byte, so what
// sets a fan-out's throughput is how many frames each write carries.
// A flusher visits the connections that have something queued in turn and
// writes each one's frames in a single call; while it goes round, frames
// for the connections it has already visited pile up, so the busier the
// server, the more frames each write carries. One goroutine serving many
// connections also saves a goroutine wake-up per connection per batch.
//
// The flusher never blocks on a socket: it writes what the kernel takes at
// once (the socket is non-blocking), and a connection whose send buffer is
// full gets its own goroutine (conn.write) for the rest, with a deadline,
// until its queue is empty again. Closing connections are handed over the
// same way. The flusher's goroutine runs only while connections are
// waiting, so an idle server has none.
type flusher struct {
	delay    time.Duration // at most one round per delay (Config.WriteDelay)
	maxDelay time.Duration // ... or per up to this long under load (Config.MaxWriteDelay)
	// wake cuts a delay short: a connection is urgent (a reply, a pong or
	// a close is waiting). Only broadcasts are worth holding back to share
	// writes; a client waiting for an answer should not wait for a round.
	// The urgent connections are written at once, and the others' frames
	// keep waiting, so that clients that publish, and get a reply each
	// time, do not end the delay for everyone.
	wake chan struct{}

	mu      sync.Mutex
	ready   []*conn // connections waiting for a write, each at most once
	running bool    // the goroutine is running (under mu)

	// Owned by the running goroutine.
	timer   *time.Timer // the delay's
	batch   []*conn
	urgent  []*conn
	buf     []byte
	last    time.Time     // start of the previous round
	took    time.Duration // how long the previous round took
	writes  int           // writes of broadcasts in the current round (the previous, between rounds)
	repeats int           // of those, to connections written for by a round that started lately (load)
	busy    float64       // the share of its time the flusher spent in rounds lately (load)
	repeat  float64       // the share of its writes lately that were repeats (load)
	wbuf    []byte        // arguments and results of rawWrite
	wn      int
	werr    error
	writeFn func(fd uintptr)
	pend    []pending   // the connections laid out in buf, to write together
	ops     []uring.Op  // their sends through ring
	ring    *uring.Ring // the turn's ring; nil: one send(2) each
	plain   bool        // never a ring (Config.PlainWrites)
	yields  int         // how often writeAll let other goroutines run (for tests)
	log     *slog.Logger
}

// pending is a connection whose write the flusher has laid out in its
// buffer, to make with the others of its batch.
type pending struct {
	c          *conn
	start, end int      // its bytes in the flusher's buffer
	frames     [][]byte // the queue they came from, for reuse
	n          int      // bytes the socket took
	err        error
}

const (
	// yieldEvery is how many connections a flusher writes between yields,
	// and at most in one batch: one system call where io_uring serves.
	yieldEvery = 64
	// batchBytes: a batch is written once its connections' frames come to
	// this much, however few they are.
	batchBytes = 1 << 20
	// netYieldEvery is how much of a round a flusher runs between calls
	// to netyield.Yield, on a process of one processor.
	netYieldEvery = time.Millisecond

	// netYieldWait is the longest a flusher's yield waits for the process
	// to poll. Unbounded, the wait held a saturated server's rounds back:
	// `fazt bench channels` (95% of the core) went from a p99 of 19 to 20
	// ms to one of 35 to 97 ms. At 100 us it was 18 to 21 ms, and the p99
	// at 200,000 deliveries/s kept its gain (BENCHMARKS.md, stop 22).
	netYieldWait = 100 * time.Microsecond
	// bulkFrames queued for one connection are a backlog (a replay, a
	// client that fell behind) for its own writer rather than the round.
	bulkFrames = 256
	// keepQueue is the most frame slots a connection keeps for reuse once
	// its queue is written: a replay or a backlog grows the queue to
	// thousands, which an idle connection should not hold on to.
	keepQueue = 64

	// A flusher that spends more than busyLow of its time in rounds holds
	// broadcasts back longer than the write delay, up to the most it may
	// (Config.MaxWriteDelay) from busyHigh; its load is measured over
	// about loadWindow.
	busyLow, busyHigh = 0.2, 0.4
	loadWindow        = 100 * time.Millisecond
	// ... as far as its writes go to connections that it wrote for
	// lately, in step up to repeatFull of them. Lately is within half as
	// long again as the most it may hold: rounds that keep to that most,
	// start to start, run over it by a little.
	repeatFull = 0.5
)

// recycle returns a written queue for reuse, emptied, or nil when it is
// larger than a connection keeps.
func recycle(frames [][]byte) [][]byte {
	clear(frames)
	if cap(frames) > keepQueue {
		return nil
	}
	return frames[:0]
}

func newFlusher(delay, maxDelay time.Duration, plain bool, log *slog.Logger) *flusher {
	f := &flusher{delay: delay, maxDelay: max(delay, maxDelay), wake: make(chan struct{}, 1), plain: plain, log: log}
	f.writeFn = f.rawWrite // bound once, so a write allocates nothing
	return f
}

// add queues c for a write; the caller owns c's writer (c.writing).
func (f *flusher) add(c *conn) {
	f.mu.Lock()
	f.ready = append(f.ready, c)
	start := !f.running
	f.running = true
	f.mu.Unlock()
	if start {
		go f.run()
	}
	if c.urgent.Load() {
		f.hurry()
	}
}

// run goes round the waiting connections until none is left.
func (f *flusher) run() {
	if !f.plain {
		f.ring = takeRing(f.log) // returned by stopLocked
	}
	for {
		f.mu.Lock()
		if len(f.ready) == 0 {
			f.stopLocked()
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		if f.delay > 0 {
			for {
				wait := f.period() - time.Since(f.last)
				if wait <= 0 || !f.sleep(wait) {
					break
				}
				if !f.flushUrgent() {
					return
				}
			}
			f.beginRound(time.Now())
		}
		f.mu.Lock()
		f.batch, f.ready = f.ready, f.batch[:0]
		f.mu.Unlock()
		f.writeAll(f.batch)
		if f.delay > 0 {
			f.endRound(time.Now())
		}
	}
}

// writeAll writes conns in batches of up to yieldEvery connections (or
// batchBytes), and lets the process's other goroutines run after every
// yieldEvery connections: a round or a burst of urgent writes can take
// milliseconds. It sets conns' elements to nil.
func (f *flusher) writeAll(conns []*conn) {
	var polled time.Time
	oneP := false
	if len(conns) >= yieldEvery { // it will yield: the clock and the processors are worth reading
		polled = time.Now()
		oneP = runtime.GOMAXPROCS(0) == 1
	}
	for i, c := range conns {
		f.take(c)
		conns[i] = nil
		yield := i%yieldEvery == yieldEvery-1
		// What is laid out goes before a yield: its connections
		// should not wait through another goroutine's turn. (A batch
		// written early for its bytes can leave some laid out here.)
		if yield || f.full() || i == len(conns)-1 {
			f.writePending()
		}
		if yield {
			f.yields++
			// Let publishes, commits and the fan-out run meanwhile
			// rather than wait for the rest. Gosched lets those run
			// that are runnable; a publish still waiting for its
			// socket to be polled needs netyield.Yield. That is
			// measured on one processor only; with more, an idle one,
			// if any, polls while the flusher writes.
			if oneP && time.Since(polled) >= netYieldEvery {
				netyield.Yield(netYieldWait)
				polled = time.Now()
			} else {
				runtime.Gosched()
			}
		}
	}
}

// beginRound records that a round starts at now: the previous one
// weighs into the load, and the new one starts counting.
func (f *flusher) beginRound(now time.Time) {
	f.load(now)
	f.last = now
	f.writes, f.repeats = 0, 0
}

// endRound records that the round ends at now.
func (f *flusher) endRound(now time.Time) {
	f.took = now.Sub(f.last)
}

// load updates the flusher's load as a round starts at now: f.busy, the
// share of time it spent in its rounds lately (the previous round took
// f.took of the time since it started), and f.repeat, the share of its
// writes of broadcasts that went to a connection it had written
// broadcasts for in a round started lately (within 1.5 maxDelay before):
// connections that holding broadcasts for up to maxDelay would give two
// frames in one write. Each round weighs in by how long ago the previous
// one started, so that both cover about the last loadWindow however often
// rounds run; a round after a pause of loadWindow or more starts from a
// clean slate.
func (f *flusher) load(now time.Time) {
	since := now.Sub(f.last)
	if f.last.IsZero() || since <= 0 {
		return
	}
	w := min(1, float64(since)/float64(loadWindow))
	f.busy += w * (min(1, float64(f.took)/float64(since)) - f.busy)
	if f.writes > 0 {
		f.repeat += w * (float64(f.repeats)/float64(f.writes) - f.repeat)
	}
}

// period is how long the flusher keeps between the starts of two rounds:
// the write delay, unless the flusher is both busy and writing for the
// same connections again and again. The period grows in step with its
// load, from the write delay at busyLow of its time to the most it may
// hold broadcasts (maxDelay) at busyHigh and above; and in step with its
// repeats, from none of the growth when no write goes to a connection it
// wrote for lately to all of it from repeatFull of them. A round
// written at a busy moment carries more frames per write, which cuts the
// kernel's share of the work; but where each connection gets a broadcast
// now and then (many channels of few subscribers), waiting would not put
// two in one write, and the flusher does not wait for nothing.
func (f *flusher) period() time.Duration {
	busy := min(1, max(0, (f.busy-busyLow)/(busyHigh-busyLow)))
	shared := min(1, f.repeat/repeatFull)
	return f.delay + time.Duration(busy*shared*float64(f.maxDelay-f.delay))
}

// stopLocked ends the goroutine's turn: nothing is waiting. The next
// add starts another, which keeps to the period since f.last.
func (f *flusher) stopLocked() {
	if cap(f.buf) > 2*batchBytes {
		f.buf = nil // a huge buffer is left to the collector
	}
	if f.ring != nil {
		putRing(f.ring)
		f.ring = nil
	}
	f.running = false // the next goroutine owns the fields from here
}

// sleep waits for d, or less if hurry is called meanwhile; it reports
// whether hurry ended it.
func (f *flusher) sleep(d time.Duration) bool {
	select {
	case <-f.wake:
		return true // hurried already: no timer to set
	default:
	}
	if f.timer == nil {
		f.timer = time.NewTimer(d)
	} else {
		f.timer.Reset(d)
	}
	select {
	case <-f.timer.C:
		return false
	case <-f.wake:
		f.timer.Stop()
		return true
	}
}

// flushUrgent writes the waiting connections that are urgent, in the
// order they came, and leaves the others waiting for the round. When none
// is left waiting, it ends the goroutine's turn and reports false.
func (f *flusher) flushUrgent() bool {
	f.mu.Lock()
	rest := f.ready[:0]
	for _, c := range f.ready {
		if c.urgent.Load() {
			f.urgent = append(f.urgent, c)
		} else {
			rest = append(rest, c)
		}
	}
	clear(f.ready[len(rest):])
	f.ready = rest
	f.mu.Unlock()
	f.writeAll(f.urgent)
	f.urgent = f.urgent[:0]
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ready) == 0 {
		f.stopLocked()
		return false
	}
	return true
}

// hurry ends the current wait for the delay early, to write the urgent
// connections. A call while no wait is on makes the next one end at once:
// one wake-up too many, never one missed.
func (f *flusher) hurry() {
	if f.delay > 0 {
		signal(f.wake)
	}
}

// take lays out what c has queued in the flusher's buffer, for
// writePending to write in one call with the rest of the batch. It owns
// c's writer, and hands a closing connection, or one with a backlog, to
// its own writer instead.
func (f *flusher) take(c *conn) {
	c.mu.Lock()
	if c.closing || len(c.queue) >= bulkFrames || c.queued > c.srv.cfg.writeChunk {
		// Closing, or a backlog such as a replay page: the connection's
		// own writer sends it, waiting on the socket as it must, without
		// holding up the round.
		c.mu.Unlock()
		go c.write(nil)
		return
	}
	frames, pong, ping, prefix := c.takeLocked(), c.pong, c.pingDue, c.hc.handshake
	c.pong, c.pingDue, c.hc.handshake = nil, false, nil
	urgent := c.urgent.Swap(false)
	c.mu.Unlock()

	start := len(f.buf)
	buf := append(f.buf, prefix...)
	if pong != nil {
		buf = appendFrameHeader(buf, opPong, len(pong))
		buf = append(buf, pong...)
	}
	if ping {
		buf = appendFrameHeader(buf, opPing, 0)
	}
	for _, fr := range frames {
		buf = appendFrameHeader(buf, opText, len(fr))
		buf = append(buf, fr...)
	}
	f.buf = buf
	if n := len(frames); len(buf) > start {
		c.srv.metrics.frames.Add(float64(n))
		if n > 0 && !urgent && !f.last.IsZero() {
			// Broadcasts only: replies are never held.
			round := f.last.UnixNano()
			f.writes++
			if c.lastRound != 0 && round-c.lastRound <= int64(f.maxDelay)*3/2 {
				f.repeats++
			}
			c.lastRound = round
		}
		c.srv.metrics.writes.Inc()
	}
	f.pend = append(f.pend, pending{c: c, start: start, end: len(buf), frames: frames})
}

// full reports whether the batch that take lays out is due to be
// written: as many connections as one call takes, or batchBytes.
func (f *flusher) full() bool {
	return len(f.pend) == yieldEvery || len(f.buf) >= batchBytes
}

// writePending writes the connections that take laid out, each its part
// of the buffer, and hands each one's writer on (finish). Through the
// turn's ring, the batch is one system call; without one, a send(2)
// each.
//
// The descriptors stay the connections' own throughout: a socket is
// closed or half-closed only by the owner of its connection's writes
// (closeSocket), which is this flusher until finish hands it on; after a
// half-close, when no write can come, its reader closes it (conn.finish).
func (f *flusher) writePending() {
	if len(f.pend) == 0 {
		return
	}
	m := f.pend[0].c.srv.metrics
	drop := false
	if f.ring != nil {
		drop = f.sendRing(m)
	} else {
		for i := range f.pend {
			p := &f.pend[i]
			if p.end == p.start {
				continue
			}
			m.sendCalls.Inc()
			f.wbuf = f.buf[p.start:p.end]
			// Control, not Write: it takes nothing but a reference to
			// the descriptor. RawConn.Write would also take the
			// descriptor's write lock and ready the poller for a wait
			// that this write never makes: together 1.3% of the core at
			// 200,000 deliveries/s. c.writing keeps the connection's own
			// writers apart, and gorilla writes nothing to the socket
			// (heldConn).
			if p.err = p.c.rc.Control(f.writeFn); p.err == nil {
				p.n, p.err = f.wn, f.werr
			}
			f.wbuf = nil
		}
	}
	for i := range f.pend {
		f.finish(&f.pend[i])
		f.pend[i] = pending{}
	}
	f.pend = f.pend[:0]
	if drop {
		f.buf = nil
	} else {
		f.buf = f.buf[:0]
	}
}

// sendRing makes the batch's writes through the ring. It reports whether
// the ring failed, leaving the buffer to be dropped.
func (f *flusher) sendRing(m *metrics) (failed bool) {
	ops := f.ops[:0]
	for _, p := range f.pend {
		if p.end > p.start {
			ops = append(ops, uring.Op{FD: p.c.fd, Buf: f.buf[p.start:p.end]})
		}
	}
	if len(ops) == 0 {
		f.ops = ops
		return false
	}
	calls := f.ring.Calls()
	err := f.ring.Run(ops)
	m.sendCalls.Add(float64(f.ring.Calls() - calls))
	j := 0
	for i := range f.pend {
		p := &f.pend[i]
		if p.end == p.start {
			continue
		}
		switch op := ops[j]; op.Err {
		case 0:
			p.n = op.N
		case syscall.EAGAIN, syscall.EINTR:
			// Full (or, never seen, interrupted): the rest goes out from
			// the connection's own writer.
		default:
			p.err = op.Err
		}
		ops[j].Buf = nil
		j++
	}
	f.ops = ops[:0]
	if err != nil {
		// The ring failed (never seen). The connections whose writes it
		// did not complete end as failed writes, not written twice, but
		// for those it never submitted after trying for a while (EAGAIN),
		// which go to their own writers; the flushers write with send(2)
		// from here on, and this buffer, which the kernel might still
		// read (the ring keeps it from the collector), is not used again.
		ringFailed(f.ring, err, f.log)
		f.ring = nil
		return true
	}
	return false
}

// finish hands on the writer of p's connection once its write is made:
// back to its own queue if more came meanwhile, to a goroutine if the
// socket did not take everything or c is closing, or releases it.
func (f *flusher) finish(p *pending) {
	c := p.c
	c.mu.Lock()
	c.spare = recycle(p.frames)
	if p.err != nil {
		c.mu.Unlock()
		c.writeFailed(p.err)
		return
	}
	if written := p.start + p.n; written < p.end {
		c.mu.Unlock()
		// The socket is full: the rest goes out from c's own goroutine,
		// which may wait for it.
		c.srv.metrics.waits.Inc()
		bp := bufs.Get().(*[]byte)
		*bp = append((*bp)[:0], f.buf[written:p.end]...)
		go c.write(bp)
		return
	}
	more := len(c.queue) > 0 || c.pong != nil || c.pingDue || c.closing
	if !more {
		c.writing = false
	}
	c.wakeDrainedLocked()
	c.mu.Unlock()
	if more {
		f.mu.Lock()
		f.ready = append(f.ready, c)
		f.mu.Unlock()
	}
}

// lostReason names why a write failed: a timeout is a slow consumer,
// anything else a lost connection.
func lostReason(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return domain.ReasonSlowConsumer
	}
	return domain.ReasonConnectionLost
}
