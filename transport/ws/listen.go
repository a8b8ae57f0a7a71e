package ws

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Listener returns ln with the WebSocket upgrades to path taken off it:
// a connection whose first request is a GET of path is served here, by
// ServeHTTP, and every other connection is returned by the listener's
// Accept, with what was read of it, for an http.Server to serve (a later
// request of that connection to path is upgraded there, as before).
//
// net/http gives each connection a goroutine, two 4 KiB buffers and a
// cancellable context, all dropped at the upgrade: the buffers were a
// quarter of what a connect allocated (BENCHMARKS.md), and the goroutine
// grew its stack afresh each time. Here the request is read into the
// connection's own read buffer, by one of the readers' workers, whose
// stacks have grown already.
//
// The request is held to net/http's rules: a Host header (HTTP/1.1), a
// valid one, HTTP/1.x, no Expect but 100-continue, and headers within
// net/http's default cap (1 MiB, and its 4 KiB of slack). headerTimeout
// (none when 0) bounds the wait for the headers, as the http.Server's
// ReadHeaderTimeout does, and the wait for the first bytes of every
// connection; a connection passed on then gets the http.Server's own,
// but no later than the listener's for its first request's headers. A
// request that is not upgraded is answered with the connection closed
// after it. The request's context ends with the server, not when the
// client leaves.
//
// Closing the listener closes the connections whose first request is
// still being read. The listener is for plain TCP: behind TLS the first
// bytes are a handshake, and every connection would go to the
// http.Server.
func (s *Server) Listener(ln net.Listener, path string, headerTimeout time.Duration) net.Listener {
	l := &upgradeListener{
		Listener: ln, s: s, headerTimeout: headerTimeout,
		prefix:  []byte("GET " + path),
		conns:   make(chan net.Conn),
		errc:    make(chan error),
		done:    make(chan struct{}),
		failed:  make(chan struct{}),
		reading: map[net.Conn]struct{}{},
	}
	go l.accept()
	return l
}

type upgradeListener struct {
	net.Listener
	s             *Server
	headerTimeout time.Duration
	prefix        []byte // "GET /_ws"
	conns         chan net.Conn
	errc          chan error    // a temporary error of ln's Accept
	failed        chan struct{} // closed once ln's Accept has failed for good, with err
	err           error
	done          chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	reading map[net.Conn]struct{} // the connections whose first request is being read
}

// maxUpgradeHeader caps the bytes of an upgrade request, as net/http's
// DefaultMaxHeaderBytes does for other requests, with the 4 KiB that its
// reader buffers past that cap.
const maxUpgradeHeader = http.DefaultMaxHeaderBytes + 4096

func (l *upgradeListener) accept() {
	for {
		c, err := l.Listener.Accept()
		if err != nil && isTemporary(err) {
			// The http.Server backs off before it asks again.
			select {
			case l.errc <- err:
				continue
			case <-l.done:
				return
			}
		}
		if err != nil {
			l.err = err
			close(l.failed)
			return
		}
		if !l.track(c) {
			c.Close()
			return
		}
		l.s.workers.run(func() { l.sniff(c) })
	}
}

// isTemporary is what net/http's Serve retries after (EMFILE, say).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (l *upgradeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.failed:
		return nil, l.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the connections whose first request is
// still being read.
func (l *upgradeListener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
		for c := range l.reading {
			c.Close()
		}
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// track counts c as being read, unless the listener is closed.
func (l *upgradeListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

// untrack ends the reading of c's first request, and reports whether the
// listener is still open.
func (l *upgradeListener) untrack(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.reading, c)
	return !l.closed
}

// sniff reads the start of c's first request: an upgrade to the path is
// served here, anything else goes to the http.Server with what was read,
// as soon as the bytes in differ from a GET of the path.
func (l *upgradeListener) sniff(c net.Conn) {
	var deadline time.Time
	if l.headerTimeout > 0 {
		deadline = time.Now().Add(l.headerTimeout)
		c.SetReadDeadline(deadline)
	}
	cr := &capReader{r: c, left: maxUpgradeHeader}
	br := bufio.NewReaderSize(cr, readBufferSize)
	for n := 1; ; {
		start, err := br.Peek(n)
		if err != nil {
			// Closed or timed out before a request line: nothing to
			// answer, as net/http does.
			l.untrack(c)
			c.Close()
			return
		}
		if !l.upgradeStart(start) {
			break
		}
		if len(start) > len(l.prefix) {
			l.upgrade(c, cr, br)
			return
		}
		n = min(max(br.Buffered(), n+1), len(l.prefix)+1)
	}
	cr.left = -1
	if !l.untrack(c) {
		c.Close()
		return
	}
	// The http.Server sets its own deadline, if it has a timeout (held
	// to this one: see sniffedConn.SetReadDeadline).
	c.SetReadDeadline(time.Time{})
	sc := &sniffedConn{Conn: c, br: br}
	if !deadline.IsZero() {
		sc.headers.Store(&deadline)
	}
	select {
	case l.conns <- sc:
	case <-l.done:
		c.Close()
	}
}

// upgradeStart reports whether b can start a GET of the path: the prefix,
// then a space or a query.
func (l *upgradeListener) upgradeStart(b []byte) bool {
	n := min(len(b), len(l.prefix))
	if !bytes.Equal(b[:n], l.prefix[:n]) {
		return false
	}
	return len(b) == n || b[n] == ' ' || b[n] == '?'
}

// upgrade serves the request that br starts, as the http.Server would: a
// panic is logged and ends the connection, not the process.
func (l *upgradeListener) upgrade(c net.Conn, cr *capReader, br *bufio.Reader) {
	w := &upgradeResponse{c: c, br: br, header: http.Header{}}
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			l.s.log.Error("panic serving a WebSocket upgrade", "remote", c.RemoteAddr().String(), "panic", p, "stack", string(debug.Stack()))
		}
		if !w.hijacked {
			c.Close()
		}
	}()
	req, err := http.ReadRequest(br)
	open := l.untrack(c)
	code := http.StatusBadRequest
	switch {
	case err != nil:
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout() || !open {
			return // nothing to answer
		}
		if errors.Is(err, errHeaderTooLarge) {
			code = http.StatusRequestHeaderFieldsTooLarge
		}
	case !open:
		return
	case req.ProtoMajor != 1:
		code = http.StatusHTTPVersionNotSupported
	case req.ProtoAtLeast(1, 1) && req.Host == "", !validHost(req.Host):
		// ReadRequest moves the header to req.Host: an empty one is taken
		// as none (net/http lets an empty one through).
	case req.Header.Get("Expect") != "" && !strings.EqualFold(req.Header.Get("Expect"), "100-continue"):
		code = http.StatusExpectationFailed
	default:
		code = 0
	}
	if code != 0 {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		http.Error(w, strconv.Itoa(code)+" "+http.StatusText(code), code)
		w.finish()
		return
	}
	cr.left = -1
	c.SetReadDeadline(time.Time{})
	req.RemoteAddr = l.s.cfg.Proxies.Client(c.RemoteAddr().String(), req.Header)
	l.s.ServeHTTP(w, req.WithContext(l.s.baseCtx))
	if !w.hijacked {
		w.finish()
	}
}

