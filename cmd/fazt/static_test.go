package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/internal/promtext"
)

// TestStaticFilesStayInPublic: an app's public/ files are served, and
// nothing else: not through a symlink that leads out of public/ (to the
// app's app.json and its keys), not a dot file, not a folder listing.
func TestStaticFilesStayInPublic(t *testing.T) {
	tn := startTestNode(t, map[string]string{"site": `{"api_keys":{"backend":"secret-key"}}`})
	pub := filepath.Join(tn.cfg.AppsDir, "site", "public")
	for name, body := range map[string]string{
		"index.html":          "home",
		"docs/guide.html":     "guide",
		"assets/app.js":       "js",
		".env":                "TOKEN=x",
		".git/config":         "[core]",
		"docs/index.html":     "docs home",
		"assets/img/logo.svg": "<svg/>",
		// A folder named index.html is not a page: its folder is not
		// listed for it.
		"odd/index.html/x.txt": "x",
		// Served: what phones and security tools look for there.
		".well-known/security.txt": "Contact: mailto:sec@example.com",
		".well-known/.hidden":      "no",
		"docs/.well-known/x":       "only at the top",
	} {
		p := filepath.Join(pub, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..", filepath.Join(pub, "shared")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docs", filepath.Join(pub, "manual")); err != nil { // inside public/: fine
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, body := tn.hostRequest("GET", "site.localhost", path, nil, "")
		return resp.StatusCode, body
	}
	for path, want := range map[string]string{
		"/":                         "home",
		"/docs/guide.html":          "guide",
		"/docs/":                    "docs home",
		"/manual/guide.html":        "guide",
		"/.well-known/security.txt": "Contact: mailto:sec@example.com",
	} {
		if code, body := get(path); code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want %q", path, code, body, want)
		}
	}
	for _, path := range []string{"/shared/app.json", "/shared/public/index.html", "/.env", "/.git/config", "/assets/", "/assets/img/",
		"/odd/", "/.well-known/.hidden", "/docs/.well-known/x"} {
		if code, body := get(path); code != 404 {
			t.Errorf("GET %s: %d %q, want 404", path, code, body)
		}
	}
}

// TestStaticAnswersHeaders: an app's files, and fazt.js, are answered with
// Cache-Control: no-cache (a browser asks again, and gets a 304 while the
// file is the same, so a deploy is seen at once) and nosniff (a file
// without an extension that holds HTML is not a page); fazt.js has an
// ETag, being embedded with no time; files take GET and HEAD only, and
// /_fazt/ lists nothing.
func TestStaticAnswersHeaders(t *testing.T) {
	tn := startTestNode(t, map[string]string{"site": ""})
	pub := filepath.Join(tn.cfg.AppsDir, "site", "public")
	if err := os.MkdirAll(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "index.html"), []byte("home"), 0o644); err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, header map[string]string) *http.Response {
		h := http.Header{}
		for k, v := range header {
			h.Set(k, v)
		}
		resp, _ := tn.hostRequest(method, "site.localhost", path, h, "")
		return resp
	}
	for _, path := range []string{"/", "/_fazt/fazt.js"} {
		resp := do("GET", path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		validator := map[string]string{"If-None-Match": resp.Header.Get("ETag")}
		if path == "/" {
			validator = map[string]string{"If-Modified-Since": resp.Header.Get("Last-Modified")}
		}
		if again := do("GET", path, validator); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s again with %v: %d, want 304", path, validator, again.StatusCode)
		}
		if post := do("POST", path, nil); post.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", path, post.StatusCode)
		}
	}
	if resp := do("GET", "/_fazt/", nil); resp.StatusCode != 404 {
		t.Errorf("GET /_fazt/: %d, want 404 (no listing)", resp.StatusCode)
	}
	// A file whose extension names no type is not typed by its content.
	if err := os.WriteFile(filepath.Join(pub, "report"), []byte("<html><script>alert(1)</script>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp := do("GET", "/report", nil); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("GET /report: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := do("GET", "/", nil); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /: %s", resp.Header.Get("Content-Type"))
	}
}

