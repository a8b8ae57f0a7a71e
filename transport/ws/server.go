// Package ws is the WebSocket transport at /_ws: it decodes client frames
// into commands on the event log and the membership projection, and writes
// what the fan-out queues for each connection, coalescing everything queued
// into one socket write.
package ws

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/realip"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// Store is what the transport needs of the event log.
type Store interface {
	domain.Log
	domain.History
	CountMessages(ctx context.Context, app, channel string, q domain.HistoryQuery) (int, error)
	// TrimmedSince reports whether retention dropped a message of the
	// channel sent at or after since, given its oldest retained offset.
	TrimmedSince(ctx context.Context, app, channel string, first uint64, since int64) (bool, error)
	// PinHistory keeps retention off a channel's history until unpin is
	// called; keep(from) narrows it to the offsets from on.
	PinHistory(app, channel string) (keep func(from uint64), unpin func())
}

// Config configures the WebSocket server. Zero fields take the defaults.
type Config struct {
	// Proxies are the reverse proxies whose X-Forwarded-For names a
	// connection's client address (none by default).
	Proxies realip.Proxies
	// Heartbeat is how often the server sends {"type":"ping"} (default 30s).
	Heartbeat time.Duration
	// PongTimeout is how long after a ping a connection with no inbound
	// frame is closed (default 10s).
	PongTimeout time.Duration
	// WriteTimeout bounds socket writes (default 10s): each write has
	// between half of it and all of it. A client that cannot take a write
	// in that time is a slow consumer.
	WriteTimeout time.Duration
	// CloseLinger bounds how long a closed connection's socket stays half
	// open after the server's close frame, for the client to take the
	// last frames and answer the close (default 2s; see closeSocket).
	CloseLinger time.Duration
	// SendQueue is how many frames may wait for one connection before it
	// is disconnected as a slow consumer (default 8192).
	SendQueue int
	// SendQueueBytes is how many bytes of frames may wait for one
	// connection before it is disconnected as a slow consumer (default
	// 16 MiB, or four of the largest frames the app's max_message_bytes
	// allows, if that is more), besides the next to be written. A frame
	// into an empty queue is always taken, whatever its size.
	SendQueueBytes int
	// writeChunk is about the most of a backlog that one socket write
	// takes (default 1 MiB; see takeLocked); set by tests.
	writeChunk int
	// ReplayPage is how many history messages one read returns (default 1000).
	ReplayPage int
	// WriteDelay, when set, lets each flusher start a round at most once
	// per this long, so that broadcasts queued meanwhile for a connection
	// share one socket write: more throughput per core for up to that much
	// added latency (up to MaxWriteDelay under load). A flusher idle for
	// longer starts at once. A reply to a request, a pong or a closing
	// connection is written at once, with what its connection had queued,
	// outside the rounds; the flusher's other connections keep waiting.
	// Zero writes at once. A connection draining a backlog on its own
	// writer is not delayed.
	WriteDelay time.Duration
	// MaxWriteDelay, when longer than WriteDelay, lets a busy flusher hold
	// broadcasts back longer. Over the last 100 ms or so, a flusher
	// measures its load (the share of the time it spent in rounds) and the
	// share of its writes of broadcasts that went to connections it had
	// written broadcasts for lately (within 1.5 MaxWriteDelay). Once it
	// spends over a fifth of its time in rounds, the least time between
	// their starts grows from WriteDelay in step with that share, to
	// MaxWriteDelay at two fifths, scaled by those repeats (not at all
	// with none, fully from half the writes): waiting puts more frames in
	// each write, so a loaded server spends less of its core in the
	// kernel, for more latency; where connections get a broadcast now and
	// then, waiting would share nothing and the flusher does not wait. A
	// lightly loaded flusher keeps WriteDelay. Zero, or no more than
	// WriteDelay, keeps WriteDelay at any load; a zero WriteDelay writes
	// at once whatever this is.
	MaxWriteDelay time.Duration
	// SocketSendBuffer, when set, sizes each connection's kernel send
	// buffer (SO_SNDBUF) in bytes; smaller buffers find slow consumers
	// sooner and hold less kernel memory. Zero keeps the kernel's default.
	SocketSendBuffer int
	// PlainWrites makes the flushers write each connection's socket with
	// a send(2) of its own. Otherwise, where the kernel allows io_uring,
	// they submit a round's writes to it in batches of up to 64, one
	// system call each: two fifths or more less time per write in
	// BENCHMARKS.md's floor benchmark, where system calls are dear ("Stop
	// 29"). Either way the writes never wait for a socket.
	PlainWrites bool
	// MaxConnections caps the server's open connections across all apps
	// (default 100000); each app also has its own cap in its limits.
	MaxConnections int
	// ApplyTimeout bounds how long a new connection waits for the
	// membership to apply its committed client.connected.v1 before it is
	// closed with 1011 and recorded as ended with reason server_error
	// (default 10s). Shutdown ends the wait at once (1001,
	// server_shutdown). It bounds a subscribe's and an unsubscribe's
	// wait for theirs alike: the client gets `unavailable`, and the
	// connection is closed with 1011 (server_error).
	ApplyTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 10 * time.Second
	}
	if c.PongTimeout >= c.Heartbeat {
		c.PongTimeout = c.Heartbeat / 2
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.CloseLinger <= 0 {
		c.CloseLinger = 2 * time.Second
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 8192
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = 16 << 20
	}
	if c.writeChunk <= 0 {
		c.writeChunk = 1 << 20
	}
	if c.ReplayPage <= 0 {
		c.ReplayPage = 1000
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 100000
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server serves /_ws. Safe for concurrent use.
type Server struct {
	cfg      Config
	store    Store
	members  *projections.Membership
	apps     *apps.Registry
	hooks    domain.Hooks
	log      *slog.Logger
	metrics  *metrics
	upgrader websocket.Upgrader
	flushers []*flusher
	nextFl   atomic.Uint32
	poller   func() *readPoller // where idle connections park: the process's poller

	mu      sync.Mutex
	conns   map[*conn]struct{}
	perApp  map[string]int
	total   int
	closing bool
	connWG  sync.WaitGroup
	// runsAway counts the onDisconnect runs under way apart from their
	// connections (recordEnd), by app, under mu; runsAwayTotal, of all.
	runsAway      map[string]int
	runsAwayTotal int
	baseCtx       context.Context
	stopBase      context.CancelFunc
	// closingCtx ends when Shutdown begins: connections being set up stop
	// waiting for their event to be applied, so that their end is written
	// before the log closes.
	closingCtx context.Context
	stopSetup  context.CancelFunc
	workers    *workers // the connections' readers and requests

	// Sessions' ends the log could not take, written again by one
	// goroutine (retryEnds) while endsRetrying.
	endsMu       sync.Mutex
	ends         []domain.Fact // *domain.ClientDisconnected each
	endsRetrying bool
}

// workerIdle is how long a reader's goroutine waits for another turn
// before it ends.
const workerIdle = 10 * time.Second

// NewServer returns a WebSocket server. hooks may be nil.
func NewServer(cfg Config, store Store, members *projections.Membership, registry *apps.Registry, hooks domain.Hooks) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg: cfg, store: store, members: members, apps: registry, hooks: hooks,
		log:      cfg.Logger,
		metrics:  wsMetrics,
		conns:    map[*conn]struct{}{},
		perApp:   map[string]int{},
		runsAway: map[string]int{},
		poller:   poller,
	}
	s.baseCtx, s.stopBase = context.WithCancel(context.Background())
	s.closingCtx, s.stopSetup = context.WithCancel(context.Background())
	s.workers = newWorkers(workerIdle, s.baseCtx.Done())
	// One flusher per processor: enough to keep every core writing, few
	// enough that each one's rounds batch many frames per write. Where a
	// socket cannot be written through its descriptor, none: each
	// connection writes from its own goroutine.
	if rawWrites {
		for range runtime.GOMAXPROCS(0) {
			s.flushers = append(s.flushers, newFlusher(cfg.WriteDelay, cfg.MaxWriteDelay, cfg.PlainWrites, s.log))
		}
		if cfg.PlainWrites {
			s.log.Info("socket writes: one send(2) per write, without io_uring", "why", "Config.PlainWrites (fazt serve --io-uring=false)")
		} else if err := ringsErr(); err != nil {
			s.log.Info("socket writes: one send(2) per write, without io_uring", "why", err)
		}
	}
	s.upgrader = websocket.Upgrader{
		// The read buffer is the connection's own (hijacker), so it can
		// tell whether a frame is buffered before it parks its reader;
		// ReadBufferSize must stay 0 for the upgrader to take it
		// (TestFramesInOneSegmentAreAllAnswered fails otherwise).
		WriteBufferSize:  256, // only the handshake is written through gorilla
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 10 * time.Second,
		// Origins are checked in ServeHTTP against the app's settings.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s
}

// ServeHTTP upgrades a request to /_ws.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// What the upgrader would refuse is refused first: before a slot is
	// taken or the app's onConnect runs, for a connection that cannot be.
	if err := checkUpgrade(r); err != nil {
		switch {
		case domain.CodeOf(err) == domain.CodeMethodNotAllowed:
			w.Header().Set("Allow", http.MethodGet)
		case errors.Is(err, errVersion):
			w.Header().Set("Sec-WebSocket-Version", "13") // the one taken (RFC 6455, 4.4)
		}
		httpError(w, err)
		return
	}
	app, err := s.apps.LookupHost(r.Host)
	if err != nil {
		httpError(w, err)
		return
	}
	if err := checkOrigin(r, app.Settings.AllowedOrigins); err != nil {
		s.metrics.refused("origin")
		httpError(w, err)
		return
	}
	// The query, User-Agent and Origin go into the log's record of the
	// connection, which anyone may open: keep each record small.
	if n := len(r.URL.RawQuery) + len(r.UserAgent()) + len(r.Header.Get("Origin")); n > maxConnectRecord {
		s.metrics.refused("connect_size")
		httpError(w, domain.Errorf(domain.CodeTooLarge, "the query, User-Agent and Origin come to %d bytes; the limit is %d", n, maxConnectRecord))
		return
	}
	client := domain.Client{
		ID:          newClientID(),
		App:         app.Name,
		Remote:      r.RemoteAddr,
		ConnectedAt: time.Now().UnixMilli(),
		Query:       flatten(r.URL.Query()),
	}
	if err := s.reserve(app); err != nil {
		s.refuse(w, r, err)
		return
	}
	// Released here on every way out until the connection is tracked, a
	// panic included: Shutdown counts it until then.
	tracked := false
	defer func() {
		if !tracked {
			s.release(app.Name)
		}
	}()
	if s.hooks != nil {
		if err := s.hooks.OnConnect(r.Context(), client); err != nil {
			httpError(w, err)
			return
		}
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := newConn(s, ws, hj.nc, hj.br, app, client)
	c.hc = hj.held // its handshake goes out with `connected`
	c.hold()
	s.members.Attach(app.Name, client.ID, c)
	evs, err := s.store.Append(r.Context(), &domain.ClientConnected{
		App: app.Name, Client: client.ID, Remote: client.Remote,
		UserAgent: r.UserAgent(), Origin: r.Header.Get("Origin"), Query: redactQuery(client.Query),
	})
	committed := err == nil
	if committed {
		// Once `connected` is sent, the session is visible to the API (a
		// kick, a count) as to everyone else.
		// The event is committed: wait for it even if the request ends,
		// but not once Shutdown has begun.
		err = s.members.WaitAppliedWithin(s.closingCtx, evs[0].Seq, s.cfg.ApplyTimeout)
	}
	if err != nil {
		s.members.Detach(app.Name, client.ID)
		c.heartbeat.Stop()
		c.cancel()
		reason, code, why := "", websocket.CloseInternalServerErr, "event log unavailable"
		if committed {
			reason, why = domain.ReasonServerError, "connection setup timed out"
			if s.closingCtx.Err() != nil {
				reason, code, why = domain.ReasonServerShutdown, websocket.CloseGoingAway, "server shutdown"
			}
		}
		if reason == domain.ReasonServerShutdown {
			s.log.Info("connection closed while being set up: server shutdown", "app", app.Name, "client", client.ID)
		} else {
			s.log.Error("record connection", "app", app.Name, "client", client.ID, "err", err)
		}
		// No writer has started (hold claimed the connection), but the
		// handshake is taken as writers take it, under the lock. It goes
		// out with the close, in one write.
		c.mu.Lock()
		buf := c.hc.handshake
		c.hc.handshake = nil
		c.mu.Unlock()
		buf = appendClose(buf, code, why)
		hj.nc.SetWriteDeadline(time.Now().Add(time.Second))
		hj.nc.Write(buf)
		ws.Close()
		if committed {
			// The log has the session: end it there too, or it would stay
			// open in the audit trail and the projections until a restart.
			s.metrics.accepted.Inc()
			s.recordEnd(client, reason, app.Settings.Limits.MaxConnections)
		}
		return
	}
	tracked = true
	shutting := !s.track(c) // Shutdown began after the session was recorded
	// `connected` goes first, before anything queued while the session
	// was being applied.
	c.open(mustJSON(struct {
		Type      string `json:"type"`
		ClientID  string `json:"client_id"`
		App       string `json:"app"`
		Heartbeat int    `json:"heartbeat"`
	}{"connected", client.ID, app.Name, int(s.cfg.Heartbeat / time.Second)}))
	if shutting {
		// As Shutdown closes the others: what is queued, `connected`
		// first, goes out before the disconnect, so that the client knows
		// the id of the session it was given.
		c.disconnect(domain.ReasonServerShutdown, websocket.CloseGoingAway, "server shutdown", true)
	}
	// The handler returns now, releasing net/http's buffers; the
	// connection lives on in its reader while the client sends, and a
	// writer while it has something to write.
	c.startReading()
}

// recordEnd records the end of a client's session, whether its
// connection ran or was closed while being set up: it is counted, written
// to the log as client.disconnected.v1, and told to onDisconnect, which,
// when the app has one, first waits for the membership to apply it (5 s
// at most; not at shutdown, nor when the write failed). The hook runs on
// a goroutine of its own, which Shutdown waits for as for a connection:
// the caller (whose connection holds its count until then) goes on to
// close its socket and free its slot under the app's and the server's
// limits of connections, rather than hold them while a slow
// onDisconnect runs, or while the ends of a mass disconnect wait in line
// for a run. Past limit runs under way for the app (its connections'
// limit), or MaxConnections for the server, the caller runs the hook
// itself, as all did before.
//
// A write that fails (a full disk, say) is tried again in the background
// until it is written or the server shuts down: until then the session
// stays open in the log, and so in the member lists, counts and presence
// built from it. One left at shutdown is closed at the next start, as a
// crash's sessions are (server_restart).
func (s *Server) recordEnd(client domain.Client, reason string, limit int) {
	s.metrics.disconnects.WithLabelValues(reason).Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := &domain.ClientDisconnected{App: client.App, Client: client.ID, Reason: reason}
	evs, err := s.store.Append(ctx, ev)
	if err != nil {
		s.log.Error("record disconnection", "app", client.App, "client", client.ID, "err", err)
		s.queueEnd(ev)
	}
	if s.hooks == nil {
		return
	}
	var applied func(context.Context)
	if err == nil {
		// onDisconnect reads the membership (subscribers, count), which
		// applies the end a little after its commit: the hook waits for
		// it, so that it no longer sees the client that left; only when
		// the app has one to run, for disconnectApplyBound at most
		// (ApplyTimeout, if lower), and not past Shutdown: then the hook
		// runs all the same, and may still see the client.
		seq := evs[0].Seq
		applied = func(ctx context.Context) {
			ctx, stop := context.WithCancel(ctx)
			defer stop()
			defer context.AfterFunc(s.closingCtx, stop)()
			if err := s.members.WaitAppliedWithin(ctx, seq, min(s.cfg.ApplyTimeout, disconnectApplyBound)); err != nil && s.closingCtx.Err() == nil {
				s.log.Warn("onDisconnect runs before the disconnection is applied", "app", client.App, "client", client.ID, "err", err)
			}
		}
	}
	run := func() {
		// A context of its own: the hook's wait for a run slot (up to
		// 15 s less the wait above, so 10 s at least) is not cut short
		// by the waits before it.
		hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second+disconnectApplyBound)
		defer hcancel()
		s.hooks.OnDisconnect(hctx, client, reason, applied)
	}
	// As many runs wait on their own as the app, and the server, may
	// have connections (connections once held them, one each): past
	// that, a connection runs its hook itself and holds its slot
	// meanwhile, so that clients connecting and leaving in a loop cannot
	// pile up runs in the app's queue, where its other hooks wait.
	s.mu.Lock()
	away := s.runsAway[client.App] < limit && s.runsAwayTotal < s.cfg.MaxConnections
	if away {
		s.runsAway[client.App]++
		s.runsAwayTotal++
		s.connWG.Add(1) // the caller's connection still holds its count
	}
	s.mu.Unlock()
	if !away {
		run()
		return
	}
	go func() {
		defer s.connWG.Done()
		defer func() {
			s.mu.Lock()
			if s.runsAway[client.App]--; s.runsAway[client.App] <= 0 {
				delete(s.runsAway, client.App)
			}
			s.runsAwayTotal--
			s.mu.Unlock()
		}()
		run()
	}()
}

