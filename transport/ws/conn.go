package ws

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/smallmap"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// conn is one client connection: a reader that runs its commands, and a
// bounded queue of frames that its flusher (shared with other connections)
// writes, one socket write for everything queued. When the socket does not
// take a write at once, or the connection is closing, the connection gets
// a writer goroutine of its own (write) until its queue is empty. The
// reader runs only while the client has sent something: with nothing
// buffered it parks the connection in the poller and returns. An idle
// connection holds no goroutine; the heartbeat is a timer.
// It is the connection's projections.Sink.
type conn struct {
	srv *Server
	ws  *websocket.Conn
	br  *bufio.Reader // ws's read buffer; nil when unknown (no parking)
	raw net.Conn
	rc  syscall.RawConn // nil when raw has no file descriptor
	// fd is raw's descriptor, when rc is set: written to only until
	// closeSocket, which only the owner of the writes calls (the socket
	// is closed then, or by finish after the linger).
	fd int32
	fl *flusher
	// lastRound is when the round that last wrote for c started (unix
	// nanoseconds); owned by fl's running goroutine.
	lastRound int64
	app       *apps.App
	client    domain.Client
	ctx       context.Context
	cancel    context.CancelFunc

	mu        sync.Mutex
	queue     [][]byte
	queued    int // the bytes of queue's frames
	spare     [][]byte
	hc        *heldConn // its handshake, until written, goes before any frame
	pong      []byte    // payload of a WebSocket pong to send
	closing   bool
	flush     bool   // on close, write what is queued first
	closeCode int    // WebSocket close code
	closeText string // disconnect reason sent to the client
	reason    string // ClientDisconnected reason
	echoClose bool   // the client closed; answer with a plain close frame
	// pingDue: the heartbeat's WebSocket ping goes out with the next
	// write, ahead of the frames queued (beat).
	pingDue bool

	writing    bool          // the flusher or a writer goroutine owns the writes (under mu)
	done       bool          // the socket is closed or half-closed; no writer starts again (under mu)
	writerDone chan struct{} // closed when the last writer has closed or half-closed the socket
	ended      sync.Once     // endSession
	// requests counts the client's request running, if any, or the end
	// of a subscription whose token expired (startRequest): added under
	// mu while the connection is not closing, so none is added once
	// endSession may wait for it.
	requests sync.WaitGroup
	deadline time.Time // the socket's write deadline as writeBuf set it; owned by the running writer

	// drained, when not nil, is closed by the next write, or by the
	// close: the replays waiting for room in the queue (sendPage) wait on
	// it, and each looks at the room again. The first of them makes it,
	// so that a write with none waiting only looks (under mu).
	drained chan struct{}
	// urgent: something is queued that must not wait for a write delay (a
	// reply, a pong, a close). The flusher writes an urgent connection at
	// once, on its own, and clears the flag when it takes the queue; a
	// closing connection stays urgent.
	urgent  atomic.Bool
	inbound atomic.Int64 // unix nanos of the last inbound frame
	// inRequest says the reader is in a request, and reqEnd is when it
	// last ended one (unix nanos): the frames after a request wait unread
	// until it ends, a client's answer to a ping among them (beat).
	inRequest atomic.Bool
	reqEnd    atomic.Int64
	// closingNow is closing, for the reader, which looks at it for each
	// frame without taking mu.
	closingNow atomic.Bool
	pingSent   atomic.Int64 // unix nanos of an unanswered ping; 0 for none
	heartbeat  *time.Timer

	limiter  *rate.Limiter  // inbound frames
	pl       *readPoller    // nil: the reader never parks
	poll     pollState      // under pl.mu
	handling sync.WaitGroup // the request the reader waits for

	// The app as the requests see it (settings), and when it was looked
	// up; owned by whichever goroutine runs the request.
	current   *apps.App
	currentAt time.Time

	// reqMu runs the client's requests, and the ends of private
	// subscriptions whose tokens expire, one at a time.
	reqMu sync.Mutex
	// gate is held through a request's append (record, under reqMu), and
	// through a kick's (Fence); kicked, under gate, is the sequence
	// number of the client's kick once committed, after which the
	// connection records no more requests.
	gate   sync.Mutex
	kicked uint64

	smu sync.Mutex
	// expiries holds the timers that end private subscriptions when
	// their tokens expire, by channel; nil until there is one.
	expiries map[string]*expiry
	subs     smallmap.Map[string, context.CancelFunc] // by channel; a value is nil unless a replay, or the sending of what a subscribe's going live handed back, was started (it stays after they end)
	replays  sync.WaitGroup
}

var _ projections.Sink = (*conn)(nil)

func newConn(s *Server, ws *websocket.Conn, raw net.Conn, br *bufio.Reader, app *apps.App, client domain.Client) *conn {
	c := &conn{
		srv: s, ws: ws, br: br, raw: raw, app: app, client: client, current: app,
		writerDone: make(chan struct{}),
	}
	c.fd, c.poll.fd = -1, -1
	c.ctx, c.cancel = context.WithCancel(s.baseCtx)
	if sc, ok := c.raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.fl = s.nextFlusher()
			rc.Control(func(fd uintptr) { c.fd = int32(fd) })
			if br != nil {
				c.poll.fd = c.fd
				c.pl = s.poller()
			}
		}
	}
	if tcp, ok := c.raw.(*net.TCPConn); ok && s.cfg.SocketSendBuffer > 0 {
		tcp.SetWriteBuffer(s.cfg.SocketSendBuffer)
	}
	c.inbound.Store(time.Now().UnixNano())
	// Armed only once assigned, so that beat always sees the timer.
	c.heartbeat = time.AfterFunc(time.Duration(math.MaxInt64), c.beat)
	c.heartbeat.Reset(s.cfg.Heartbeat)
	return c
}

