package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAnswersWithoutABodyMustBeTakenInTime: what net/http writes once the
// handler has ended (here the headers alone of HEAD answers, which no
// Write of the handler's carried) has the write timeout too. A client
// that pipelines HEAD requests and reads none of the answers fills the
// sockets' buffers; the server then closes the connection once the
// timeout (shortened here) passes, rather than wait on it for good. Seen
// from the client's side: its socket leaves ESTABLISHED (the server
// closes with requests unread, so Linux resets the connection; a FIN
// would wait behind the client's full window).
func TestAnswersWithoutABodyMustBeTakenInTime(t *testing.T) {
	tn := startTestNode(t, map[string]string{"site": ""}, func(c *nodeConfig) { c.WriteTimeout = 500 * time.Millisecond })
	pub := filepath.Join(tn.cfg.AppsDir, "site", "public")
	if err := os.MkdirAll(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "index.html"), []byte("home"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(tn.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A HEAD of the page is a 200 without a body: no Write of the
	// handler's (an error's would set a deadline of its own).
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "HEAD / HTTP/1.1\r\nHost: site.localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != 4 {
		t.Fatalf("HEAD /: %v, %v; want 200 with Content-Length 4", resp, err)
	}
	c.SetDeadline(time.Time{})
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	state := func() uint8 {
		var info *unix.TCPInfo
		var gerr error
		if err := rc.Control(func(fd uintptr) { info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		return info.State
	}
	// 200,000 answers of some 250 bytes each: far more than the buffers
	// hold. The writes stop when the server stops reading, and fail once
	// it has closed the connection.
	go func() {
		req := "HEAD / HTTP/1.1\r\nHost: site.localhost\r\n\r\n"
		batch := strings.Repeat(req, 1000)
		for range 200 {
			if _, err := io.WriteString(c, batch); err != nil {
				return
			}
		}
	}()
	// x/sys names the TCP states after BPF's.
	waitFor(t, func() bool { return state() != unix.BPF_TCP_ESTABLISHED })
}