// disconnectApplyBound bounds how long onDisconnect waits for its
// session's end to be applied (recordEnd).
const disconnectApplyBound = 5 * time.Second

// endRetryFirst and endRetryMost bound the waits between retries of the
// sessions' ends: doubling from the first to the most.
var endRetryFirst, endRetryMost = 100 * time.Millisecond, 5 * time.Second

// queueEnd adds ev to the ends that one goroutine writes again, all in
// one append: while the log cannot commit, thousands of clients may
// leave, and a goroutine each would try as many appends every few
// seconds.
func (s *Server) queueEnd(ev *domain.ClientDisconnected) {
	if s.closingCtx.Err() != nil {
		// The caller has just tried; the next start closes the session.
		s.log.Warn("disconnection not recorded before shutdown; the next start closes the session", "app", ev.App, "client", ev.Client)
		return
	}
	s.endsMu.Lock()
	defer s.endsMu.Unlock()
	s.ends = append(s.ends, ev)
	if !s.endsRetrying {
		s.endsRetrying = true
		s.connWG.Add(1) // the caller's connection still holds its count
		go s.retryEnds()
	}
}

// retryEnds writes the queued ends until they are all written or
// Shutdown begins.
func (s *Server) retryEnds() {
	defer s.connWG.Done()
	wait, tries := endRetryFirst, 1 // recordEnd's was the first
	for {
		select {
		case <-s.closingCtx.Done():
			s.endsMu.Lock()
			batch := s.ends
			s.ends, s.endsRetrying = nil, false
			s.endsMu.Unlock()
			// One last try: the log may take them now, as it takes the
			// ends of the connections the shutdown closes. (Once queued,
			// an append waits for its commit, whatever the context.)
			// (The batch is never empty: the goroutine runs only while
			// ends are queued.)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := s.store.Append(ctx, batch...)
			cancel()
			tries++
			if err == nil {
				s.log.Info("recorded disconnections", "sessions", len(batch), "tries", tries)
				return
			}
			s.log.Warn("disconnections not recorded before shutdown; the next start closes those sessions", "sessions", len(batch), "tries", tries, "err", err)
			return
		case <-time.After(wait):
		}
		s.endsMu.Lock()
		batch := s.ends
		s.ends = nil
		s.endsMu.Unlock()
		ctx, cancel := context.WithTimeout(s.closingCtx, 10*time.Second)
		_, err := s.store.Append(ctx, batch...)
		cancel()
		tries++
		s.endsMu.Lock()
		if err != nil {
			s.ends = append(batch, s.ends...)
			wait = min(2*wait, endRetryMost)
		} else {
			s.log.Info("recorded disconnections", "sessions", len(batch), "tries", tries)
			if len(s.ends) == 0 {
				s.endsRetrying = false
				s.endsMu.Unlock()
				return
			}
			wait, tries = endRetryFirst, 1 // the next batch's first try was recordEnd's
		}
		s.endsMu.Unlock()
	}
}