// beat is the heartbeat: every Heartbeat it queues a ping, and PongTimeout
// later it ends the connection unless a frame came in since. Before the
// ping it looks the app up, and ends the connection of an app that is no
// more (appGone).
func (c *conn) beat() {
	hb, timeout := c.srv.cfg.Heartbeat, c.srv.cfg.PongTimeout
	if sent := c.pingSent.Load(); sent != 0 {
		if c.inbound.Load() < sent {
			if c.closingNow.Load() {
				return
			}
			// The reader may have been in a request (a hook, a commit
			// that took long) since the ping went out, the answer
			// behind it, unread: the client is given the pong timeout
			// from the request's end, and a request up to a heartbeat
			// from the ping.
			now := time.Now().UnixNano()
			if c.inRequest.Load() && now-sent < int64(hb) {
				c.heartbeat.Reset(min(timeout, time.Duration(sent+int64(hb)-now)))
				return
			}
			if end := c.reqEnd.Load(); end > sent && now < end+int64(timeout) {
				c.heartbeat.Reset(time.Duration(end + int64(timeout) - now))
				return
			}
			c.disconnect(domain.ReasonHeartbeatTimeout, 4002, fmt.Sprintf("no frame within %s of a ping", timeout), false)
			return
		}
		c.pingSent.Store(0)
		c.heartbeat.Reset(hb - timeout)
		return
	}
	if _, err := c.srv.apps.Lookup(c.app.Name); c.appGone(err) {
		return
	}
	c.pingSent.Store(time.Now().UnixNano())
	// Two pings. The WebSocket ping goes ahead of what is queued, and a
	// browser answers it itself, as it reads the socket, however far
	// behind its handlers are (a long replay): its pong counts as the
	// answer. The JSON ping, after what is queued, is the one a client's
	// code sees (a browser shows it no WebSocket ping): fazt.js knows the
	// server is there by it.
	c.mu.Lock()
	c.pingDue = true
	c.mu.Unlock()
	if c.Send([]byte(`{"type":"ping"}`)) {
		c.heartbeat.Reset(timeout)
	}
}

// wakeLocked claims the writer unless it is busy or the writes have
// ended (done);
// it reports whether the caller must start it (c.startWriter()) once it
// has released c.mu.
func (c *conn) wakeLocked() bool {
	if c.writing || c.done {
		return false
	}
	c.writing = true
	return true
}

// startWriter hands the writes to the connection's flusher or, without
// one, to a writer goroutine. The caller has claimed them (wakeLocked).
func (c *conn) startWriter() {
	if c.fl != nil {
		c.fl.add(c)
		return
	}
	go c.write(nil)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// hold keeps what is queued for c unwritten until open: the connection
// is attached to the membership before its session is applied, and a
// broadcast to all the app's connections may meanwhile queue a frame for
// it, which must not reach the client before `connected`.
func (c *conn) hold() {
	c.mu.Lock()
	c.writing = true // claimed: no writer starts until open
	c.mu.Unlock()
}

// open puts first before whatever was queued while c was held, and starts
// writing. A connection closed meanwhile gets it too when its queue is
// still to be sent (a kick sends what was queued, then disconnect).
func (c *conn) open(first []byte) {
	c.mu.Lock()
	c.queue = append([][]byte{first}, c.queue...)
	c.queued += len(first)
	c.urgent.Store(true)
	c.mu.Unlock()
	c.startWriter()
	c.hurry()
}

// Send implements projections.Sink.
func (c *conn) Send(frame []byte) bool { return c.send(frame, false) }

// send queues frame; an urgent one marks c urgent in the same critical
// section, so that the flush that takes the frame also clears the mark.
func (c *conn) send(frame []byte, urgent bool) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	// The frame next to be written is not counted against the bytes: one
	// larger than the budget (a replayed message of a time when the app
	// allowed larger ones) goes into an empty queue, and must not close
	// the client at the next frame.
	if len(c.queue) >= c.srv.cfg.SendQueue || len(c.queue) > 0 && c.queued-len(c.queue[0])+len(frame) > c.queueBytes() {
		c.closeLocked(domain.ReasonSlowConsumer, 4001, "slow consumer: send queue full", false)
		start := c.wakeLocked()
		// A writer stuck in a write to this client would hold on until its
		// deadline; end that write now. The closing write that follows
		// sets a deadline of its own (write), so the disconnect frame goes
		// out if the socket still takes it. Moved under the lock, before
		// any writer can see that c is closing.
		c.raw.SetWriteDeadline(time.Now())
		c.mu.Unlock()
		if start {
			c.startWriter()
		}
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if urgent {
		c.urgent.Store(true)
	}
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	if urgent {
		c.hurry()
	}
	return true
}

// Kick implements projections.Sink.
func (c *conn) Kick(reason string) bool {
	text := "kicked"
	if reason != "" {
		text = "kicked: " + reason
	}
	return c.disconnect(domain.ReasonKicked, 4000, text, true)
}

// Fence implements projections.Sink: it waits for the request being
// recorded, if any, and holds back any other from its record until done.
func (c *conn) Fence() (done func(seq uint64), pending uint64, ok bool) {
	c.gate.Lock()
	if c.kicked != 0 || c.closingNow.Load() {
		pending = c.kicked
		c.gate.Unlock()
		return nil, pending, false
	}
	return func(seq uint64) {
		c.kicked = seq
		c.gate.Unlock()
	}, 0, true
}

// record appends f, a request's record (a subscribe or a publish). It
// appends nothing when the connection is closing (kicked by the request's
// own hook, say, or the client gone), and reports false: a closing
// connection takes no more requests, and answers none. Nor when a kick of
// its client is committed but not yet applied (the membership behind):
// the request is refused unavailable, so that the client is not left
// waiting for an answer until the kick closes its connection. Recorded,
// the request would follow the kick in the log: a message broadcast, or a
// join that a presence channel's members would see, after the client was
// kicked.
func (c *conn) record(ctx context.Context, f domain.Fact) ([]domain.Event, bool, error) {
	c.gate.Lock()
	defer c.gate.Unlock()
	if c.closingNow.Load() {
		return nil, false, nil
	}
	if c.kicked != 0 {
		return nil, false, domain.Errorf(domain.CodeUnavailable, "client %s is kicked (event %d); its connection closes once the kick is applied", c.client.ID, c.kicked)
	}
	evs, err := c.srv.store.Append(ctx, f)
	return evs, true, err
}

// Overflow implements projections.Sink.
func (c *conn) Overflow() {
	c.disconnect(domain.ReasonSlowConsumer, 4001, "slow consumer: too many messages during replay", false)
}

// reply queues the answer to a client's request (or the `connected`
// greeting), which goes out without waiting for a write delay. A client
// that lets replies pile up past its queue is a slow consumer like any
// other.
func (c *conn) reply(frame []byte) {
	c.send(frame, true)
}

// hurry wakes c's flusher to write c, which the caller marked urgent
// (under c.mu, with what it queued).
func (c *conn) hurry() {
	if c.fl != nil {
		c.fl.hurry()
	}
}

func (c *conn) replyError(id json.RawMessage, channel string, err error) {
	code := domain.CodeOf(err)
	msg := err.Error()
	switch code {
	case domain.CodeInvalidChannel:
		c.srv.metrics.refused("channel_name")
	case domain.CodeBadRequest:
		var deep *domain.DepthError
		if errors.As(err, &deep) {
			c.srv.metrics.refused("json_depth")
		}
	}
	if code == domain.CodeInternal {
		// A request cut short by its connection's end (a kick, a
		// shutdown) failed for no fault of the server's.
		if c.ctx.Err() == nil || !errors.Is(err, context.Canceled) {
			c.srv.log.Error("request failed", "app", c.app.Name, "client", c.client.ID, "err", err)
		}
		msg = "internal error"
	}
	c.reply(mustJSON(struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id,omitempty"`
		Channel string          `json:"channel,omitempty"`
		Error   string          `json:"error"`
		Code    domain.Code     `json:"code"`
	}{"error", id, channel, msg, code}))
}

