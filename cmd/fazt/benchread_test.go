package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	bin "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// serverFrame is an unmasked frame as a server sends it.
func serverFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = bin.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// messageFrame is a `message` text frame for offset off, padded to pad
// bytes of data.
func messageFrame(off int, pad int) []byte {
	return serverFrame(wsText, true, fmt.Appendf(nil, `{"type":"message","channel":"room","offset":%d,"data":"%s"}`, off, strings.Repeat("x", pad)))
}

// readClientFrame reads one masked frame from the client.
func readClientFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("unmasked frame from the client")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = int(bin.BigEndian.Uint16(l[:]))
	case 127:
		return 0, nil, errors.New("frame too long for the test")
	}
	var mask [4]byte
	if _, err := io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return h[0] & 0x0f, payload, nil
}

// fakeSubscribed connects the tool's client to a server played by the
// test over loopback: it answers the upgrade and the subscribe as Fazt
// does, sending held in the same write as `subscribed`, and returns the
// subscribed connection (a read buffer of readBuf bytes) and the server's
// end of it.
func fakeSubscribed(t *testing.T, readBuf int, held []byte) (*benchConn, net.Conn, *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		conn net.Conn
		br   *bufio.Reader
		err  error
	}
	done := make(chan accepted, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- accepted{err: err}
			return
		}
		fail := func(err error) { conn.Close(); done <- accepted{err: err} }
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			fail(err)
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		answer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
		out := append([]byte(answer), serverFrame(wsText, true, []byte(`{"type":"connected","client":"c1"}`))...)
		if _, err := conn.Write(out); err != nil {
			fail(err)
			return
		}
		if op, p, err := readClientFrame(br); err != nil || op != wsText || !strings.Contains(string(p), `"type":"subscribe"`) {
			fail(fmt.Errorf("subscribe: op %d %q %v", op, p, err))
			return
		}
		out = append(serverFrame(wsText, true, []byte(`{"type":"subscribed","channel":"room","offset":0}`)), held...)
		if _, err := conn.Write(out); err != nil {
			fail(err)
			return
		}
		conn.SetDeadline(time.Time{})
		done <- accepted{conn: conn, br: br}
	}()
	o := &benchOptions{wsURL: "ws://" + ln.Addr().String() + "/_ws", host: "default"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bc, err := o.dialSubscribe(ctx, readBuf, "room", "", false)
	a := <-done
	if err != nil || a.err != nil {
		t.Fatalf("client: %v; server: %v", err, a.err)
	}
	t.Cleanup(func() { bc.close(); a.conn.Close() })
	a.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard against a hang
	return bc, a.conn, a.br
}

// startReading starts bc's reader and checks that, on Linux and unless a
// test turned them off, a poller took it: otherwise the pollers' half of
// bothReaders would test the goroutine reader twice.
func startReading(t *testing.T, bc *benchConn) {
	t.Helper()
	bc.startReader(nil)
	bc.ws.wmu.Lock()
	polled := bc.ws.raw != nil
	bc.ws.wmu.Unlock()
	if want := usePollers && runtime.GOOS == "linux"; polled != want {
		t.Fatalf("read by a poller: %v, want %v", polled, want)
	}
}

// bothReaders runs test with the subscribers read by pollers, where the
// system has them, through io_uring where it has that and with read(2),
// and by a goroutine each.
func bothReaders(t *testing.T, test func(t *testing.T)) {
	t.Run("pollers", test)
	t.Run("pollers-read", func(t *testing.T) {
		usePollerRing(false)
		defer usePollerRing(true)
		test(t)
	})
	t.Run("goroutines", func(t *testing.T) {
		usePollers = false
		defer func() { usePollers = true }()
		test(t)
	})
}

// waitReader waits for bc's reader to end, for ten seconds at most (a
// guard against a hang, not a measure).
func waitReader(t *testing.T, bc *benchConn) {
	t.Helper()
	select {
	case <-bc.readerEnd:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end")
	}
}

// A subscriber's reader takes frames however the socket splits them: those
// that came with `subscribed`, one a byte at a time, one larger than its
// buffer, a fragmented message, and control frames between. It counts
// duplicates and frames out of order, answers pings at both levels, and
// ends, with the reason kept, at the server's close frame.
func TestSubscriberReadsWhateverTheSocketSplits(t *testing.T) {
	bothReaders(t, testSubscriberReads)
}