// readBufferSize is a connection's read buffer: clients send small
// frames; bigger ones are read in parts.
const readBufferSize = 512

// hijacker gives the upgrader a read buffer of the connection's own (the
// upgrader takes the hijacked reader when its ReadBufferSize is 0), so
// that the connection can see whether a frame is buffered.
//
// It also holds back the upgrader's first write, the handshake's response
// (101 Switching Protocols), for the connection to send in one write with
// `connected`, once the session is recorded: that saves a socket write per
// connect, and a client never holds an open WebSocket that the server
// has yet to record.
type hijacker struct {
	http.ResponseWriter
	nc   net.Conn
	br   *bufio.Reader
	held *heldConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("websocket: response does not implement http.Hijacker")
	}
	nc, brw, err := hj.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // the upgrader refuses early data itself
	}
	h.nc = unwrap(nc)
	// The listener's reader is the connection's own (Server.Listener);
	// net/http's is bigger, and is not kept.
	if _, ours := h.ResponseWriter.(*upgradeResponse); ours {
		h.br = brw.Reader
	} else {
		h.br = bufio.NewReaderSize(h.nc, readBufferSize)
	}
	// The upgraded connection keeps what this returns for its life: not
	// the hijacker, which refers to net/http's buffers through the
	// ResponseWriter.
	h.held = &heldConn{Conn: h.nc}
	return h.held, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// heldConn is the connection as the upgrader sees it. Nothing gorilla
