package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

// TestFailedStartSaysWhy: a server that cannot start returns the reason,
// having closed what it had opened, rather than crash.
func TestFailedStartSaysWhy(t *testing.T) {
	dir := t.TempDir()
	_, err := startNode(context.Background(), nodeConfig{DBPath: filepath.Join(dir, "fazt.db"), AppsDir: dir, Durability: "fsync"})
	if err == nil || !strings.Contains(err.Error(), "durability") {
		t.Fatalf("start with durability fsync: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := startNode(ctx, nodeConfig{DBPath: filepath.Join(dir, "fazt.db"), AppsDir: dir}); err == nil {
		t.Fatal("a start whose context had ended succeeded")
	}
}

// TestServerURLNamesTheApp: the CLI's server address, as FAZT_ADDR often
// has it for serve (":8080"), still reaches the app asked for.
func TestServerURLNamesTheApp(t *testing.T) {
	for _, tc := range []struct{ server, app, url, host string }{
		{":8080", "chat", "http://localhost:8080", "chat.localhost:8080"},
		{"localhost:8080", "chat", "http://localhost:8080", "chat.localhost:8080"},
		{"http://127.0.0.1:9000/", "default", "http://127.0.0.1:9000", "127.0.0.1:9000"},
		{"chat.localhost:8080", "chat", "http://chat.localhost:8080", "chat.localhost:8080"},
		{"example.com", "chat", "http://example.com", "chat.example.com"},
	} {
		u, host, err := serverURL(tc.server, tc.app)
		if err != nil || u.String() != tc.url || host != tc.host {
			t.Errorf("serverURL(%q, %q) = %v, %q, %v; want %s, %s", tc.server, tc.app, u, host, err, tc.url, tc.host)
		}
	}
	// A Host header that cannot name the app is an error, not a call to
	// app default under the app's name.
	for _, server := range []string{"[::1]:8080", "fazthost:8080"} {
		if u, host, err := serverURL(server, "chat"); err == nil || !strings.Contains(err.Error(), "cannot be asked for app chat") {
			t.Errorf("serverURL(%q, chat) = %v, %q, %v: want an error", server, u, host, err)
		}
	}
	// An app name that is not one (upper case) says so.
	if _, _, err := serverURL("localhost:8080", "Chat"); err == nil || !strings.Contains(err.Error(), "--app") {
		t.Errorf("serverURL(localhost:8080, Chat): %v, want an error about --app", err)
	}
	// With FAZT_DOMAIN, a Host is read as a server with the same --domain
	// reads it: the domain itself is app default, not app rt.
	t.Setenv("FAZT_DOMAIN", "rt.example.com")
	for _, tc := range []struct{ server, app, host string }{
		{"rt.example.com", "default", "rt.example.com"},
		{"rt.example.com", "rt", "rt.rt.example.com"},
		{"https://rt.example.com", "chat", "chat.rt.example.com"},
		{"localhost:8080", "chat", "chat.localhost:8080"},
	} {
		if _, host, err := serverURL(tc.server, tc.app); err != nil || host != tc.host {
			t.Errorf("FAZT_DOMAIN=rt.example.com: serverURL(%q, %q) = %q, %v; want %s", tc.server, tc.app, host, err, tc.host)
		}
	}
	if _, _, err := serverURL("127.0.0.1:8080", "chat"); err == nil || !strings.Contains(err.Error(), "none of FAZT_DOMAIN's domains") {
		t.Errorf("FAZT_DOMAIN=rt.example.com: serverURL(127.0.0.1:8080, chat): %v, want it under none", err)
	}
	// --app left at default takes the app the host names, but a host under
	// none of the domains names none; a call that names no app by its
	// Host (purge) takes any.
	if _, _, err := serverURL("fazt.internal:8080", "default"); err == nil || !strings.Contains(err.Error(), "none of FAZT_DOMAIN's domains (rt.example.com)") {
		t.Errorf("FAZT_DOMAIN=rt.example.com: serverURL(fazt.internal:8080, default): %v, want it under none", err)
	}
	if _, host, err := serverURL("fazt.internal:8080", ""); err != nil || host != "fazt.internal:8080" {
		t.Errorf("FAZT_DOMAIN=rt.example.com: serverURL(fazt.internal:8080, \"\") = %q, %v", host, err)
	}
	// A FAZT_DOMAIN fazt serve would refuse is an error here too.
	t.Setenv("FAZT_DOMAIN", "com")
	if _, _, err := serverURL("localhost:8080", "chat"); err == nil || !strings.Contains(err.Error(), "FAZT_DOMAIN") {
		t.Errorf("FAZT_DOMAIN=com: %v, want an error", err)
	}
}

// TestServeRefusesABadEnvBool: FAZT_IO_URING=no is an error, not the
// default in silence.
func TestServeRefusesABadEnvBool(t *testing.T) {
	t.Setenv("FAZT_IO_URING", "no")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out strings.Builder
	err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "f.db")}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), `FAZT_IO_URING="no"`) {
		t.Fatalf("serve with FAZT_IO_URING=no: %v", err)
	}
}

