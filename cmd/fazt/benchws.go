package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	bin "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// benchWS is the bench tool's own WebSocket client, for its subscribers:
// near a million deliveries a second the tool itself needs a whole core,
// so its reader parses frames in place from one buffered reader and hands
// back a view of the payload, with no copy and no allocation per frame.
// It speaks what a Fazt server sends: unmasked frames from the server,
// masked ones from the client (RFC 6455); it answers pings and reads
// fragmented messages, which the server does not send.
type benchWS struct {
	conn  net.Conn
	br    *bufio.Reader
	stamp arrivalReader // under br where the system gives receive times
	skip  int           // bytes of the last payload handed out, still in br
	frag  []byte        // a fragmented message being assembled

	wmu  sync.Mutex
	wbuf []byte
	raw  rawSocket // once a poller reads the connection (under wmu)
	// closeSent: a close frame went out, the last frame (under wmu)
	closeSent bool
}

// rawSocket is a connection's socket once a poller reads it: conn, which
// Go's own poller watched, is closed by then.
type rawSocket interface {
	write(b []byte) error
	shutdown() // both ways; the poller then sees the end and closes it
}

// wsOp are the frame opcodes the client handles.
const (
	wsCont  = 0x0
	wsText  = 0x1
	wsClose = 0x8
	wsPing  = 0x9
	wsPong  = 0xa
)

// arrivalReader reads a connection and tells when the kernel received
// the data of its last read (unix nanos, 0 if unknown): for the message
// next returned last, that time or a later one, never an earlier one.
type arrivalReader interface {
	io.Reader
	arrival() int64
}

// errWSClosed is what next returns after the server's close frame.
var errWSClosed = errors.New("websocket closed by the server")

// dialBenchWS opens a WebSocket to wsURL with the given Host header and a
// read buffer of readBuf bytes; with stamp, it reads the kernel's receive
// times too, where the system gives them (arrival).
func dialBenchWS(ctx context.Context, wsURL, host string, readBuf int, stamp bool) (*benchWS, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	conn.SetDeadline(deadline)
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		return nil, err
	}
	var r io.Reader = conn
	var stamps arrivalReader
	if stamp {
		if stamps = newRxStamp(conn); stamps != nil {
			r = stamps
		}
	}
	br := bufio.NewReaderSize(r, readBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, errors.New("handshake: wrong Sec-WebSocket-Accept")
	}
	conn.SetDeadline(time.Time{})
	return &benchWS{conn: conn, br: br, stamp: stamps}, nil
}

// frameHeader reads the header of a frame from the server at the start of
// h: its opcode, whether it is a message's last frame, the header's
// length hl and the payload's n. With h shorter than the header, n is -1
// and hl is the length the header needs.
func frameHeader(h []byte) (fin bool, op byte, hl, n int, err error) {
	if len(h) < 2 {
		return false, 0, 2, -1, nil
	}
	if h[1]&0x80 != 0 {
		return false, 0, 0, 0, errors.New("masked frame from the server")
	}
	fin, op, n, hl = h[0]&0x80 != 0, h[0]&0x0f, int(h[1]&0x7f), 2
	switch n {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if len(h) < hl {
		return fin, op, hl, -1, nil
	}
	switch hl {
	case 4:
		n = int(bin.BigEndian.Uint16(h[2:]))
	case 10:
		v := bin.BigEndian.Uint64(h[2:])
		if v > 1<<30 {
			return fin, op, hl, 0, fmt.Errorf("frame of %d bytes", v)
		}
		n = int(v)
	}
	return fin, op, hl, n, nil
}

// next returns the next text message. The payload is valid until the next
// call. Pings are answered and pongs skipped; a close frame ends it with
// errWSClosed.
func (c *benchWS) next() ([]byte, error) {
	for {
		if c.skip > 0 {
			c.br.Discard(c.skip)
			c.skip = 0
		}
		h, err := c.br.Peek(2)
		if err != nil {
			return nil, err
		}
		fin, op, hl, n, err := frameHeader(h)
		if err == nil && n < 0 {
			if h, err = c.br.Peek(hl); err != nil {
				return nil, err
			}
			fin, op, hl, n, err = frameHeader(h)
		}
		if err != nil {
			return nil, err
		}
		c.br.Discard(hl)
		var p []byte
		if n <= c.br.Size() {
			if p, err = c.br.Peek(n); err != nil {
				return nil, err
			}
			c.skip = n
		} else {
			p = make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return nil, err
			}
		}
		msg, done, err := c.frame(fin, op, p)
		if err != nil || done {
			return msg, err
		}
	}
}

// frame takes one frame's payload p: a text message once its last frame
// is in (done), nothing for a control frame (a ping is answered), and
// errWSClosed for a close frame.
func (c *benchWS) frame(fin bool, op byte, p []byte) (msg []byte, done bool, err error) {
	switch op {
	case wsPing:
		c.write(wsPong, p)
	case wsPong:
	case wsClose:
		c.write(wsClose, []byte{0x03, 0xe8}) // answered, as a client does
		return nil, false, errWSClosed
	case wsText, wsCont:
		if fin && c.frag == nil {
			return p, true, nil
		}
		c.frag = append(c.frag, p...)
		if fin {
			p, c.frag = c.frag, nil
			return p, true, nil
		}
	default:
		return nil, false, fmt.Errorf("unexpected opcode %d", op)
	}
	return nil, false, nil
}

// write sends one masked frame.
func (c *benchWS) write(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	c.closeSent = op == wsClose
	b := append(c.wbuf[:0], 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = bin.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	if c.raw != nil {
		return c.raw.write(b)
	}
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

// writeText sends a text message.
func (c *benchWS) writeText(s string) error { return c.write(wsText, []byte(s)) }

// close sends a normal close frame, unless one was sent, and closes the
// connection; a poller's connection is shut down, and its poller closes
// it.
func (c *benchWS) close() {
	c.write(wsClose, []byte{0x03, 0xe8}) // 1000
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.raw != nil {
		c.raw.shutdown()
		return
	}
	c.conn.Close()
}