func testSubscriberReads(t *testing.T) {
	held := append(messageFrame(1, 0), messageFrame(2, 0)...)
	held = append(held, messageFrame(3, 0)[:7]...) // and the start of the next
	bc, srv, br := fakeSubscribed(t, 64, held)
	startReading(t, bc)

	send := func(b []byte) {
		t.Helper()
		if _, err := srv.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send(messageFrame(3, 0)[7:])
	for _, b := range messageFrame(4, 0) { // a byte at a time
		send([]byte{b})
		time.Sleep(100 * time.Microsecond)
	}
	big := messageFrame(5, 300) // over the 64-byte buffer, with a 16-bit length
	send(big[:3])
	time.Sleep(time.Millisecond)
	send(big[3:])
	send(serverFrame(wsPing, true, []byte("hi")))
	if op, p, err := readClientFrame(br); err != nil || op != wsPong || string(p) != "hi" {
		t.Fatalf("pong: op %d %q %v", op, p, err)
	}
	six := []byte(`{"type":"message","channel":"room","offset":6,"data":"split"}`)
	send(serverFrame(wsText, false, six[:20]))
	send(serverFrame(wsPing, true, []byte("in between")))
	if op, p, err := readClientFrame(br); err != nil || op != wsPong || string(p) != "in between" {
		t.Fatalf("pong between fragments: op %d %q %v", op, p, err)
	}
	send(serverFrame(wsCont, true, six[20:]))
	send(serverFrame(wsText, true, []byte(`{"type":"ping"}`)))
	if op, p, err := readClientFrame(br); err != nil || op != wsText || string(p) != `{"type":"pong"}` {
		t.Fatalf("app pong: op %d %q %v", op, p, err)
	}
	send(append(append(messageFrame(7, 0), messageFrame(6, 0)...), append(messageFrame(9, 0), messageFrame(8, 0)...)...))
	send(serverFrame(wsClose, true, []byte{0x03, 0xe8}))
	waitReader(t, bc)

	if !errors.Is(bc.err, errWSClosed) {
		t.Errorf("reader ended with %v, want %v", bc.err, errWSClosed)
	}
	if op, p, err := readClientFrame(br); err != nil || op != wsClose || len(p) != 2 || bin.BigEndian.Uint16(p) != 1000 {
		t.Errorf("close frame answered: op %d %x %v", op, p, err)
	}
	if bc.recv.Load() != 10 || bc.distinct != 9 || bc.dup != 1 || bc.ooo != 1 || bc.missing(1, 9) != 0 {
		t.Errorf("recv %d distinct %d dup %d ooo %d missing %d; want 10, 9, 1, 1, 0",
			bc.recv.Load(), bc.distinct, bc.dup, bc.ooo, bc.missing(1, 9))
	}
}

// Closing a subscriber sends the server a close frame and ends its
// reader, with no error: the tool ended it.
func TestSubscriberCloseEndsItsReader(t *testing.T) {
	bothReaders(t, testSubscriberClose)
}

func testSubscriberClose(t *testing.T) {
	bc, _, br := fakeSubscribed(t, 1<<10, messageFrame(1, 0))
	startReading(t, bc)
	bc.close()
	waitReader(t, bc)
	if bc.err != nil {
		t.Errorf("reader ended with %v", bc.err)
	}
	if bc.distinct != 1 {
		t.Errorf("%d messages read; want the one that came with subscribed", bc.distinct)
	}
	if op, p, err := readClientFrame(br); err != nil || op != wsClose || len(p) != 2 || bin.BigEndian.Uint16(p) != 1000 {
		t.Fatalf("close frame: op %d %x %v", op, p, err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the close frame: %v, want EOF", err)
	}
}

// A server that goes away without a close frame ends the reader with an
// error.
func TestSubscriberSeesTheServerGo(t *testing.T) {
	bothReaders(t, testServerGone)
}

func testServerGone(t *testing.T) {
	bc, srv, _ := fakeSubscribed(t, 1<<10, nil)
	startReading(t, bc)
	srv.Write(messageFrame(1, 0)[:5])
	srv.Close()
	waitReader(t, bc)
	if bc.err == nil || errors.Is(bc.err, errWSClosed) {
		t.Errorf("reader ended with %v, want the connection's end", bc.err)
	}
}

// Closing a subscriber ends its reader even while the server keeps
// sending: what comes after the close is not the run's to count.
func TestSubscriberCloseWhileTheServerSends(t *testing.T) {
	bothReaders(t, func(t *testing.T) {
		bc, srv, _ := fakeSubscribed(t, 1<<10, nil)
		startReading(t, bc)
		sent := make(chan int, 1)
		go func() {
			n := 0
			for off := 1; off <= 2_000_000; off++ { // until the client is gone, or a bound
				if _, err := srv.Write(messageFrame(off, 100)); err != nil {
					break
				}
				n = off
			}
			sent <- n
		}()
		for guard := time.Now().Add(10 * time.Second); bc.recv.Load() < 100; time.Sleep(time.Millisecond) {
			if time.Now().After(guard) { // against a hang, not a measure
				t.Fatalf("%d messages read", bc.recv.Load())
			}
		}
		bc.close()
		atClose := bc.recv.Load()
		waitReader(t, bc)
		if bc.err != nil {
			t.Errorf("reader ended with %v", bc.err)
		}
		srv.SetWriteDeadline(time.Now()) // unblock the writer if the client's buffers are full
		n := <-sent
		// After the close, at most what the read under way brought: its
		// 1 KiB buffer holds 6 of these frames.
		if got := bc.recv.Load(); got > atClose+7 || int(got) > n {
			t.Errorf("%d messages read, %d of them after the close, of %d sent", got, got-atClose, n)
		}
	})
}
