package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/transport/ws"
)

const testAdminKey = "test-admin-key"

// testNode is a real server on a real SQLite file, served over loopback.
type testNode struct {
	t      testing.TB
	cfg    nodeConfig
	node   *node
	srv    *httptest.Server
	closed bool
}

type nodeOption func(*nodeConfig)

func withWS(c ws.Config) nodeOption { return func(n *nodeConfig) { n.WS = c } }

// startTestNode starts a server on a fresh database in t.TempDir(), with an
// apps dir holding the apps named in apps (each an app.json body).
func startTestNode(t testing.TB, apps map[string]string, opts ...nodeOption) *testNode {
	t.Helper()
	dir := t.TempDir()
	appsDir := filepath.Join(dir, "apps")
	for name, appJSON := range apps {
		if err := os.MkdirAll(filepath.Join(appsDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if appJSON != "" {
			if err := os.WriteFile(filepath.Join(appsDir, name, "app.json"), []byte(appJSON), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := nodeConfig{
		DBPath:     filepath.Join(dir, "fazt.db"),
		AppsDir:    appsDir,
		Durability: events.DurabilityNormal,
		AdminKey:   testAdminKey,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return startOn(t, cfg)
}

func startOn(t testing.TB, cfg nodeConfig) *testNode {
	t.Helper()
	n, err := startNode(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	// Served as `fazt serve` serves: upgrades off the listener, the rest
	// by net/http.
	srv := httptest.NewUnstartedServer(n.handler)
	srv.Listener = n.ws.Listener(srv.Listener, "/_ws", 10*time.Second)
	srv.Start()
	tn := &testNode{t: t, cfg: cfg, node: n, srv: srv}
	t.Cleanup(tn.stop)
	return tn
}

// stop shuts the node down as `fazt serve` does on SIGTERM.
func (tn *testNode) stop() {
	if tn.closed {
		return
	}
	tn.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.node.Close(ctx); err != nil {
		tn.t.Errorf("close node: %v", err)
	}
	tn.srv.Close()
}

// restart stops the node and starts a new one on the same database.
func (tn *testNode) restart() *testNode {
	tn.stop()
	return startOn(tn.t, tn.cfg)
}

func (tn *testNode) wsURL() string { return "ws" + strings.TrimPrefix(tn.srv.URL, "http") + "/_ws" }

// api calls the server API as app (host "<app>.localhost"; "" for default)
// with key, and decodes the JSON answer into out when it is non-nil.
func (tn *testNode) api(app, key, method, path string, body any, out any) int {
	tn.t.Helper()
	code, _ := tn.request(http.DefaultClient, app, key, method, path, body, out)
	return code
}

// request sends a JSON request to the node as app, with key when it is
// set, and decodes the JSON answer into out when it is non-nil; it returns
// the status and the raw body.
func (tn *testNode) request(client *http.Client, app, key, method, path string, body any, out any) (int, string) {
	tn.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tn.srv.URL+path, rd)
	if err != nil {
		tn.t.Fatal(err)
	}
	if app != "" {
		req.Host = app + ".localhost"
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		tn.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tn.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

type published struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
	Seq    uint64 `json:"seq"`
}

// publish broadcasts data to channel through the server API.
func (tn *testNode) publish(app, channel string, data any) published {
	tn.t.Helper()
	var p published
	if code := tn.api(app, testAdminKey, "POST", "/_api/publish", map[string]any{"channel": channel, "data": data}, &p); code != 200 {
		tn.t.Fatalf("publish to %s: status %d", channel, code)
	}
	return p
}

// frame is one server frame, decoded loosely.
type frame map[string]any

func (f frame) str(k string) string { s, _ := f[k].(string); return s }
func (f frame) num(k string) uint64 { n, _ := f[k].(float64); return uint64(n) }

// client is a WebSocket client that reads every frame into a channel.
type client struct {
	t       testing.TB
	conn    *websocket.Conn
	frames  chan frame
	closeMu sync.Mutex
	closeCE *websocket.CloseError
	done    chan struct{}
	id      string
}

// dialSmallReads opens a raw WebSocket to the default app whose kernel
// receive buffer is readBuf bytes, for clients that read slowly or not at
// all; the caller reads and writes it directly and closes it.
func (tn *testNode) dialSmallReads(readBuf int) *websocket.Conn {
	tn.t.Helper()
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conn.(*net.TCPConn).SetReadBuffer(readBuf)
		}
		return conn, err
	}}
	c, _, err := dialer.Dial(tn.wsURL(), nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(func() { c.Close() })
	return c
}

func (tn *testNode) dial(app string, query string) *client {
	tn.t.Helper()
	c, err := tn.tryDial(app, query)
	if err != nil {
		tn.t.Fatalf("dial: %v", err)
	}
	return c
}

func (tn *testNode) tryDial(app string, query string) (*client, error) {
	return tn.tryDialPings(app, query, false)
}

// tryDialPings is tryDial whose client answers the server's WebSocket
// pings, as browsers do, when answer is set. Otherwise, as its JSON
// pings, they go unanswered unless the test answers them: gorilla's own
// answer, as it reads, would make every client alive.
func (tn *testNode) tryDialPings(app string, query string, answer bool) (*client, error) {
	h := http.Header{}
	if app != "" {
		h.Set("Host", app+".localhost")
	}
	u := tn.wsURL()
	if query != "" {
		u += "?" + query
	}
	conn, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("%w: %d %s", err, resp.StatusCode, body)
		}
		return nil, err
	}
	if !answer {
		conn.SetPingHandler(func(string) error { return nil })
	}
	c := &client{t: tn.t, conn: conn, frames: make(chan frame, 1<<16), done: make(chan struct{})}
	go c.readLoop()
	select {
	case hello := <-c.frames:
		if hello.str("type") != "connected" {
			conn.Close()
			return nil, fmt.Errorf("first frame %v", hello)
		}
		c.id = hello.str("client_id")
	case <-time.After(10 * time.Second):
		conn.Close()
		return nil, fmt.Errorf("no connected frame")
	}
	tn.t.Cleanup(func() { c.conn.Close() })
	return c, nil
}

func (c *client) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				c.closeMu.Lock()
				c.closeCE = ce
				c.closeMu.Unlock()
			}
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Errorf("server sent a frame that is not JSON: %q", b)
			return
		}
		c.frames <- f
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next frame, skipping server pings.
func (c *client) next() frame {
	c.t.Helper()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection closed while waiting for a frame")
			}
			if f.str("type") == "ping" {
				continue
			}
			return f
		case <-time.After(10 * time.Second):
			c.t.Fatalf("no frame within 10s")
		}
	}
}