// TestServeRefusesABadEnvDuration: FAZT_WRITE_DELAY=2 (no unit) is an
// error, not the default in silence; so are FAZT_WRITE_DELAY_MAX=2 and,
// on Linux, FAZT_TIMER_SLACK=2.
func TestServeRefusesABadEnvDuration(t *testing.T) {
	keys := []string{"FAZT_WRITE_DELAY", "FAZT_WRITE_DELAY_MAX", "FAZT_APP_GRACE", "FAZT_BODY_TIMEOUT", "FAZT_WRITE_TIMEOUT"}
	if runtime.GOOS == "linux" {
		keys = append(keys, "FAZT_TIMER_SLACK")
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, "2")
			// Bounded: a serve that took the value would run until cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out strings.Builder
			err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "f.db")}, &out, &out)
			if err == nil || !strings.Contains(err.Error(), key+"=") {
				t.Fatalf("serve with %s=2: %v", key, err)
			}
		})
	}
}

// TestServeRefusesTimesItWouldBend: a heartbeat under a second (at 1ns
// every client was dropped at its first ping), a pong timeout of 0 or
// less, and a negative write delay are errors at start, not defaults or
// bent values in silence.
func TestServeRefusesTimesItWouldBend(t *testing.T) {
	for _, flags := range [][]string{
		{"--heartbeat", "1ns"}, {"--heartbeat", "500ms"}, {"--heartbeat", "-30s"},
		{"--pong-timeout", "0s"}, {"--pong-timeout", "-1s"},
		{"--write-delay", "-2ms"}, {"--write-delay-max", "-1ms"},
		{"--app-grace", "0s"}, {"--app-grace", "500ms"}, {"--body-timeout", "0s"}, {"--body-timeout", "500ms"},
		{"--write-timeout", "0s"}, {"--write-timeout", "500ms"},
	} {
		t.Run(strings.Join(flags, "="), func(t *testing.T) {
			// Bounded: a serve that took the value would run until cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out strings.Builder
			err := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "f.db")}, flags...), &out, &out)
			// The values parse: the refusal is the range's.
			if err == nil || !strings.Contains(err.Error(), flags[0]) || !strings.Contains(err.Error(), ": want ") {
				t.Fatalf("serve %v: %v", flags, err)
			}
		})
	}
}

// TestServerAndAddrTogetherAreRefused: --addr is --server's synonym, and
// the last of the two given won without a word.
func TestServerAndAddrTogetherAreRefused(t *testing.T) {
	for _, cmd := range [][]string{
		{"publish", "--channel", "room", "--data", "1"},
		{"tail", "--channel", "room"},
	} {
		_, _, err := cli(t, append(cmd, "--server", "127.0.0.1:1", "--addr", "127.0.0.1:2")...)
		if err == nil || !strings.Contains(err.Error(), "[server addr]") {
			t.Errorf("%s with --server and --addr: %v", cmd[0], err)
		}
	}
}