// writes goes to the socket, where it could land inside a frame that a
// flusher or the connection's writer is sending: its first write, the
// handshake's response, is kept for a writer to send before any frame;
// the only later one is gorilla's answer to a frame it cannot read, a
// close, which becomes the connection's own close (closeFn) for its
// writer to send in turn.
type heldConn struct {
	net.Conn
	kept bool
	// handshake is the kept write until a writer takes it, under the
	// connection's lock (conn.mu), and sends it before any frame.
	handshake []byte
	// closeFn closes the connection with a code and text. Set before
	// the connection reads, so before gorilla can write a close.
	closeFn func(code int, text string)
}

// SetWriteDeadline is gorilla's, around its writes, which never reach the
// socket: ignored, so that it does not touch the deadline the
// connection's writers use.
func (c *heldConn) SetWriteDeadline(time.Time) error { return nil }

func (c *heldConn) Write(p []byte) (int, error) {
	if !c.kept {
		c.kept = true
		c.handshake = append([]byte(nil), p...)
		return len(p), nil
	}
	if code, text, ok := parseClose(p); ok && c.closeFn != nil {
		c.closeFn(code, text)
	}
	return len(p), nil
}

// parseClose reads a close frame as gorilla writes one, unmasked and in
// one piece: its code and text.
func parseClose(p []byte) (code int, text string, ok bool) {
	if len(p) < 2 || p[0] != 0x80|opClose || p[1]&0x80 != 0 || int(p[1]) != len(p)-2 {
		return 0, "", false
	}
	body := p[2:]
	if len(body) < 2 {
		// Without a code: not gorilla's answer to a bad frame, and 1005
		// may not be sent. The reader's error ends the connection.
		return 0, "", false
	}
	return int(binary.BigEndian.Uint16(body)), string(body[2:]), true
}

