package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A poller's yield comes back each time: the eventfd it writes wakes it
// through Go's poller, however often it yields.
func TestPollerYieldReturns(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		done := make(chan struct{})
		go func() { p.yield(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second): // a guard against a hang, not a measure
			t.Fatalf("yield %d did not return", i)
		}
	}
}

// A poller never waits to write: when the server stops reading and the
// pongs fill the socket's buffers, the connection ends with that reason
// recorded, rather than holding back the poller's other sockets or going
// on mid-frame.
func TestPolledWriteFailureEndsTheConnection(t *testing.T) {
	bc, srv, _ := fakeSubscribed(t, 1<<10, nil)
	srv.(*net.TCPConn).SetReadBuffer(4096)
	startReading(t, bc)
	bc.ws.wmu.Lock()
	fd := bc.ws.raw.(*polled).fd
	bc.ws.wmu.Unlock()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	ping := serverFrame(wsPing, true, bytes.Repeat([]byte("p"), 125))
	go func() {
		for range 20000 { // the server never reads the pongs; bounded
			if _, err := srv.Write(ping); err != nil {
				return
			}
		}
	}()
	waitReader(t, bc)
	if bc.err == nil || !strings.Contains(bc.err.Error(), "send buffer is full") {
		t.Errorf("reader ended with %v, want the full send buffer", bc.err)
	}
}