// TestDebugHandlerHidesTheCommandLine: --debug-addr serves Go's profiles
// but not /debug/pprof/cmdline, which would show an --admin-key given on
// the command line to anyone who reaches the address.
func TestDebugHandlerHidesTheCommandLine(t *testing.T) {
	srv := httptest.NewServer(debugHandler())
	defer srv.Close()
	for path, want := range map[string]int{"/debug/pprof/": 200, "/debug/pprof/goroutine?debug=1": 200, "/debug/pprof/cmdline": 404} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestAdminKeyWithSpaceIsRefused: an admin key with space around it (an
// env file's stray blank) could never match, since HTTP trims a header's
// value: the server refuses to start with it rather than lock every
// caller out.
func TestAdminKeyWithSpaceIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, err := startNode(context.Background(), nodeConfig{DBPath: filepath.Join(dir, "fazt.db"), AppsDir: dir, AdminKey: "secret-key "})
	if err == nil || !strings.Contains(err.Error(), "admin key has space around it") {
		t.Fatalf("start with a padded admin key: %v", err)
	}
}

// TestServeClosesIdleHTTPConnections: a kept-alive HTTP connection that
// sends no next request is closed after the idle timeout (2 minutes;
// shortened here), instead of holding its goroutine and descriptor for
// good. A WebSocket connection is not: it is no longer HTTP's.
func TestServeClosesIdleHTTPConnections(t *testing.T) {
	defer func(d time.Duration) { httpIdleTimeout = d }(httpIdleTimeout)
	httpIdleTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, serveOptions{
			node:  nodeConfig{DBPath: filepath.Join(dir, "fazt.db"), AppsDir: filepath.Join(dir, "apps"), Durability: events.DurabilityNormal, AdminKey: testAdminKey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			addr:  "127.0.0.1:0",
			ready: func(addr string) { addrc <- addr },
		}, io.Discard)
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v, %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the idle connection was not closed: %v", err)
	}
	// The WebSocket, as idle, still answers.
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteJSON(map[string]any{"type": "subscribe", "channel": "room", "id": 1}); err != nil {
		t.Fatal(err)
	}
	for {
		var f map[string]any
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("the WebSocket after the idle timeout: %v", err)
		}
		if f["type"] == "subscribed" {
			break
		}
	}
	cancel()
	<-done
}