// validHost reports whether h is a valid Host header: the characters of a
// host name, an IP address (in brackets for IPv6) and a port (RFC 3986,
// section 3.2.2, and percent-encoding), as net/http accepts.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:[]%", b) >= 0:
		default:
			return false
		}
	}
	return true
}

var errHeaderTooLarge = errors.New("request headers too large")

// capReader reads from r until left bytes are read (unless left is
// negative), then fails.
type capReader struct {
	r    io.Reader
	left int
}

func (r *capReader) Read(p []byte) (int, error) {
	if r.left < 0 {
		return r.r.Read(p)
	}
	if r.left == 0 {
		return 0, errHeaderTooLarge
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= n
	return n, err
}

// sniffedConn is a connection whose first bytes are in br.
type sniffedConn struct {
	net.Conn
	br *bufio.Reader
	// headers is the listener's deadline for the first request's headers,
	// until the http.Server sets its own; nil for none.
	headers atomic.Pointer[time.Time]
}

// SetReadDeadline is the connection's, but the first deadline the
// http.Server sets, the one for the first request's headers, is no later
// than the listener's: the time the listener spent reading the request's
// first bytes counts against the header timeout, as it would have had the
// http.Server read them, so a client that trickles them is not given the
// timeout twice. An http.Server without a timeout sets none.
func (c *sniffedConn) SetReadDeadline(t time.Time) error {
	if d := c.headers.Swap(nil); d != nil && !t.IsZero() && t.After(*d) {
		t = *d
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *sniffedConn) Read(p []byte) (int, error) {
	if c.br.Buffered() > 0 {
		return c.br.Read(p)
	}
	return c.Conn.Read(p)
}

// ReadFrom and CloseWrite are the TCP connection's, which net/http uses
// when the connection has them: to send a file with sendfile(2), and to
// close a connection gracefully after a bad request.
func (c *sniffedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *sniffedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// unwrap returns the connection under c once nothing read is left in br,
// for a later request of c upgraded by the http.Server.
func unwrap(nc net.Conn) net.Conn {
	if c, ok := nc.(*sniffedConn); ok && c.br.Buffered() == 0 {
		return c.Conn
	}
	return nc
}

// upgradeResponse is the http.ResponseWriter of an upgrade served by the
// listener: the upgrader hijacks it, and a refusal is written whole, with
// the connection closed after it.
type upgradeResponse struct {
	c        net.Conn
	br       *bufio.Reader
	header   http.Header
	code     int
	body     bytes.Buffer
	hijacked bool
}

func (w *upgradeResponse) Header() http.Header { return w.header }

func (w *upgradeResponse) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *upgradeResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *upgradeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	return w.c, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.c, 256)), nil
}

// finish writes the response of a request that was not upgraded.
func (w *upgradeResponse) finish() {
	w.WriteHeader(http.StatusOK)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", w.code, http.StatusText(w.code))
	w.header.Del("Content-Length")
	w.header.Set("Connection", "close")
	w.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	w.header.Write(&b)
	b.WriteString("Content-Length: " + strconv.Itoa(w.body.Len()) + "\r\n\r\n")
	b.Write(w.body.Bytes())
	w.c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := w.c.Write(b.Bytes()); err != nil {
		return
	}
	// Closing a socket with unread input resets it, and the client may
	// lose the answer: say that nothing more comes, and read what the
	// client still sends, a little and briefly, as net/http does.
	if halfClose(w.c) {
		w.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(w.c, 256<<10))
	}
}