// nextFlusher returns the flusher for a new connection, in turn; nil
// where the server has none (rawWrites), and the connection writes from
// its own goroutine.
func (s *Server) nextFlusher() *flusher {
	if len(s.flushers) == 0 {
		return nil
	}
	return s.flushers[int(s.nextFl.Add(1))%len(s.flushers)]
}

// reserve counts a new connection against the server's and the app's
// limits; the error says which is full. A refusal by a limit is counted
// in /metrics (fazt_limit_refusals_total{limit="connections"}).
func (s *Server) reserve(app *apps.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return domain.Errorf(domain.CodeUnavailable, "server is shutting down")
	}
	if s.total >= s.cfg.MaxConnections {
		s.metrics.refused("connections")
		return domain.Errorf(domain.CodeUnavailable, "server has its maximum of %d connections", s.cfg.MaxConnections)
	}
	if max := app.Settings.Limits.MaxConnections; s.perApp[app.Name] >= max {
		s.metrics.refused("connections")
		return domain.Errorf(domain.CodeUnavailable, "app %s has its maximum of %d connections", app.Name, max)
	}
	s.perApp[app.Name]++
	s.total++
	// Counted until released: Shutdown waits for a connection being set
	// up, whose events must reach the log before it closes, as for an open
	// one.
	s.connWG.Add(1)
	return nil
}