// TestABodyMustArriveInTime: a request whose body stalls after its
// headers is answered 400 once the body timeout (60 s; shortened here)
// passes, instead of holding its connection for as long as the client
// likes, also with an Upgrade header. A body that arrives in time is read
// whole, and the handler that runs on after reading it (a JS handler
// sleeping past the timeout) is not cut, nor its kept-alive connection;
// nor is a request that waits for 100 Continue before sending its body.
func TestABodyMustArriveInTime(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": `{"api_keys":{"k":"chat-key"}}`}, func(c *nodeConfig) { c.BodyTimeout = 300 * time.Millisecond })
	if err := os.MkdirAll(filepath.Join(tn.cfg.AppsDir, "chat", "api"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tn.cfg.AppsDir, "chat", "api", "main.js"), []byte(`
module.exports = async function (req) {
  await new Promise((resolve) => setTimeout(resolve, 600));
  return { got: req.json };
};`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(tn.srv.URL, "http://")
	send := func(head, body string, pause time.Duration, rest string) (*http.Response, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, head+body)
		time.Sleep(pause)
		io.WriteString(c, rest)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	publish := "POST /_api/publish HTTP/1.1\r\nHost: chat.localhost\r\nAuthorization: Bearer chat-key\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n"
	// Stalled: never sends the rest; an Upgrade header changes nothing.
	for _, head := range []string{publish, strings.Replace(publish, "\r\n\r\n", "\r\nUpgrade: x\r\n\r\n", 1)} {
		resp, body := send(head, `{"channel":"room",`, 0, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "timeout") {
			t.Fatalf("a stalled body: %d %s", resp.StatusCode, body)
		}
	}
	// Expect: 100-continue: a refusal that reads no body goes out without
	// waiting for one, on a server with the default timeout (net/http
	// tells its own body types apart, so r.Body is not replaced: a
	// wrapper made it wait the whole timeout for the body here)...
	other := startTestNode(t, map[string]string{"chat": `{"api_keys":{"k":"chat-key"}}`})
	oc, err := net.Dial("tcp", strings.TrimPrefix(other.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	oc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(oc, strings.Replace(strings.Replace(publish, "chat-key", "wrong", 1), "\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1))
	if resp, err := http.ReadResponse(bufio.NewReader(oc), nil); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a refusal before the body: %v %v", resp, err)
	}
	oc.Close()
	// ... and an accepted one gets 100 Continue, then its body.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, strings.Replace(publish, "\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1))
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, `{"channel":"room","data":1234}`)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after 100 Continue: %v %v", resp, err)
	}
	c.Close()
	// The rest within the timeout: published.
	resp, body := send(publish, `{"channel":"room",`, 100*time.Millisecond, `"data":1234}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"offset":2`) {
		t.Fatalf("a body in time: %d %s", resp.StatusCode, body)
	}
	// A handler that runs on past the timeout after reading its body, and
	// its connection, kept alive, for the next request.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br = bufio.NewReader(c)
	for i := 1; i <= 2; i++ {
		io.WriteString(c, fmt.Sprintf("POST /api/echo HTTP/1.1\r\nHost: chat.localhost\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":%d}", i))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one connection: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`{"got":{"a":%d}}`, i); resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != want {
			t.Fatalf("a handler past the timeout, request %d: %d %s", i, resp.StatusCode, b)
		}
	}
}

// TestAKeyInTheEnvironmentIsNotPrinted: each flag that takes an API key
// showed FAZT_ADMIN_KEY's value as its default in --help, so the admin key
// of a server's environment went to terminals and logs. The key is still
// taken from there. (tail's --secret, FAZT_APP_SECRET, too.)
func TestAKeyInTheEnvironmentIsNotPrinted(t *testing.T) {
	const secret = "fzt_0123456789abcdef_from_the_environment"
	t.Setenv("FAZT_ADMIN_KEY", secret)
	t.Setenv("FAZT_APP_SECRET", secret)
	for _, cmd := range [][]string{{"serve"}, {"publish"}, {"purge"}, {"bench"}, {"bench", "fanout"}, {"tail"}} {
		out, errs, err := cli(t, append(cmd, "--help")...)
		if err != nil {
			t.Fatalf("%v --help: %v", cmd, err)
		}
		if strings.Contains(out+errs, secret) {
			t.Errorf("%v --help prints the secret:\n%s", cmd, out)
		}
		if !strings.Contains(out, "(FAZT_ADMIN_KEY)") && !strings.Contains(out, "(FAZT_APP_SECRET;") {
			t.Errorf("%v --help does not name its variable:\n%s", cmd, out)
		}
	}

	tn := startTestNode(t, nil, func(c *nodeConfig) { c.AdminKey = secret })
	server := strings.TrimPrefix(tn.srv.URL, "http://")
	out := mustCLI(t, "publish", "--server", server, "--channel", "room", "--data", `"hi"`)
	if !strings.Contains(out, "offset 1") {
		t.Fatalf("publish with the key from the environment: %q", out)
	}
	// A key on the command line comes first.
	if _, _, err := cli(t, "publish", "--server", server, "--channel", "room", "--data", "1", "--admin-key", "wrong"); err == nil {
		t.Fatal("publish with a wrong --admin-key beside the right FAZT_ADMIN_KEY succeeded")
	}
	// purge reaches the server's check of the app, past its key's.
	if _, _, err := cli(t, "purge", "--server", server, "--app", "default"); err == nil || !strings.Contains(err.Error(), "still on this server") {
		t.Fatalf("purge with the key from the environment: %v", err)
	}
}

// A serve whose apps folder is not there (a mistyped --apps) says so as it
// starts, where every app but default would only answer 404.
func TestServeSaysTheAppsFolderIsMissing(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		apps, warn string
	}{
		{filepath.Join(dir, "aps"), "the apps folder is not there"},
		{file, "the apps folder cannot be read as one"},
		{dir, ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var logs testutil.SyncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "f.db"), "--apps", tc.apps}, &logs, &logs)
		}()
		waitFor(t, func() bool { return strings.Contains(logs.String(), "fazt serving") })
		cancel()
		<-done
		warned := strings.Contains(logs.String(), "the apps folder")
		if warned != (tc.warn != "") || !strings.Contains(logs.String(), tc.warn) {
			t.Errorf("--apps %s: want a warning %q:\n%s", tc.apps, tc.warn, logs.String())
		}
	}
}