// disconnect ends the connection: the writer sends {"type":"disconnect"}
// and a close frame with code, then half-closes the socket (closeSocket).
// With flush, what is already queued goes out first. Only the first call
// counts.
func (c *conn) disconnect(reason string, code int, text string, flush bool) (started bool) {
	c.mu.Lock()
	started = c.closeLocked(reason, code, text, flush)
	start := c.wakeLocked()
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return started
}

// closeLocked starts c's close, and reports whether it did: false when c
// was closing already.
func (c *conn) closeLocked(reason string, code int, text string, flush bool) bool {
	if c.closing {
		return false
	}
	c.closing, c.reason, c.closeCode, c.closeText, c.flush = true, reason, code, text, flush
	c.closingNow.Store(true)
	if !flush {
		c.queue, c.queued = nil, 0
	}
	// A replay waiting for room ends now, rather than when the socket's
	// end reaches the reader and cancels it.
	c.wakeDrainedLocked()
	// The writer may start after this, or may be waiting already: the
	// flag covers the first case (flusher.add), the wake-up the second.
	c.urgent.Store(true)
	c.hurry()
	return true
}

// queueBytes is the most bytes of frames c's queue may hold (see
// Config.SendQueueBytes).
func (c *conn) queueBytes() int {
	return max(c.srv.cfg.SendQueueBytes, 4*(c.app.Settings.Limits.MaxMessageBytes+frameSlack))
}

// frameSlack bounds what a message's frame adds to its data: the type,
// the channel (255 bytes at most), the offset, the time, the epoch.
const frameSlack = 1024

