package main

import (
	"io"
	"net"
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
// from the client's side: its socket leaves ESTABLISHED.
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
	// Above the server's segment size, so that what it queued could come
	// (see TestAnAnswerMustBeTakenInTime).
	c.(*net.TCPConn).SetReadBuffer(256 << 10)
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
	waitFor(t, func() bool { return state() != unix.BPF_TCP_ESTABLISHED })
}