// refuse answers an upgrade that a limit refuses: the WebSocket is opened
// only to say why, in a disconnect frame with close code 4002, since a
// browser cannot read the status of a failed upgrade.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	ws, uerr := s.upgrader.Upgrade(w, r, nil)
	if uerr != nil {
		return
	}
	defer ws.Close()
	raw := ws.UnderlyingConn()
	buf := appendDisconnect(nil, 4002, err.Error())
	raw.SetWriteDeadline(time.Now().Add(time.Second))
	raw.Write(buf)
}

// release undoes reserve.
func (s *Server) release(app string) {
	s.mu.Lock()
	s.total--
	s.perApp[app]--
	if s.perApp[app] <= 0 {
		delete(s.perApp, app)
	}
	s.mu.Unlock()
	s.connWG.Done()
}

func (s *Server) track(c *conn) bool {
	s.metrics.accepted.Inc()
	s.metrics.open.Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = struct{}{}
	return !s.closing
}

func (s *Server) untrack(c *conn) {
	s.metrics.open.Dec()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.release(c.app.Name) // and Shutdown's count
}

// Shutdown tells every client the server is going away (disconnect, close
// code 1001), waits until each connection, and each one still being set
// up, has recorded its ClientDisconnected event and closed its socket
// (up to Config.CloseLinger after its close, for a client that does not
// answer), or ctx ends, and refuses new connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.stopSetup()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.disconnect(domain.ReasonServerShutdown, websocket.CloseGoingAway, "server shutdown", true)
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		s.stopBase()
		return nil
	case <-ctx.Done():
		s.stopBase()
		return ctx.Err()
	}
}