// sendPage queues replayed frames, waiting while the queue is more than half
// full (of frames, or of bytes) so that a long replay never overflows it
// and live frames keep room. A frame goes into an empty queue whatever its
// size.
func (c *conn) sendPage(ctx context.Context, frames [][]byte) error {
	for len(frames) > 0 {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return errors.New("connection closing")
		}
		// Checked under the lock: once an unsubscribe has cancelled the
		// replay, no page of it is queued behind `unsubscribed`.
		if err := ctx.Err(); err != nil {
			c.mu.Unlock()
			return err
		}
		room := min(max(1, c.srv.cfg.SendQueue/2)-len(c.queue), len(frames))
		n, size, half := 0, c.queued, c.queueBytes()/2
		for n < room && (size == 0 || size+len(frames[n]) <= half) {
			size += len(frames[n])
			n++
		}
		if n > 0 {
			c.queue = append(c.queue, frames[:n]...)
			c.queued = size
			frames = frames[n:]
			start := c.wakeLocked()
			c.mu.Unlock()
			if start {
				c.startWriter()
			}
			continue
		}
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		drained := c.drained
		c.mu.Unlock()
		select {
		case <-drained:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// bufs holds write buffers between writes, so an idle connection holds
// none.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// write is the connection's own writer, for when a write may have to wait:
// it writes pending (the rest of a flusher's write, if any), then
// everything queued, one socket write at a time, until the queue is empty,
// then exits; Send hands the next frames to the flusher again. On close it
// writes the disconnect and close frames and half-closes the socket.
func (c *conn) write(pending *[]byte) {
	if pending != nil {
		// The rest of a flush that the socket did not take at once, which
		// may hold part of the held handshake.
		err := c.writeBuf(*pending, 0, false)
		if cap(*pending) <= maxPooledBuf {
			bufs.Put(pending)
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
	for {
		// No write delay here: this writer drains a backlog or a full
		// socket as fast as the client takes it (the flushers apply the
		// delay to everyone else).
		c.mu.Lock()
		// The write before this one made room (on the first pass, a
		// waiting replay only looks at the room again).
		c.wakeDrainedLocked()
		pong, ping := c.pong, c.pingDue && !c.closing
		closing, flush, echo := c.closing, c.flush, c.echoClose
		code, text := c.closeCode, c.closeText
		// A client past its heartbeat sends nothing and answers nothing:
		// its socket is closed at once, not kept for the linger.
		linger := closing && c.reason != domain.ReasonHeartbeatTimeout
		if len(c.queue) == 0 && pong == nil && !ping && !closing {
			// Back to the flusher, whose writes never wait and do not
			// look at the socket's write deadline.
			c.writing = false
			c.mu.Unlock()
			return
		}
		frames := c.takeLocked()
		if closing && len(c.queue) > 0 {
			// A close that flushes goes after the rest of the queue, on
			// a later pass.
			closing = false
		}
		c.pong, c.pingDue = nil, false
		prefix := c.hc.handshake
		c.hc.handshake = nil
		if !closing {
			c.urgent.Store(false) // what was urgent goes out now
		}
		c.mu.Unlock()

		bp := bufs.Get().(*[]byte)
		buf := append((*bp)[:0], prefix...)
		if pong != nil {
			buf = appendFrameHeader(buf, opPong, len(pong))
			buf = append(buf, pong...)
		}
		if ping {
			buf = appendFrameHeader(buf, opPing, 0)
		}
		if !closing || flush {
			for _, f := range frames {
				buf = appendFrameHeader(buf, opText, len(f))
				buf = append(buf, f...)
			}
		}
		n := len(frames)
		c.mu.Lock()
		c.spare = recycle(frames)
		c.mu.Unlock()
		if closing {
			if echo {
				buf = appendClose(buf, websocket.CloseNormalClosure, "")
			} else {
				buf = appendDisconnect(buf, code, text)
			}
		}
		if closing {
			// A deadline of its own: a slow consumer's close moved the
			// socket's to now to end a stuck write (send).
			c.deadline = time.Time{}
		}
		err := c.writeBuf(buf, n, !closing || flush)
		if cap(buf) <= maxPooledBuf { // a huge buffer is left to the collector
			*bp = buf
			bufs.Put(bp)
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
		if closing {
			if c.closeSocket(linger) {
				// The client may take up to CloseLinger to answer: the
				// session ends now, not then.
				c.endSession()
			}
			return
		}
	}
}

// maxPooledBuf is the largest write buffer kept for reuse: a part of a
// backlog, with its frames' headers and append's growth.
const maxPooledBuf = 2 << 20

// takeLocked takes the frames of c's queue for one write: all of them, or,
// when they come to more than Config.writeChunk bytes (1 MiB), the first
// of them up to that (one at least, whatever its size), leaving the rest
// queued. Each write has its own deadline (writeBuf), so a client that
// takes a large backlog slowly but steadily is not cut off, and the
// writer's buffer stays small beside the queue. The queue's slice goes to
// the writer, who recycles it into c.spare after the write (under mu).
func (c *conn) takeLocked() [][]byte {
	q := c.queue
	chunk := c.srv.cfg.writeChunk
	if c.queued <= chunk {
		c.queue, c.queued = c.spare[:0], 0
		c.spare = nil // the queue's now, until the writer recycles q
		return q
	}
	k, size := 1, len(q[0])
	for k < len(q) && size+len(q[k]) <= chunk {
		size += len(q[k])
		k++
	}
	taken := append(c.spare[:0], q[:k]...)
	c.spare = nil // taken's, until the writer recycles it
	n := copy(q, q[k:])
	clear(q[n:])
	c.queue, c.queued = q[:n], c.queued-size
	if n == 0 {
		c.queue = nil // a backlog's slots are not kept (keepQueue)
	}
	return taken
}

// wakeDrainedLocked wakes the replays waiting for room in c's queue, if
// any, after a write or at the close (under mu).
func (c *conn) wakeDrainedLocked() {
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// writeFailed ends the connection after a failed write; the caller owns
// the writes.
func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	c.closeLocked(lostReason(err), 4001, "write failed", false)
	c.mu.Unlock()
	c.closeSocket(false)
}

// writeBuf writes one buffer of frames to the socket.
func (c *conn) writeBuf(buf []byte, frames int, counted bool) error {
	if counted {
		c.srv.metrics.frames.Add(float64(frames))
	}
	c.srv.metrics.writes.Inc()
	c.srv.metrics.sendCalls.Inc() // at least one: Write repeats it until all is taken
	// Moving the deadline resets a runtime timer; do it only when less
	// than half the timeout is left, so each write has at least
	// WriteTimeout/2 and most writes skip the update.
	now := time.Now()
	if wt := c.srv.cfg.WriteTimeout; c.deadline.Sub(now) < wt/2 {
		c.deadline = now.Add(wt)
		c.raw.SetWriteDeadline(c.deadline)
	}
	_, err := c.raw.Write(buf)
	return err
}

// closeSocket ends the connection's writes for good: no writer starts
// again. After the close frame (linger) it only half-closes the socket,
// and reports that it did: closing a socket with unread input resets it,
// and the kernel then drops what it has not sent yet, the disconnect and
// close frames included, so a client still sending (a frame over the
// limit, a chatty one kicked) lost them. The FIN goes after the last
// frame instead, and the reader reads on until the client answers the
// close, hangs up or Config.CloseLinger has passed; then finish closes the
// socket. After a failed write, for a client past its heartbeat, or on a
// connection that cannot half-close, it closes the socket at once.
func (c *conn) closeSocket(linger bool) (half bool) {
	c.heartbeat.Stop()
	parked := c.pl != nil && c.pl.closing(c)
	half = linger && halfClose(c.raw)
	if !half {
		c.raw.Close()
	}
	c.mu.Lock()
	if half {
		// Under mu with done: finish's longer deadline for a reader
		// that stopped first never comes after this one.
		c.raw.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseLinger))
	}
	c.done, c.writing = true, false
	c.mu.Unlock()
	if parked {
		// The reader finds the client's answer, the end of the socket or
		// the deadline, and ends the connection.
		c.srv.workers.run(c.readLoop)
	}
	close(c.writerDone)
	return half
}

// halfClose ends the writing side of nc alone, if it can: its peer reads
// what was sent, then the end of the stream, and may still send.
func halfClose(nc net.Conn) bool {
	cw, ok := nc.(interface{ CloseWrite() error })
	return ok && cw.CloseWrite() == nil
}

// startReading sets the connection's read handlers and starts its reader,
// parked until the client sends something when the poller allows.
func (c *conn) startReading() {
	limits := c.app.Settings.Limits
	c.limiter = rate.NewLimiter(rate.Limit(limits.InboundRate), limits.InboundBurst)
	// Frames up to four times the message limit are read and refused with
	// too_large; bigger ones end the connection (close 1009). The reader
	// enforces that itself (readMessage): gorilla's read limit would end
	// the connection at the limit, without a chance to refuse a frame a
	// little over it.
	c.ws.SetPingHandler(func(data string) error {
		c.inbound.Store(time.Now().UnixNano())
		c.mu.Lock()
		c.pong = []byte(data)
		c.urgent.Store(true)
		start := c.wakeLocked()
		c.mu.Unlock()
		if start {
			c.startWriter()
		}
		c.hurry()
		return nil
	})
	// Any frame counts as an answer to the heartbeat, a WebSocket pong
	// too (which gorilla otherwise drops unseen).
	c.ws.SetPongHandler(func(string) error {
		c.inbound.Store(time.Now().UnixNano())
		return nil
	})
	c.ws.SetCloseHandler(func(code int, text string) error {
		c.mu.Lock()
		if !c.closing {
			c.closeLocked(domain.ReasonClientClosed, code, text, false)
			c.echoClose = true
		}
		start := c.wakeLocked()
		c.mu.Unlock()
		if start {
			c.startWriter()
		}
		return nil
	})
	// A frame gorilla cannot read ends the connection with gorilla's
	// close (1002), sent by this connection's writer like any other.
	c.hc.closeFn = func(code int, text string) {
		c.disconnect(domain.ReasonProtocolError, code, text, false)
	}
	if c.pl == nil || !c.pl.park(c) {
		c.srv.workers.run(c.readLoop)
	}
}

// readLoop reads and runs the client's frames. It returns when it has
// parked the connection (nothing more is buffered; the poller starts the
// next reader) or, once the connection has ended, after finish.
//
// It parks between messages only: gorilla answers WebSocket-level pings
// and skips pongs inside ReadMessage, which then waits for a data frame,
// so a client that sends such control frames keeps a reader until its
// next message. The answers to the heartbeat's WebSocket pings, which
// every browser sends, are the exception: skipPongs takes them itself.
func (c *conn) readLoop() {
	limits := c.app.Settings.Limits
	// Requests run on this goroutine, a worker, while it can park: when
	// the client goes quiet the worker returns to the pool, keeping the
	// stack a request grew for the next turn.
	parks := c.pl != nil
	var reason string
	var answered *websocket.CloseError // the client's close frame, or its hang-up
	// Woken by a pong alone (a heartbeat's answer), the reader parks
	// again rather than wait in gorilla for a data frame. After each
	// message the end of the loop does the same.
	if parks {
		if _, err := c.br.Peek(1); err == nil && c.skipPongs() && c.br.Buffered() == 0 {
			if c.pl.park(c) {
				return // c is the poller's now
			}
			parks = false
		}
	}
	for {
		typ, body, err := c.readMessage(maxFrame(limits))
		if err != nil {
			errors.As(err, &answered)
			switch {
			case errors.Is(err, errFrameTooBig), errors.Is(err, websocket.ErrReadLimit):
				// gorilla's ErrReadLimit: a frame whose length does not
				// fit in 63 bits. Not counted from a closing connection,
				// which refuses nothing more.
				if !c.closingNow.Load() {
					c.srv.metrics.refused("message_size")
				}
				reason = domain.ReasonTooLarge
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
				reason = domain.ReasonClientClosed
			default:
				reason = domain.ReasonConnectionLost
			}
			break
		}
		closing := c.closingNow.Load()
		if !closing {
			c.inbound.Store(time.Now().UnixNano())
			c.srv.metrics.inbound.Inc()
		}
		switch {
		case closing:
			// A closing connection runs no more requests (handle): what
			// its client sends until it answers the close is read and
			// dropped, neither counted nor refused.
		case !c.limiter.Allow():
			c.srv.metrics.refused("inbound_rate")
			c.replyError(peek(body).ID, "", domain.Errorf(domain.CodeRateLimited, "more than %g frames per second", limits.InboundRate))
		case typ != websocket.TextMessage:
			c.replyError(nil, "", domain.Errorf(domain.CodeBadRequest, "binary frames are not supported; send JSON text frames"))
		case len(body) > limits.MaxMessageBytes:
			c.srv.metrics.refused("message_size")
			c.replyError(peek(body).ID, "", domain.Errorf(domain.CodeTooLarge, "frame is %d bytes; the limit is %d", len(body), limits.MaxMessageBytes))
		case parks:
			c.handle(body)
		default:
			// On another worker: this reader keeps its goroutine for the
			// connection's life, and a request can need a deep stack
			// (SQLite, JSON, JS hooks) that it would keep too.
			c.handling.Add(1)
			c.srv.workers.run(func() {
				defer c.handling.Done()
				c.handle(body)
			})
			c.handling.Wait()
		}
		if parks {
			c.skipPongs()
		}
		if parks && c.br.Buffered() == 0 {
			if c.pl.park(c) {
				return // c is the poller's now
			}
			parks = false // this reader stays: requests go to other workers
		}
	}
	c.finish(reason, answered == nil)
}

// skipPongs takes the whole WebSocket pongs at the start of c's read
// buffer, at a message boundary, and counts them as heard from the client:
// the answers to the heartbeat's pings. gorilla would take a pong inside
// NextReader, which then waits for a data frame: a reader woken by a pong
// alone would stay, a goroutine held until the client's next message (or
// for good, for a client that only listens). A pong only partly buffered
// is waited for, as gorilla would wait for it; one not as a client must
// send it (masked, 125 bytes at most) is left to gorilla. It reports
// whether it took one.
func (c *conn) skipPongs() bool {
	took := false
	for c.br.Buffered() > 0 {
		if h, _ := c.br.Peek(1); h[0] != 0x80|opPong {
			break
		}
		h, err := c.br.Peek(2)
		if err != nil {
			break
		}
		n := int(h[1] & 0x7f)
		if h[1]&0x80 == 0 || n > 125 {
			break
		}
		if _, err := c.br.Peek(6 + n); err != nil {
			break
		}
		c.br.Discard(6 + n)
		took = true
	}
	if took {
		c.inbound.Store(time.Now().UnixNano())
	}
	return took
}

// errFrameTooBig is readMessage's error for a frame over its cap.
var errFrameTooBig = errors.New("frame too big")

// maxFrame is the largest frame a connection reads: four times the
// message limit, so that a frame a little over it can be refused politely.
func maxFrame(l domain.Limits) int64 { return int64(4*l.MaxMessageBytes) + 1024 }

// readMessage reads the next data frame, at most max bytes of it.
func (c *conn) readMessage(max int64) (int, []byte, error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return typ, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return typ, nil, err
	}
	if int64(len(body)) > max {
		return typ, nil, errFrameTooBig
	}
	return typ, body, nil
}

// finish runs once the reader has stopped: it drains the socket if need
// be, ends the session (if the writer has not), waits for the writer and
// closes the socket. With drain, the client may still be sending (its
// close frame has not come): what it sends is read and dropped until it
// hangs up or the writer's linger ends, so that the close does not reset
// the socket under the last frames. That holds this goroutine for up to
// CloseLinger after the last write; the drain has no cap in bytes, only
// in time, as a cap would end it with input unread, which is the reset
// it is there to avoid.
func (c *conn) finish(readReason string, drain bool) {
	code, text := websocket.CloseNormalClosure, readReason
	if readReason == domain.ReasonTooLarge {
		code, text = websocket.CloseMessageTooBig, fmt.Sprintf("frame over %d bytes", maxFrame(c.app.Settings.Limits))
	}
	c.disconnect(readReason, code, text, false)
	if drain {
		// Read from now, while the writer finishes: a client that writes
		// a whole frame before it reads would otherwise wait for the
		// writer, which waits for it. The writer's close moves the
		// deadline to CloseLinger after its last write (closeSocket).
		// The session's end waits for this: recording it can take
		// seconds with a failing log, which would leave the client
		// unread that long, and the linger over before the drain began.
		// (The writer ends the session as soon as it has half-closed.)
		c.mu.Lock()
		if !c.done {
			c.raw.SetReadDeadline(time.Now().Add(c.srv.cfg.WriteTimeout + c.srv.cfg.CloseLinger))
		}
		c.mu.Unlock()
		io.Copy(io.Discard, c.raw)
	}
	c.endSession()
	<-c.writerDone
	c.raw.Close()
	c.srv.untrack(c) // the connection's slot is free once its socket is
}

// endSession ends the session once, when the connection is closing,
// whichever comes first of the writer's half-close and the reader's end,
// without waiting for a client that may never answer the close: its
// replays stop, the membership lets it go, and its end is recorded (and
// told to onDisconnect). It waits for the request running, if any (none
// starts once the connection is closing): a subscribe past its
// context's check commits even when cancelled, and committed after the
// end, it would open the session again in the membership, for good.
func (c *conn) endSession() {
	c.ended.Do(func() {
		c.cancel()
		c.stopExpiries()
		c.requests.Wait()
		c.replays.Wait()
		c.srv.members.Detach(c.app.Name, c.client.ID)
		c.mu.Lock()
		reason := c.reason
		c.mu.Unlock()
		c.srv.recordEnd(c.client, reason, c.app.Settings.Limits.MaxConnections)
	})
}

func (c *conn) handle(body []byte) {
	// From before startRequest, which may wait for a token's expiry.
	c.inRequest.Store(true)
	defer func() {
		c.reqEnd.Store(time.Now().UnixNano()) // first: beat sees the one or the other
		c.inRequest.Store(false)
	}()
	if !c.startRequest() {
		return
	}
	defer c.endRequest()
	req, err := decodeRequest(body, c.app.Settings.Limits.MaxJSONDepth)
	if err != nil {
		c.replyError(req.ID, req.Channel, err)
		return
	}
	switch req.Type {
	case "subscribe":
		err = c.subscribe(&req)
	case "unsubscribe":
		err = c.unsubscribe(&req)
	case "publish":
		err = c.publish(&req)
	case "ping":
		c.reply(idFrame("pong", req.ID))
	case "pong":
	case "members":
		err = c.membersOf(&req)
	default:
		err = &domain.Error{Code: domain.CodeUnknownType, Msg: fmt.Sprintf("unknown type %q", req.Type)}
	}
	if err != nil {
		c.replyError(req.ID, req.Channel, err)
		c.settle(req.Channel, err)
	}
}

// startRequest begins a request, or the end of an expired subscription,
// once the one before has finished; it reports false, having begun
// nothing, when the connection is closing. A connection being closed
// (kicked, past its heartbeat, shut down) takes no more requests: its
// socket stays open while what is queued is written, up to the write
// timeout, and a kicked client that kept sending would go on publishing
// and subscribing meanwhile. endRequest ends what it began.
func (c *conn) startRequest() bool {
	c.reqMu.Lock()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.reqMu.Unlock()
		return false
	}
	c.requests.Add(1)
	c.mu.Unlock()
	return true
}

func (c *conn) endRequest() {
	c.requests.Done()
	c.reqMu.Unlock()
}

// settle closes the connection after an unsettled error: closing records
// its end, which ends every subscription it had in the log and the
// membership alike.
func (c *conn) settle(channel string, err error) {
	var u unsettled
	if errors.As(err, &u) && c.ctx.Err() == nil {
		c.srv.log.Error("subscription state lost; closing the connection", "app", c.app.Name, "client", c.client.ID, "channel", channel, "err", err)
		c.disconnect(domain.ReasonServerError, websocket.CloseInternalServerErr, "subscription could not be completed", true)
	}
}

// waitApplied waits until the membership has applied the connection's
// event seq, for at most ApplyTimeout, as a connect does: a membership
// that has stopped applying (a projection stuck on an event, which
// /healthz reports) fails the request (unavailable) instead of holding
// it, and the client's reader behind it, until the heartbeat closed the
// connection with 4002 as if the client were silent.
func (c *conn) waitApplied(seq uint64) error {
	err := c.srv.members.WaitAppliedWithin(c.ctx, seq, c.srv.cfg.ApplyTimeout)
	if errors.Is(err, projections.ErrNotApplied) {
		return domain.Errorf(domain.CodeUnavailable, "the server has not taken in this request within %s: try again later", c.srv.cfg.ApplyTimeout)
	}
	return err
}

// unsettled is an error met after a subscribe was committed, or after an
// unsubscribe let go of its channel: the log and the membership then
// disagree with the connection about what it has joined. The client gets
// the error, and then the connection is closed (1011, server_error) so
// that its end settles both; the client reconnects and joins again.
type unsettled struct{ error }

func (u unsettled) Unwrap() error { return u.error }

func idFrame(typ string, id json.RawMessage) []byte {
	return mustJSON(struct {
		Type string          `json:"type"`
		ID   json.RawMessage `json:"id,omitempty"`
	}{typ, id})
}

func (c *conn) subscribed(channel string) bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	_, ok := c.subs.Get(channel)
	return ok
}

