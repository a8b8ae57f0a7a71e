package main

import (
	"bufio"
	"io"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dialLoopback opens a loopback TCP connection and returns its two ends.
func dialLoopback() (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		return nil, nil, err
	}
	if server, err = ln.Accept(); err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, server, nil
}

// loopbackPair returns the two ends of a loopback TCP connection, closed
// when the test ends.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	client, server, err := dialLoopback()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// receiveTimesWork reports whether this system gives loopback TCP reads
// receive times (a sandbox's network stack may not, and the tool then
// reports no arrival). It asks for them itself, not through rxStamp, so
// that a broken rxStamp fails the tests rather than skips them. The
// kernel starts stamping a little after the first socket asks, and stops
// once none asks: the probe keeps its connection open for the rest of
// the tests, so that a short run of the tool is stamped from its start.
var receiveTimesWork = sync.OnceValue(func() bool {
	client, server, err := dialLoopback()
	if err != nil {
		return false
	}
	f, err := client.(*net.TCPConn).File()
	if err == nil {
		err = unix.SetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}
	stamped := err == nil && probeReceiveTimes(int(f.Fd()), server)
	if !stamped {
		if f != nil {
			f.Close()
		}
		client.Close()
		server.Close()
		return false
	}
	heldProbe = []any{f, client, server} // out of the collector's reach
	return true
})

// heldProbe keeps receiveTimesWork's connection open: a collected
// descriptor is closed.
var heldProbe []any

// probeReceiveTimes writes a byte at a time to fd's peer until a read of
// fd comes with a receive time, for up to 5 s.
func probeReceiveTimes(fd int, server net.Conn) bool {
	var b [1]byte
	oob := make([]byte, 64)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, err := server.Write(b[:]); err != nil {
			return false
		}
		_, oobn, _, _, err := unix.Recvmsg(fd, b[:], oob, 0)
		if err == unix.EAGAIN {
			time.Sleep(time.Millisecond) // not there yet: fd may be non-blocking
			continue
		}
		if err != nil {
			return false
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return false
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS {
				return true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// stampedReader returns a reader of client through rxStamp, and the
// rxStamp, once a read has come with a receive time; it skips the test
// where the system gives none.
func stampedReader(t *testing.T, client, server net.Conn) (arrivalReader, *bufio.Reader) {
	t.Helper()
	if !receiveTimesWork() {
		t.Skip("this system gives loopback TCP reads no receive times")
	}
	r := newRxStamp(client)
	if r == nil {
		t.Fatal("SO_TIMESTAMPNS refused on a loopback TCP connection")
	}
	if r.arrival() != 0 {
		t.Fatalf("arrival %d before any read", r.arrival())
	}
	br := bufio.NewReaderSize(r, 64)
	for deadline := time.Now().Add(5 * time.Second); r.arrival() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no receive time on a loopback TCP connection after 5 s")
		}
		if _, err := server.Write([]byte{'w'}); err != nil {
			t.Fatal(err)
		}
		if _, err := br.ReadByte(); err != nil {
			t.Fatal(err)
		}
	}
	return r, br
}

// TestRxStampOnLoopback: what the tool reads through rxStamp is what was
// sent, and each read's receive time is a wall-clock time between the
// write and the read's return, not another clock's.
func TestRxStampOnLoopback(t *testing.T) {
	client, server := loopbackPair(t)
	r, br := stampedReader(t, client, server)
	for i := range 3 {
		msg := []byte{'m', byte('0' + i)}
		before := time.Now().UnixNano()
		if _, err := server.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UnixNano()
		if string(got) != string(msg) {
			t.Fatalf("read %q, sent %q", got, msg)
		}
		if at := r.arrival(); at < before || at > after {
			t.Fatalf("message %d: received at %d, not between the write (%d) and the read (%d)", i, at, before, after)
		}
	}

	// The peer's close reads as the end of the stream.
	server.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the peer closed: %v, want EOF", err)
	}
}

// TestRxStampDeadline: a read deadline set on the connection ends a
// waiting read through rxStamp, as the subscribers' setup relies on.
func TestRxStampDeadline(t *testing.T) {
	if !receiveTimesWork() {
		t.Skip("this system gives loopback TCP reads no receive times")
	}
	client, _ := loopbackPair(t)
	r := newRxStamp(client)
	if r == nil {
		t.Fatal("SO_TIMESTAMPNS refused on a loopback TCP connection")
	}
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var b [8]byte
	if _, err := r.Read(b[:]); err == nil {
		t.Fatal("read returned without data or deadline")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
}

// TestRxTime reads the receive time out of control messages: after
// another message, and not out of a short or malformed buffer.
func TestRxTime(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	ts := unix.NsecToTimespec(1_700_000_000_123_456_789)
	tsBytes := make([]byte, unsafe.Sizeof(ts))
	*(*unix.Timespec)(unsafe.Pointer(&tsBytes[0])) = ts
	stamp := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, tsBytes)
	other := cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0})

	for _, c := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"stamp alone", stamp, ts.Nano()},
		{"after another message", append(append([]byte{}, other...), stamp...), ts.Nano()},
		{"none", other, 0},
		{"empty", nil, 0},
		{"cut short", stamp[:len(stamp)-4], 0},
		{"header only", stamp[:unix.SizeofCmsghdr], 0},
	} {
		if got := rxTime(c.oob); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	bad := append([]byte{}, stamp...)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(3) // under the header's own
	if got := rxTime(bad); got != 0 {
		t.Errorf("a length under the header's: %d", got)
	}
}
