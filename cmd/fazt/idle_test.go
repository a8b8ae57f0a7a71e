package main

import (
	"bytes"
	"runtime"
	"runtime/pprof"
	"testing"
)

// waitNoReaders waits until no connection reader runs in the server.
// Readers park only where there is epoll (transport/ws/poller_linux.go);
// elsewhere each connection keeps its reader, and there is nothing to wait
// for.
func waitNoReaders(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "linux" {
		waitFor(t, func() bool { return serverReaders() == 0 })
	}
}

// serverReaders counts the server's connection readers that are running.
func serverReaders() int {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	return bytes.Count(b.Bytes(), []byte("ws.(*conn).readLoop("))
}

// An idle connection holds no reader goroutine: its reader parks it once
// the client has nothing more to say, and a new one starts when the
// client sends a frame, hangs up, or the server closes the connection.
func TestIdleConnectionsHoldNoReader(t *testing.T) {
	tn := startTestNode(t, nil)
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = tn.dial("", "")
		clients[i].subscribe(map[string]any{"channel": "room"})
	}
	waitNoReaders(t)

	// Parked connections still get deliveries.
	p := tn.publish("", "room", map[string]any{"text": "hi"})
	for _, c := range clients {
		if m := c.messages("room", 1); m[0].num("offset") != p.Offset {
			t.Fatalf("got offset %d, want %d", m[0].num("offset"), p.Offset)
		}
	}

	// A frame from the client wakes a reader, which answers it and parks
	// again.
	clients[0].send(`{"type":"subscribe","channel":"other","id":"s2"}`)
	if f := clients[0].expect("subscribed"); f.str("id") != "s2" || f.str("channel") != "other" {
		t.Fatalf("reply %v", f)
	}
	clients[0].send(`{"type":"nonsense","id":"x"}`)
	if f := clients[0].expect("error"); f.str("id") != "x" {
		t.Fatalf("reply %v", f)
	}
	waitNoReaders(t)

	// A kick closes a parked connection; its disconnection is recorded.
	if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+clients[1].id+"/kick", map[string]any{"reason": "idle"}, nil); code != 200 {
		t.Fatalf("kick: status %d", code)
	}
	clients[1].expect("disconnect")
	waitFor(t, func() bool {
		a := tn.audit("", "client="+clients[1].id+"&type=disconnected")
		return len(a.Events) == 1 && a.Events[0].Event["reason"] == "kicked"
	})

	// So is a client that hangs up without a close frame.
	clients[2].conn.UnderlyingConn().Close()
	waitFor(t, func() bool {
		a := tn.audit("", "client="+clients[2].id+"&type=disconnected")
		return len(a.Events) == 1 && a.Events[0].Event["reason"] == "connection_lost"
	})

	// And one that closes politely.
	clients[3].conn.Close()
	waitFor(t, func() bool {
		a := tn.audit("", "client="+clients[3].id+"&type=disconnected")
		return len(a.Events) == 1
	})
	var subs struct{ Subscribers []string }
	tn.api("", testAdminKey, "GET", "/_api/channels/room/subscribers", nil, &subs)
	if len(subs.Subscribers) != n-3 {
		t.Fatalf("%d subscribers left, want %d", len(subs.Subscribers), n-3)
	}
	waitNoReaders(t)
}

// maskedText is a client's text frame, masked with a zero key.
func maskedText(payload string) []byte {
	if len(payload) > 125 {
		panic("maskedText: payload over 125 bytes")
	}
	return append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// A reader parks only when nothing is buffered: frames that arrive in one
// TCP segment are all answered. (If the upgrader read into a buffer of its
// own instead of the connection's, the reader would see an empty buffer
// after the first frame, park, and the others would wait for more input.)
func TestFramesInOneSegmentAreAllAnswered(t *testing.T) {
	tn := startTestNode(t, nil)
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "room"})
	waitNoReaders(t)
	var seg []byte
	for _, ch := range []string{"a", "b", "c", "d"} {
		seg = append(seg, maskedText(`{"type":"subscribe","channel":"`+ch+`","id":"`+ch+`"}`)...)
	}
	if _, err := c.conn.UnderlyingConn().Write(seg); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"a", "b", "c", "d"} {
		if f := c.expect("subscribed"); f.str("id") != ch {
			t.Fatalf("reply %v, want the one to %s", f, ch)
		}
	}
	waitNoReaders(t)
}