func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.next()
	if f.str("type") != typ {
		c.t.Fatalf("want a %q frame, got %v", typ, f)
	}
	return f
}

// waitClosed waits for the server to close the connection and returns the
// close frame's error.
func (c *client) waitClosed() *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("connection still open after 10s")
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closeCE
}

// subscribe sends a subscribe and returns the `subscribed` reply.
func (c *client) subscribe(req map[string]any) frame {
	c.t.Helper()
	req["type"] = "subscribe"
	c.send(req)
	return c.expect("subscribed")
}

// messages reads n message frames and returns their offsets, checking they
// are all of channel.
func (c *client) messages(channel string, n int) []frame {
	c.t.Helper()
	out := make([]frame, 0, n)
	for len(out) < n {
		f := c.expect("message")
		if f.str("channel") != channel {
			c.t.Fatalf("message of channel %q, want %q: %v", f.str("channel"), channel, f)
		}
		out = append(out, f)
	}
	return out
}

// quiet checks that no frame other than a ping arrives for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if ok && f.str("type") != "ping" {
				c.t.Fatalf("unexpected frame %v", f)
			}
			if !ok {
				return
			}
		case <-deadline:
			return
		}
	}
}

func offsets(fs []frame) []uint64 {
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = f.num("offset")
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func jsonUnmarshal(b []byte, v any) {
	if err := json.Unmarshal(b, v); err != nil {
		panic(err)
	}
}

// serveRefuses checks that serve stops at start on a bad value of flag,
// given on the command line (bad) or by its variable env (badEnv), with an
// error that names both.
func serveRefuses(t *testing.T, flag, env, bad, badEnv string) {
	t.Helper()
	for _, c := range []struct{ env, flag string }{{"", bad}, {badEnv, ""}} {
		t.Run(c.env+c.flag, func(t *testing.T) {
			t.Setenv(env, c.env)
			args := []string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "f.db")}
			if c.flag != "" {
				args = append(args, flag, c.flag)
			}
			// Bounded: a serve that took the value would run until cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out strings.Builder
			err := run(ctx, args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), flag+" ("+env+")") {
				t.Fatalf("serve %v with %s=%q: %v", args, env, c.env, err)
			}
		})
	}
}
