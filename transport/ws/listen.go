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
	"sync"
	"time"
)

// Listener returns ln with the WebSocket upgrades to path taken off it:
// a connection whose first request is a GET of path is served here, by
// ServeHTTP, and every other connection is returned by the listener's
// Accept, with what was read of it, for an http.Server to serve (a later
// request of that connection to path is upgraded there, as before).
//
// net/http gives each connection a goroutine, two 4 KiB buffers and a
// cancellable context, all dropped at the upgrade: a third of what a
// connect allocated, and the goroutine grew its stack afresh each time.
// Here the request is read into the connection's own read buffer, by one
// of the readers' workers, whose stacks have grown already.
//
// headerTimeout bounds the wait for the request's headers, as the
// http.Server's ReadHeaderTimeout does for the others, and the headers
// are capped at net/http's default of 1 MiB. The listener is for plain
// TCP: behind TLS the first bytes are a handshake, and every connection
// would go to the http.Server.
func (s *Server) Listener(ln net.Listener, path string, headerTimeout time.Duration) net.Listener {
	l := &upgradeListener{
		Listener: ln, s: s, headerTimeout: headerTimeout,
		prefix: []byte("GET " + path),
		conns:  make(chan net.Conn),
		errc:   make(chan error),
		done:   make(chan struct{}),
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
	errc          chan error
	done          chan struct{}
	once          sync.Once
}

// maxUpgradeHeader caps the bytes of an upgrade request, as net/http's
// DefaultMaxHeaderBytes does for other requests.
const maxUpgradeHeader = http.DefaultMaxHeaderBytes

func (l *upgradeListener) accept() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// The error goes to the http.Server, which backs off and asks
			// again after a temporary one, and stops after any other.
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if !isTemporary(err) {
				return
			}
			continue
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
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *upgradeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// sniff reads the start of c's first request: an upgrade to the path is
// served here, anything else goes to the http.Server with what was read.
func (l *upgradeListener) sniff(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(l.headerTimeout))
	cr := &capReader{r: c, left: maxUpgradeHeader}
	br := bufio.NewReaderSize(cr, readBufferSize)
	start, err := br.Peek(len(l.prefix) + 1)
	if err != nil {
		// Closed or timed out within fewer bytes than the shortest
		// request line: nothing to answer.
		c.Close()
		return
	}
	if bytes.HasPrefix(start, l.prefix) && (start[len(l.prefix)] == ' ' || start[len(l.prefix)] == '?') {
		l.upgrade(c, cr, br)
		return
	}
	cr.left = -1
	select {
	case l.conns <- &sniffedConn{Conn: c, br: br}:
	case <-l.done:
		c.Close()
	}
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
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errHeaderTooLarge) {
			code = http.StatusRequestHeaderFieldsTooLarge
		}
		var ne net.Error
		if !errors.Is(err, io.EOF) && !(errors.As(err, &ne) && ne.Timeout()) {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			http.Error(w, strconv.Itoa(code)+" "+http.StatusText(code), code)
			w.finish()
		}
		return
	}
	cr.left = -1
	c.SetReadDeadline(time.Time{})
	req.RemoteAddr = c.RemoteAddr().String()
	// The request's context ends with the server (net/http's would also
	// end if the client left while the handler ran; ServeHTTP bounds its
	// waits itself).
	l.s.ServeHTTP(w, req.WithContext(l.s.baseCtx))
	if !w.hijacked {
		w.finish()
	}
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
	return nil
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
	if cw, ok := w.c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		w.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(w.c, 256<<10))
	}
}