func (c *conn) membersOf(req *request) error {
	if err := domain.ValidateChannel(req.Channel); err != nil {
		return err
	}
	if !domain.IsPresence(req.Channel) {
		return domain.Errorf(domain.CodeBadRequest, "members is for presence channels (%s*)", domain.PresencePrefix)
	}
	if !c.subscribed(req.Channel) {
		return domain.Errorf(domain.CodeNotAllowed, "subscribe to %s to see its members", req.Channel)
	}
	members := c.srv.members.Subscribers(c.app.Name, req.Channel)
	c.reply(mustJSON(struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id,omitempty"`
		Channel string          `json:"channel"`
		Members []string        `json:"members"`
	}{"members", req.ID, req.Channel, members}))
	return nil
}

// settings are the app's settings as app.json says now (re-read at most
// once a second): a change to who may publish or to the channel secret
// applies to open connections at their next request. The limits a
// connection's reader was set up with (frame size, inbound rate) stay.
// An app that is no more ends the connection (appGone), and the request
// gets no answer.
func (c *conn) settings() (apps.Settings, error) {
	// Requests run one at a time: the copy needs no lock, and the
	// registry's (shared by every connection) is taken once a second.
	if now := time.Now(); now.Sub(c.currentAt) >= time.Second {
		c.currentAt = now
		// Failing otherwise, the lookup leaves the settings last read,
		// not the ones the connection opened with.
		app, err := c.srv.apps.Lookup(c.app.Name)
		if err == nil {
			c.current = app
		} else if c.appGone(err) {
			return apps.Settings{}, err
		}
	}
	return c.current.Settings, nil
}