// checkOrigin allows requests without an Origin (non-browser clients) and,
// when the app lists allowed origins, browsers whose origin matches one
// exactly by scheme and host.
func checkOrigin(r *http.Request, allowed []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" || len(allowed) == 0 {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return domain.Errorf(domain.CodeNotAllowed, "origin %q is not a URL", origin)
	}
	for _, a := range allowed {
		au, err := url.Parse(a)
		if err == nil && strings.EqualFold(au.Scheme, u.Scheme) && strings.EqualFold(au.Host, u.Host) {
			return nil
		}
	}
	return domain.Errorf(domain.CodeNotAllowed, "origin %s is not allowed for this app", origin)
}

func httpError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(domain.CodeOf(err).HTTPStatus())
	w.Write(mustJSON(struct {
		Error string      `json:"error"`
		Code  domain.Code `json:"code"`
	}{err.Error(), domain.CodeOf(err)}))
}

// errVersion is checkUpgrade's refusal of the upgrade's version.
var errVersion = domain.Errorf(domain.CodeBadRequest, "Sec-WebSocket-Version must be 13")

// checkUpgrade refuses a request to /_ws that is not a WebSocket upgrade
// the upgrader takes (RFC 6455, 4.2.1).
func checkUpgrade(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet:
		return domain.Errorf(domain.CodeMethodNotAllowed, "%s /_ws: a WebSocket upgrade is a GET", r.Method)
	case !websocket.IsWebSocketUpgrade(r):
		return domain.Errorf(domain.CodeBadRequest, "/_ws takes WebSocket upgrades only (Connection: Upgrade, Upgrade: websocket)")
	case !slices.ContainsFunc(r.Header.Values("Sec-WebSocket-Version"), func(v string) bool {
		return slices.ContainsFunc(strings.Split(v, ","), func(t string) bool { return strings.TrimSpace(t) == "13" })
	}):
		return errVersion
	}
	if key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key")); err != nil || len(key) != 16 {
		return domain.Errorf(domain.CodeBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return nil
}

