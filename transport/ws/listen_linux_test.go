package ws

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listenerServer is ts's WebSocket server behind Server.Listener, with an
// http.Server for everything else: /_ws upgrades as in `fazt serve`, and
// /echo, which answers its method, path and body. seen counts the
// connections the http.Server was given.
func listenerServer(t *testing.T, ts *testServer, headerTimeout time.Duration) (base string, seen *atomic.Int32) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/_ws", ts.srv)
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
	})
	hs := httptest.NewUnstartedServer(mux)
	seen = new(atomic.Int32)
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			seen.Add(1)
		}
	}
	hs.Listener = ts.srv.Listener(hs.Listener, "/_ws", headerTimeout)
	hs.Start()
	t.Cleanup(hs.Close)
	return hs.URL, seen
}

// dialRaw opens a TCP connection to base, closed when the test ends, with
// 10 s for all it does.
func dialRaw(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// rawRequest sends req on a new TCP connection and returns all the server
// wrote until it closed the connection.
func rawRequest(t *testing.T, base, req string) string {
	t.Helper()
	c := dialRaw(t, base)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v (read %q)", req[:min(len(req), 40)], err, b)
	}
	return string(b)
}

const upgradeHeaders = "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

// An upgrade that is a connection's first request is served by the
// listener, without net/http; the connection works as any other.
func TestListenerUpgradesFirstRequests(t *testing.T) {
	ts := startTestServer(t)
	base, seen := listenerServer(t, ts, 10*time.Second)
	lts := *ts
	lts.http = &httptest.Server{URL: base}
	c := lts.dial()
	c.subscribe("room")
	if n := seen.Load(); n != 0 {
		t.Fatalf("the http.Server was given %d connections for an upgrade", n)
	}
	// The connection parks between frames, as one upgraded by net/http.
	waitUntil(t, "the connection parked", func() bool { return ts.parked() == 1 })
	c.subscribe("room2")
}

// Every other connection goes to the http.Server with what was read of
// it: requests of any size, several on one connection, and an upgrade
// that comes after another request.
func TestListenerPassesOtherConnections(t *testing.T) {
	ts := startTestServer(t)
	base, seen := listenerServer(t, ts, 10*time.Second)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	big := strings.Repeat("x", 100_000)
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/echo", "", "GET /echo "},
		{"POST", "/echo", big, "POST /echo " + big},
		{"GET", "/_wsx", "", "404 page not found\n"},
		{"GET", "/echo?_ws", "", "GET /echo "},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Fatalf("%s %s: %q", tc.method, tc.path, b[:min(len(b), 80)])
		}
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("four requests on one kept-alive connection: the http.Server was given %d connections", n)
	}

	// An upgrade after a plain request, on the same connection: net/http's.
	nc := dialRaw(t, base)
	io.WriteString(nc, "GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	io.WriteString(nc, "GET /_ws HTTP/1.1\r\n"+upgradeHeaders+"\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("an upgrade after a plain request: %v, %v", resp, err)
	}
	line, err := br.ReadString('}')
	if err != nil || !strings.Contains(line, `"type":"connected"`) {
		t.Fatalf("after the 101: %q, %v", line, err)
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the http.Server was given %d connections, want 2", n)
	}
	// It is upgraded on the TCP connection itself, so it parks too.
	waitUntil(t, "the connection parked", func() bool { return ts.parked() == 1 })
}