// appGone ends the connection, and reports true, when err, its app's
// lookup, says the app is not found and the registry takes it for
// removed (Registry.Removed: its folder gone, the apps folder unchanged
// for the grace): a deploy that writes the folder again leaves it absent
// for a moment, which must not close anyone. The
// heartbeat calls it too, so that an idle connection of a removed app
// ends.
func (c *conn) appGone(err error) bool {
	if domain.CodeOf(err) != domain.CodeNotFound || c.srv.apps.Removed(c.app.Name) != nil {
		return false
	}
	c.disconnect(domain.ReasonAppRemoved, 4002, fmt.Sprintf("app %q is no longer on this server", c.app.Name), false)
	return true
}

func (c *conn) publish(req *request) error {
	if err := domain.ValidateChannel(req.Channel); err != nil {
		return err
	}
	if !domain.HasData(req.Data) {
		return domain.Errorf(domain.CodeBadRequest, "publish needs data")
	}
	// A private channel's token admits a connection to read it and to
	// write to it: a client that has not joined it with its token may not
	// publish there, whatever client_publish or onPublish say.
	if domain.IsPrivate(req.Channel) {
		c.smu.Lock()
		_, joined := c.subs.Get(req.Channel)
		e := c.expiries[req.Channel]
		c.smu.Unlock()
		if !joined {
			c.srv.metrics.refused("private_token")
			return domain.Errorf(domain.CodeNotAllowed, "subscribe to %s with its token to publish to it", req.Channel)
		}
		if e.passed() {
			// Expired, its end waiting for this request: no hook runs
			// for what the token no longer admits.
			c.srv.metrics.refused("private_token")
			return errTokenExpired(req.Channel, domain.CodeNotAllowed)
		}
	}
	data := req.Data
	settings, err := c.settings()
	if err != nil {
		return err
	}
	allowed := settings.ClientPublish
	if c.srv.hooks != nil {
		out, drop, err := c.srv.hooks.OnPublish(c.ctx, c.client, req.Channel, data)
		if err != nil {
			return err
		}
		if drop {
			c.reply(mustJSON(struct {
				Type    string          `json:"type"`
				ID      json.RawMessage `json:"id,omitempty"`
				Channel string          `json:"channel"`
				Dropped bool            `json:"dropped"`
			}{"published", req.ID, req.Channel, true}))
			return nil
		}
		if out != nil {
			// What the hook made of it nests as deep as it likes: the
			// app's limit holds for it as for the frame.
			if err := domain.CheckDepth(out, settings.Limits.MaxJSONDepth-1); err != nil {
				c.srv.metrics.refused("json_depth")
				return err
			}
			data, allowed = out, true
		}
	}
	if !allowed {
		return domain.Errorf(domain.CodeNotAllowed, "clients may not publish in app %s", c.app.Name)
	}
	if len(data) > settings.Limits.MaxMessageBytes {
		c.srv.metrics.refused("message_size")
		return domain.Errorf(domain.CodeTooLarge, "data is %d bytes; the limit is %d", len(data), settings.Limits.MaxMessageBytes)
	}
	if c.closingNow.Load() {
		// Kicked by onPublish, say: record would find it so, but a
		// closing connection answers nothing, not a token's expiry.
		return nil
	}
	if domain.IsPrivate(req.Channel) && c.tokenExpired(req.Channel) {
		// Expired while the hook ran, its end not yet recorded.
		c.srv.metrics.refused("private_token")
		return errTokenExpired(req.Channel, domain.CodeNotAllowed)
	}
	mb := &domain.MessageBroadcast{App: c.app.Name, Channel: req.Channel, Data: data,
		Publisher: domain.Actor{Kind: domain.ActorClient, ID: c.client.ID}}
	if _, ok, err := c.record(c.ctx, mb); err != nil || !ok {
		return err
	}
	c.reply(mustJSON(struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id,omitempty"`
		Channel string          `json:"channel"`
		Offset  uint64          `json:"offset"`
		Epoch   string          `json:"epoch"`
	}{"published", req.ID, req.Channel, mb.Offset, mb.Epoch}))
	return nil
}