// maxConnectRecord caps the bytes of a connection's query, User-Agent and
// Origin together, all of which its client.connected.v1 event records:
// a browser's come to a few hundred, a token in the query to a few
// thousand. Without it a request's head (up to 1 MiB) went into the log
// whole, for every connection anyone opened.
const maxConnectRecord = 8 << 10

// newClientID returns a unique client id: the time in milliseconds (6
// bytes) and 8 random bytes, in hex. Ids made later sort later, so the
// log's and the projections' indexes by client take new connections at
// their right edge, one page per commit, instead of one random page each.
func newClientID() string {
	var b [14]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// redactQuery returns q as the log records it: the value of a parameter
// whose name says it carries a credential (isSecretParam) is replaced,
// so that a token in a WebSocket URL is not kept in the audit trail for
// good. Hooks see the query as sent.
func redactQuery(q map[string]string) map[string]string {
	var out map[string]string
	for k := range q {
		if isSecretParam(k) {
			if out == nil {
				out = maps.Clone(q)
			}
			out[k] = redacted
		}
	}
	if out == nil {
		return q
	}
	return out
}

// redacted stands for a credential's value in the log.
const redacted = "[redacted]"

// isSecretParam reports whether a query parameter's name may carry a
// credential: its lower-cased form holds one of secretStems anywhere,
// and is not, whole, one of harmlessNames. Matching inside words errs
// toward hiding: a harmless value redacted costs the audit a detail,
// a credential missed stays in the log, readable by app keys, for
// good; and names that hold one are run together (authtoken,
// APIToken, token1, clientsecret) as often as split. So design and
// keyboard are redacted too.
func isSecretParam(name string) bool {
	n := strings.ToLower(name)
	if harmlessNames[n] {
		return false
	}
	for _, s := range secretStems {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// secretStems mark a credential wherever they sit in a parameter's
// name: pass covers password, passwd and passcode, pw pwd and user_pw,
// key apikey, auth authorization and oauth, sig signature, sess session
// and PHPSESSID, sid the session ids named so, cred credentials and
// creds, code an OAuth authorization code.
var secretStems = []string{
	"token", "secret", "pass", "pw", "key", "auth", "jwt", "sig", "sess", "sid",
	"cred", "bearer", "otp", "code", "cookie", "ticket", "nonce", "hmac",
}

// harmlessNames are whole names, lower-cased, that hold a stem but
// carry no credential, and that an app's URL is likely to have: a
// chat's author, an LLM stream's max_tokens, the name of an OAuth
// provider or authority (a URL, not a secret). Only the name exactly:
// author_token or maxTokenSecret is redacted.
var harmlessNames = map[string]bool{
	"author": true, "authority": true, "max_tokens": true, "oauth_provider": true,
}

func flatten(q url.Values) map[string]string {
	if len(q) == 0 {
		return nil
	}
	out := make(map[string]string, len(q))
	for k, v := range q {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}