// hostRequest sends method path to the node with Host host, header and
// body, and returns the answer, its body read.
func (tn *testNode) hostRequest(method, host, path string, header http.Header, body string) (*http.Response, string) {
	tn.t.Helper()
	req, err := http.NewRequest(method, tn.srv.URL+path, strings.NewReader(body))
	if err != nil {
		tn.t.Fatal(err)
	}
	req.Host = host
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := tn.srv.Client().Do(req)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestDomainsNameTheApps: with --domain, a request for a name under
// none of the server's domains reaches no app (404), whatever the path:
// a page, the JS API, the server API, a WebSocket; one under it names its
// app, and an IP address or localhost still reaches the default app.
func TestDomainsNameTheApps(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""}, func(c *nodeConfig) { c.Domains = []string{"rt.example.com"} })
	pub := filepath.Join(tn.cfg.AppsDir, "chat", "public")
	if err := os.MkdirAll(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "index.html"), []byte("chat"), 0o644); err != nil {
		t.Fatal(err)
	}
	do := func(host, method, path, key string) (int, string) {
		h := http.Header{}
		if key != "" {
			h.Set("Authorization", "Bearer "+key)
		}
		resp, body := tn.hostRequest(method, host, path, h, `{"channel":"room","data":1}`)
		return resp.StatusCode, body
	}
	if code, body := do("chat.rt.example.com", "GET", "/", ""); code != 200 || body != "chat" {
		t.Errorf("chat's page under the domain: %d %q", code, body)
	}
	for _, host := range []string{"rt.example.com", "127.0.0.1"} {
		if code, body := do(host, "POST", "/_api/publish", testAdminKey); code != 200 {
			t.Errorf("a publish to the default app as %s: %d %s", host, code, body)
		}
	}
	for _, r := range []struct{ method, path, key string }{
		{"GET", "/", ""}, {"POST", "/_api/publish", testAdminKey}, {"GET", "/api/x", ""},
	} {
		if code, body := do("chat.evil.test", r.method, r.path, r.key); code != 404 || !strings.Contains(body, "not under this server's domains") {
			t.Errorf("%s %s for another name: %d %s", r.method, r.path, code, body)
		}
	}
	hdr := http.Header{"Host": {"chat.evil.test"}}
	if _, resp, err := websocket.DefaultDialer.Dial(tn.wsURL(), hdr); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Errorf("a WebSocket for another name: %v %v", resp, err)
	}
	for _, bad := range []string{"com", "bad_label.example.com"} {
		if _, err := parseDomains(bad); err == nil {
			t.Errorf("--domain %q taken", bad)
		}
	}
	if got, err := parseDomains(" Example.COM., rt.example.org "); err != nil || len(got) != 2 || got[0] != "example.com" || got[1] != "rt.example.org" {
		t.Errorf("parseDomains: %v, %v", got, err)
	}
}

// TestAnAnswerMustBeTakenInTime: a client that asks for a large file and
// then reads none of it is cut off once the write timeout (60 s;
// shortened here) passes with nothing taken, and counted in
// fazt_http_write_timeouts_total; before, it held its connection, a
// goroutine and buffers for as long as it liked. An upgrade's headers on
// a request for a file change nothing. One that takes the file slowly but
// steadily, each part within the timeout, gets it whole, however long the
// whole takes, and its kept-alive connection serves another request, and
// then an upgrade to a WebSocket, after a pause past the timeout.
func TestAnAnswerMustBeTakenInTime(t *testing.T) {
	const timeout = 500 * time.Millisecond
	tn := startTestNode(t, map[string]string{"site": ""}, func(c *nodeConfig) { c.WriteTimeout = timeout })
	pub := filepath.Join(tn.cfg.AppsDir, "site", "public")
	if err := os.MkdirAll(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	// More than the server's socket buffer and the client's can hold.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	if err := os.WriteFile(filepath.Join(pub, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pub, "index.html"), []byte("home"), 0o644); err != nil {
		t.Fatal(err)
	}
	dial := func(rcvbuf int) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(tn.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if rcvbuf > 0 {
			c.(*net.TCPConn).SetReadBuffer(rcvbuf)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, br *bufio.Reader, path, headers string, status int) *http.Response {
		t.Helper()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: site.localhost\r\n"+headers+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != status {
			t.Fatalf("GET %s: %s, want %d", path, resp.Status, status)
		}
		return resp
	}
	cuts := func() float64 {
		v, _ := promtext.Value(tn.metrics(), "fazt_http_write_timeouts_total")
		return v
	}

	for _, headers := range []string{"", "Connection: Upgrade\r\nUpgrade: websocket\r\n"} {
		before := cuts()
		// A receive buffer under the server's segment size (64 KiB on
		// loopback) would keep what the server queued before it gave
		// up from coming at all: the kernel waits for a window worth a
		// segment.
		c, br := dial(256 << 10)
		stalled := get(c, br, "/big.bin", headers, http.StatusOK)
		waitFor(t, func() bool { return cuts() > before })
		// What was queued comes, and then the server's end of the
		// connection.
		if n, err := io.Copy(io.Discard, stalled.Body); err != io.ErrUnexpectedEOF || n >= int64(len(big)) {
			t.Fatalf("the stalled client (headers %q) read %d of %d bytes (%v): want the answer cut short, and the connection closed", headers, n, len(big), err)
		}
	}

	c, br := dial(0)
	steady := get(c, br, "/big.bin", "", http.StatusOK)
	var n int64
	for {
		m, err := io.CopyN(io.Discard, steady.Body, 512<<10)
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the steady client, after %d bytes: %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n != int64(len(big)) {
		t.Fatalf("the steady client read %d of %d bytes", n, len(big))
	}
	time.Sleep(2 * timeout)
	if b, err := io.ReadAll(get(c, br, "/", "", http.StatusOK).Body); err != nil || string(b) != "home" {
		t.Fatalf("the next request on the connection: %q, %v", b, err)
	}
	time.Sleep(2 * timeout)
	get(c, br, "/_ws", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", http.StatusSwitchingProtocols)
	// Its first frame: connected.
	if line, err := br.ReadString('}'); err != nil || !strings.Contains(line, `"type":"connected"`) {
		t.Fatalf("the upgraded connection's first frame: %q, %v", line, err)
	}
}