// What cannot be upgraded is answered as net/http answers it, and the
// connection closed: a GET of /_ws that is no upgrade, a malformed
// request, headers past the cap, no Host or a bad one, another HTTP
// version, an Expect it cannot meet, an app that does not exist. A client
// that sends too little, or nothing, is cut off at the header timeout.
// Nothing is recorded for any of them.
func TestListenerRefusesWhatItCannotUpgrade(t *testing.T) {
	ts := startTestServer(t)
	// The clients that send too little wait out a short timeout; the
	// others have time to send a MiB on a busy machine.
	base, seen := listenerServer(t, ts, 10*time.Second)
	short, seenShort := listenerServer(t, ts, 300*time.Millisecond)
	noHost := strings.Replace(upgradeHeaders, "Host: localhost\r\n", "", 1)
	for _, tc := range []struct{ name, req, want string }{
		{"no upgrade", "GET /_ws HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"a bad request line", "GET /_ws HTTP/one\r\nHost: localhost\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"a bad header", "GET /_ws HTTP/1.1\r\n" + upgradeHeaders + "no colon\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"headers past the cap", "GET /_ws HTTP/1.1\r\n" + upgradeHeaders + "X-Big: " + strings.Repeat("b", 1<<20+4096) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
		{"no Host", "GET /_ws HTTP/1.1\r\n" + noHost + "\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"a bad Host", "GET /_ws HTTP/1.1\r\nHost: local host\r\n" + noHost + "\r\n", "HTTP/1.1 400 Bad Request\r\n"},
		{"HTTP/2.0", "GET /_ws HTTP/2.0\r\n" + upgradeHeaders + "\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
		{"an Expect it cannot meet", "GET /_ws HTTP/1.1\r\n" + upgradeHeaders + "Expect: the unexpected\r\n\r\n", "HTTP/1.1 417 Expectation Failed\r\n"},
		{"an app that does not exist", "GET /_ws HTTP/1.1\r\nHost: nosuch.localhost\r\n" + noHost + "\r\n", "HTTP/1.1 404 Not Found\r\n"},
		{"data before the 101", "GET /_ws HTTP/1.1\r\n" + upgradeHeaders + "\r\n\x81\x85abcd", ""},
		{"headers that never end", "GET /_ws HTTP/1.1\r\nHost: localhost\r\n", "short"},
		{"a start too short for a request", "GET /", "short"},
		{"nothing", "", "short"},
	} {
		to := base
		if tc.want == "short" {
			to, tc.want = short, ""
		}
		got := rawRequest(t, to, tc.req)
		if !strings.HasPrefix(got, tc.want) || tc.want == "" && got != "" {
			t.Errorf("%s: answered %q, want %q", tc.name, got[:min(len(got), 120)], tc.want)
		}
	}
	if n := seen.Load() + seenShort.Load(); n != 0 {
		t.Fatalf("the http.Server was given %d connections", n)
	}
	st, err := ts.log.Stats(context.Background(), "")
	if err != nil || st.Events != 0 {
		t.Fatalf("%d events recorded for refusals (%v)", st.Events, err)
	}
	// HTTP/1.0 needs no Host, and is upgraded.
	nc := dialRaw(t, base)
	io.WriteString(nc, "GET /_ws HTTP/1.0\r\n"+noHost+"\r\n")
	if got, err := bufio.NewReader(nc).ReadString('}'); err != nil || !strings.HasPrefix(got, "HTTP/1.1 101 ") || !strings.Contains(got, `"type":"connected"`) {
		t.Fatalf("an HTTP/1.0 upgrade: %q, %v", got, err)
	}
}

// Once the http.Server shuts down, the listener is closed: Accept says
// so, and the WebSocket upgrades end with it.
func TestListenerCloses(t *testing.T) {
	ts := startTestServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ts.srv.Listener(ln, "/_ws", 0)
	hs := &http.Server{Handler: http.NotFoundHandler()}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	// A connection whose first request is being waited for when the
	// server stops is closed. (Nothing is sent on it: a socket closed with
	// input unread is reset rather than closed.)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ul := l.(*upgradeListener)
	waitUntil(t, "the connection is being read", func() bool {
		ul.mu.Lock()
		defer ul.mu.Unlock()
		return len(ul.reading) == 1
	})
	if err := hs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
		t.Fatalf("a connection accepted as the server closed: read %q, %v; want it closed", b, err)
	}
}

// A connection is passed on as soon as its first bytes cannot start an
// upgrade, so that the wait for the rest is net/http's, not the
// listener's header timeout.
func TestListenerPassesOnAtTheFirstByteThatDiffers(t *testing.T) {
	ts := startTestServer(t)
	base, _ := listenerServer(t, ts, time.Second)
	nc := dialRaw(t, base)
	io.WriteString(nc, "P")
	time.Sleep(1500 * time.Millisecond) // past the listener's timeout
	io.WriteString(nc, "OST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi")
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "POST /echo hi" {
		t.Fatalf("answered %q", b)
	}
}

// A client that trickles the first bytes of a GET of the path, and then
// turns out to send something else, has the listener's header timeout for
// all of its headers, not that and then the http.Server's (an hour here).
// (The listener's is long enough that the client's pause, 100 ms, ends
// well within it on a loaded machine.)
// An http.Server without a timeout still gets none: see
// TestListenerPassesOnAtTheFirstByteThatDiffers.
func TestListenerCountsTheSniffAgainstTheHeaderTimeout(t *testing.T) {
	ts := startTestServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Hour}
	go hs.Serve(ts.srv.Listener(ln, "/_ws", 2*time.Second))
	t.Cleanup(func() { hs.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /_")
	time.Sleep(100 * time.Millisecond)
	// Not the path: the connection goes to the http.Server, whose
	// headers never end.
	io.WriteString(nc, "x HTTP/1.1\r\nHost: localhost\r\n")
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(nc); err != nil {
		t.Fatalf("the connection was not closed at the listener's header timeout: read %q, %v", b, err)
	}
}