func (c *conn) unsubscribe(req *request) error {
	if err := domain.ValidateChannel(req.Channel); err != nil {
		return err
	}
	if !c.leave(req.Channel) {
		return domain.Errorf(domain.CodeBadRequest, "not subscribed to %s", req.Channel)
	}
	return c.recordLeave(req.ID, req.Channel, "")
}

// leave lets go of channel: its replay, if one is running, stops, and so
// does its token's expiry. It reports whether the connection had joined
// it.
func (c *conn) leave(channel string) bool {
	c.smu.Lock()
	cancel, ok := c.subs.Get(channel)
	c.subs.Delete(channel)
	if e := c.expiries[channel]; e != nil {
		e.timer.Stop()
		delete(c.expiries, channel)
	}
	c.smu.Unlock()
	if cancel != nil {
		cancel()
	}
	return ok
}

// recordLeave records that the connection has left channel, for reason
// ("" when the client asked), and tells the client with `unsubscribed`
// (with id when it answers a request, with reason when the server ended
// the subscription). A failure leaves the log and the membership holding
// a subscription the connection no longer has: it is unsettled.
func (c *conn) recordLeave(id json.RawMessage, channel, reason string) error {
	evs, err := c.srv.store.Append(c.ctx, &domain.ChannelUnsubscribed{App: c.app.Name, Channel: channel, Client: c.client.ID, Reason: reason})
	if err != nil {
		return unsettled{err}
	}
	// Once the projection has applied it, no more frames of the channel
	// are queued, so `unsubscribed` is the last word on it.
	if err := c.waitApplied(evs[0].Seq); err != nil {
		return unsettled{err}
	}
	c.reply(mustJSON(struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id,omitempty"`
		Channel string          `json:"channel"`
		Reason  string          `json:"reason,omitempty"`
	}{"unsubscribed", id, channel, reason}))
	return nil
}

// expiry ends a private subscription when its token expires, at.
type expiry struct {
	timer *time.Timer
	at    time.Time
}

// passed reports whether e, a private subscription's expiry (nil for
// none), has passed. Its end is recorded by the timer, after the request
// under way (a publish running its onPublish hook, say), which meanwhile
// must not act on the token: this is what it checks.
func (e *expiry) passed() bool { return e != nil && expired(e.at) }

// expired reports whether a token expiring at has expired: at or after
// at (JWT's exp is the first second it is no longer valid).
func expired(at time.Time) bool { return !time.Now().Before(at) }

// tokenExpired reports whether the token of the private subscription to
// channel has expired (expiry.passed).
func (c *conn) tokenExpired(channel string) bool {
	c.smu.Lock()
	e := c.expiries[channel]
	c.smu.Unlock()
	return e.passed()
}

// errTokenExpired refuses what a private channel's token no longer admits:
// a publish, not_allowed; a subscribe whose token expired while its hook
// ran, unavailable, which a client tries again (fazt.js with a fresh token
// from its token function), as the hook's time, not the client, made it
// late.
func errTokenExpired(channel string, code domain.Code) error {
	return domain.Errorf(code, "the token of %s has expired: subscribe again with a fresh one", channel)
}

// expireAt arms the end of the private subscription to channel at exp,
// its token's expiry.
func (c *conn) expireAt(channel string, exp time.Time) {
	e := &expiry{at: exp}
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.ctx.Err() != nil {
		// The session has ended (stopExpiries has run, or will find
		// nothing): a timer now would only keep c until exp.
		return
	}
	if c.expiries == nil {
		c.expiries = map[string]*expiry{}
	}
	c.expiries[channel] = e
	e.timer = time.AfterFunc(time.Until(exp), func() { c.expire(channel, e) })
}

// expire ends the private subscription to channel whose token's expiry
// e is, unless it has ended already: it is recorded with reason
// token_expired, and the client is sent `unsubscribed` with that reason.
// It waits for the request running, as a request waits for the one
// before.
func (c *conn) expire(channel string, e *expiry) {
	if !c.startRequest() {
		return
	}
	defer c.endRequest()
	c.smu.Lock()
	current := c.expiries[channel] == e
	c.smu.Unlock()
	if !current || !c.leave(channel) {
		return
	}
	if err := c.recordLeave(nil, channel, domain.ReasonTokenExpired); err != nil {
		c.settle(channel, err)
	}
}

// stopExpiries stops the timers of the connection's private
// subscriptions, at its end.
func (c *conn) stopExpiries() {
	c.smu.Lock()
	for _, e := range c.expiries {
		e.timer.Stop()
	}
	c.expiries = nil
	c.smu.Unlock()
}
