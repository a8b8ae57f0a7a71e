package js_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	"github.com/fazt-realtime/fazt/transport/js"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// env is an engine over a real SQLite log and an apps dir in t.TempDir(),
// served over loopback.
type env struct {
	t       testing.TB
	dir     string // the apps dir
	log     *events.Log
	members *projections.Membership
	eng     *js.Engine
	srv     *httptest.Server
	logs    *testutil.SyncBuffer
}

// newEnv writes files (paths relative to the apps dir) and starts an engine.
func newEnv(t testing.TB, files map[string]string, cfg js.Config) *env {
	t.Helper()
	return newEnvStore(t, files, cfg, nil)
}

// newEnvStore is newEnv with the engine's store made by wrap from the log.
func newEnvStore(t testing.TB, files map[string]string, cfg js.Config, wrap func(*events.Log) js.Store) *env {
	t.Helper()
	tmp := t.TempDir()
	e := &env{t: t, dir: filepath.Join(tmp, "apps"), logs: &testutil.SyncBuffer{}}
	for name, body := range files {
		e.write(name, body)
	}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	e.log, err = events.Open(context.Background(), events.Config{Path: filepath.Join(tmp, "fazt.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.log.Close() })
	e.members = projections.NewMembership(ws.Encoder{}, func(ctx context.Context, app, channel string) (uint64, string, error) {
		info, err := e.log.Channel(ctx, app, channel)
		return info.Head, info.Epoch, err
	}, 0)
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var store js.Store = e.log
	if wrap != nil {
		store = wrap(e.log)
	}
	e.eng = js.New(cfg, store, e.members, apps.NewRegistry(e.dir))
	e.srv = httptest.NewServer(e.eng)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) write(name, body string) {
	e.t.Helper()
	p := filepath.Join(e.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// jsClient bounds every request of these tests, so that a script the
// engine failed to interrupt fails the test instead of hanging it: past
// the longest handler limit a test sets (a minute), as a heap grown to
// its limit under -race on a slow machine took over 30 s.
var jsClient = &http.Client{Timeout: 2 * time.Minute}

// do sends a request to app's /api and returns the status and body.
func (e *env) do(app, method, path, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = app + ".localhost"
	resp, err := jsClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) get(app, path string) (int, string) { e.t.Helper(); return e.do(app, "GET", path, "") }

// errBody is a JS error answer.
type errBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	At    string `json:"at"`
}

func decodeErr(t testing.TB, body string) errBody {
	t.Helper()
	var b errBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return b
}

func TestHandlerRequestAndResponseShapes(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function (req) {
  switch (req.path) {
  case "/api/echo":
    return { method: req.method, path: req.path, query: req.query, json: req.json, body: req.body, ct: req.headers["content-type"], host: req.headers.host, app: req.app };
  case "/api/text":
    return { status: 202, headers: { "X-Thing": "yes" }, body: "plain" };
  case "/api/nothing":
    return undefined;
  case "/api/status-data":
    return { status: "ok" }; // not a response: status is not a number
  case "/api/fn":
    return function () {};
  case "/api/cookies":
    return { headers: { "Set-Cookie": ["a=1; Path=/", "b=2; Path=/"], "Transfer-Encoding": "gzip", "Connection": "close", "Content-Length": "1" }, body: "two" };
  case "/api/body-number":
    return { body: 42 };
  case "/api/body-uint16":
    return { body: new Uint16Array(2) };
  case "/api/body-bytes":
    return { body: new Uint8Array([104, 105]) };
  }
  return { status: 404, json: { error: "none" } };
};`}, js.Config{})

	req, _ := http.NewRequest("POST", e.srv.URL+"/api/echo?x=1&y=2&x=3", strings.NewReader(`{"a":[1,2]}`))
	req.Host = "a.localhost"
	req.Header.Set("Content-Type", "application/json")
	resp, err := jsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echo map[string]any
	json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("echo: %d %v", resp.StatusCode, resp.Header)
	}
	want := `{"app":"a","body":"{\"a\":[1,2]}","ct":"application/json","host":"a.localhost","json":{"a":[1,2]},"method":"POST","path":"/api/echo","query":{"x":"1","y":"2"}}`
	if got, _ := json.Marshal(echo); string(got) != want {
		t.Fatalf("echo\n got %s\nwant %s", got, want)
	}

	req, _ = http.NewRequest("GET", e.srv.URL+"/api/text", nil)
	req.Host = "a.localhost"
	resp, err = jsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || string(b) != "plain" || resp.Header.Get("X-Thing") != "yes" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("text: %d %q %v", resp.StatusCode, b, resp.Header)
	}

	if code, body := e.get("a", "/api/nothing"); code != 204 || body != "" {
		t.Fatalf("undefined: %d %q", code, body)
	}
	if code, body := e.get("a", "/api/status-data"); code != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("data with a status field: %d %q", code, body)
	}
	if code, body := e.get("a", "/api/fn"); code != 500 || !strings.Contains(decodeErr(t, body).Error, "not JSON") {
		t.Fatalf("function: %d %q", code, body)
	}
	// Each value of an array is a header of its own (two cookies, not one
	// broken one); headers net/http owns are not the handler's to set.
	req, _ = http.NewRequest("GET", e.srv.URL+"/api/cookies", nil)
	req.Host = "a.localhost"
	resp, err = jsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1; Path=/" || got[1] != "b=2; Path=/" || string(b) != "two" || len(resp.TransferEncoding) != 0 || resp.Close {
		t.Fatalf("cookies: %q %q %v %v close=%v", got, b, resp.TransferEncoding, resp.Header, resp.Close)
	}
	// A body is a string or bytes: a number, or another typed array, is
	// the script's error, not its String() sent as octets.
	for _, p := range []string{"/api/body-number", "/api/body-uint16"} {
		if code, body := e.get("a", p); code != 500 || !strings.Contains(decodeErr(t, body).Error, "want a string, an ArrayBuffer or a Uint8Array") {
			t.Fatalf("%s: %d %q", p, code, body)
		}
	}
	if code, body := e.get("a", "/api/body-bytes"); code != 200 || body != "hi" {
		t.Fatalf("Uint8Array body: %d %q", code, body)
	}
	if code, body := e.get("a", "/api/other"); code != 404 || strings.TrimSpace(body) != `{"error":"none"}` {
		t.Fatalf("404: %d %q", code, body)
	}
	// An app without api/main.js, and an app that does not exist.
	e.write("b/public/index.html", "hi")
	if code, body := e.get("b", "/api/x"); code != 404 || decodeErr(t, body).Code != "not_found" {
		t.Fatalf("no main.js: %d %q", code, body)
	}
	if code, _ := e.get("nope", "/api/x"); code != 404 {
		t.Fatalf("unknown app: %d", code)
	}
}

func TestRequireStaysInsideTheAppFolder(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/api/lib/greet.js": `const w = require("../../shared/word"); module.exports = n => w.word + ", " + n;`,
		"a/shared/word.js":   `exports.word = "hello";`,
		"a/api/data.json":    `{"n": 42}`,
		"b/api/secret.js":    `module.exports = "b's secret";`,
		"secret.js":          `module.exports = "server secret";`,
		"a/api/main.js": `
module.exports = function (req) {
  const what = req.query.m;
  try {
    return { ok: true, value: require(what) };
  } catch (e) {
    return { ok: false, error: String(e) };
  }
};`,
	}, js.Config{})
	// A symlink inside the app folder that points out of it.
	if err := os.Symlink(filepath.Join(e.dir, "b", "api", "secret.js"), filepath.Join(e.dir, "a", "api", "link.js")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		OK    bool   `json:"ok"`
		Value any    `json:"value"`
		Error string `json:"error"`
	}
	req := func(m string) result {
		t.Helper()
		code, body := e.get("a", "/api/?m="+m)
		var r result
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("require(%s): %d %s", m, code, body)
		}
		return r
	}
	// Inside: relative paths, nested requires, JSON, and absolute paths
	// (which start at the app folder).
	if r := req("./lib/greet"); !r.OK {
		t.Fatalf("require ./lib/greet: %v", r)
	}
	if r := req("./data.json"); !r.OK || r.Value.(map[string]any)["n"] != 42.0 {
		t.Fatalf("require ./data.json: %v", r)
	}
	if r := req("/shared/word.js"); !r.OK || r.Value.(map[string]any)["word"] != "hello" {
		t.Fatalf("require /shared/word.js: %v", r)
	}
	// Outside: climbing out, another app, the symlink, core modules.
	for m, want := range map[string]string{
		"../../b/api/secret": "outside the app folder",
		"../../secret":       "outside the app folder",
		"./link.js":          "outside the app folder",
		"/../../secret.js":   "Invalid module",
		"fs":                 "not available",
		"left-pad":           "Invalid module",
		"process":            "not available",
		"node:child_process": "not available",
	} {
		if r := req(m); r.OK || !strings.Contains(r.Error, want) {
			t.Errorf("require(%q) = %+v, want an error with %q", m, r, want)
		}
	}
	e.write("a/api/main.js", `module.exports = () => [typeof process, typeof setTimeout, typeof fetch, typeof XMLHttpRequest];`)
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != `["undefined","function","undefined","undefined"]` {
		t.Fatalf("globals: %d %s", code, body)
	}
}

func TestAsyncHandlersAndTimers(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"js": {"handler_timeout_ms": 2000}}`,
		"a/api/main.js": `
const sleep = ms => new Promise(r => setTimeout(r, ms));
module.exports = async function (req) {
  switch (req.path) {
  case "/api/await":
    await sleep(20);
    const a = await Promise.resolve(1);
    await sleep(1);
    return { a, b: await new Promise(r => setImmediate(() => r(2))) };
  case "/api/reject":
    await sleep(1);
    throw new TypeError("went wrong");
  case "/api/never":
    await new Promise(() => {});
    return 1;
  case "/api/leftover":
    setInterval(() => { globalThis.ticks = (globalThis.ticks || 0) + 1; }, 1);
    setTimeout(() => { while (true) {} }, 5);
    return "done";
  case "/api/ticks":
    await sleep(30);
    return globalThis.ticks || 0;
  }
};`}, js.Config{})
	if code, body := e.get("a", "/api/await"); code != 200 || strings.TrimSpace(body) != `{"a":1,"b":2}` {
		t.Fatalf("await: %d %s", code, body)
	}
	code, body := e.get("a", "/api/reject")
	if b := decodeErr(t, body); code != 500 || b.Error != "TypeError: went wrong" || !strings.HasPrefix(b.At, "api/main.js:") {
		t.Fatalf("reject: %d %s", code, body)
	}
	code, body = e.get("a", "/api/never")
	if b := decodeErr(t, body); code != 500 || !strings.Contains(b.Error, "never settled") {
		t.Fatalf("never: %d %s", code, body)
	}
	// Timers left behind are cancelled when the handler's value settles:
	// the interval does not tick on and the looping timeout never runs.
	if code, body := e.get("a", "/api/leftover"); code != 200 || strings.TrimSpace(body) != `"done"` {
		t.Fatalf("leftover: %d %s", code, body)
	}
	code, body = e.get("a", "/api/ticks")
	if code != 200 {
		t.Fatalf("ticks: %d %s", code, body)
	}
	// The same pooled runtime answered (one is idle at a time here): the
	// interval may have ticked before the first answer settled, never after.
	first := strings.TrimSpace(body)
	time.Sleep(50 * time.Millisecond)
	if _, again := e.get("a", "/api/ticks"); strings.TrimSpace(again) != first {
		t.Fatalf("interval kept ticking between requests: %s then %s", first, again)
	}
}

// unavailableStore is the log whose channel reads fail while down is set,
// as a database busy or on a full disk would.
type unavailableStore struct {
	*events.Log
	down atomic.Bool
}

func (s *unavailableStore) ChannelHistory(ctx context.Context, app, channel string, q domain.HistoryQuery, none bool) (domain.ChannelInfo, []domain.Message, error) {
	if s.down.Load() {
		return domain.ChannelInfo{}, nil, domain.Errorf(domain.CodeUnavailable, "event log cannot commit: database is locked")
	}
	return s.Log.ChannelHistory(ctx, app, channel, q, none)
}

// TestALoadThatAPassingFailureFailedIsTriedAgain: a script that reads
// history as it loads, while the log is unavailable, fails that run; the
// next run loads it again rather than answering the same failure until a
// file changes, as it does for a script that throws on its own.
func TestALoadThatAPassingFailureFailedIsTriedAgain(t *testing.T) {
	var st *unavailableStore
	e := newEnvStore(t, map[string]string{"a/api/main.js": `
const start = fazt.realtime.history("config", { last: 1 });
module.exports = () => ({ head: start.head });`}, js.Config{}, func(l *events.Log) js.Store { st = &unavailableStore{Log: l}; return st })
	st.down.Store(true)
	// The log's state, not the script's fault: 503, which may be tried
	// again.
	if code, body := e.get("a", "/api/"); code != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("while down: %d %s", code, body)
	}
	st.down.Store(false)
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != `{"head":0}` {
		t.Fatalf("once up: %d %s", code, body)
	}
	// A throw of the script's own is kept until a file changes.
	e.write("a/api/main.js", `throw new Error("broken"); module.exports = () => 1;`)
	for i := 0; i < 2; i++ {
		if code, body := e.get("a", "/api/"); code != 500 || !strings.Contains(body, "broken") {
			t.Fatalf("broken script: %d %s", code, body)
		}
	}
	if n := strings.Count(e.logs.String(), "js script failed to load"); n != 2 { // this one, and the first while down
		t.Errorf("%d failed loads logged, want 2:\n%s", n, e.logs.String())
	}
}

// TestTimersLeftBehindNeverRun: once a handler's value has settled, the
// callbacks it left behind never run, although the event loop runs an
// immediate's callback (and, at random, a timer due by then) on its way
// out; and a promise job queued after it, which goja runs, cannot call
// fazt.realtime: each here would broadcast after the answer was decided.
func TestTimersLeftBehindNeverRun(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = async function (req) {
  if (req.query.async) await new Promise((r) => setTimeout(r, 1));
  setImmediate(() => { console.log("late-callback"); fazt.realtime.broadcast("late", "immediate"); });
  setTimeout(() => { console.log("late-callback"); fazt.realtime.broadcast("late", "timeout"); }, 0);
  // Promise jobs that outlast the answer's: goja drains its queue after
  // the job that settles it. (A sync handler's jobs all run in its call,
  // before its value is looked at: those are the run's own.)
  if (req.query.async) (async () => { for (let i = 0; i < 50; i++) await null; fazt.realtime.broadcast("late", "microtask"); })();
  return "ok";
};`}, js.Config{})
	for i := 0; i < 20; i++ {
		for _, q := range []string{"", "?async=1"} {
			if code, body := e.get("a", "/api/"+q); code != 200 || strings.TrimSpace(body) != `"ok"` {
				t.Fatalf("%s: %d %s", q, code, body)
			}
		}
	}
	info, err := e.log.Channel(context.Background(), "a", "late")
	if err != nil || info.Head != 0 {
		t.Fatalf("broadcasts after the answer: head %d, %v", info.Head, err)
	}
	// The callbacks did not run at all (a broadcast from one would be
	// refused anyway, its run's answer decided).
	if strings.Contains(e.logs.String(), "late-callback") {
		t.Fatalf("a timer left behind ran:\n%.500s", e.logs.String())
	}
}

func TestRuntimesArePooledAndScriptsReloadOnChange(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/api/lib/v.js": `module.exports = "one";`,
		"a/api/main.js": `
let calls = 0; // per runtime: counts the calls this runtime served
const v = require("./lib/v");
module.exports = () => ({ calls: ++calls, v });`,
	}, js.Config{})
	for i := 1; i <= 3; i++ {
		want := `{"calls":` + string(rune('0'+i)) + `,"v":"one"}`
		if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != want {
			t.Fatalf("call %d: %d %s, want %s (the same runtime reused)", i, code, body, want)
		}
	}
	// A required file changes: the next request runs the new version in a
	// fresh runtime.
	e.write("a/api/lib/v.js", `module.exports = "two!";`)
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != `{"calls":1,"v":"two!"}` {
		t.Fatalf("after editing lib/v.js: %d %s", code, body)
	}
	// A syntax error is answered until the file is fixed.
	e.write("a/api/main.js", `module.exports = () => {;`)
	for i := 0; i < 2; i++ {
		code, body := e.get("a", "/api/")
		if b := decodeErr(t, body); code != 500 || !strings.Contains(b.Error, "SyntaxError") {
			t.Fatalf("syntax error: %d %s", code, body)
		}
	}
	e.write("a/api/main.js", `module.exports = () => "fixed";`)
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != `"fixed"` {
		t.Fatalf("fixed: %d %s", code, body)
	}
	// A required file that is missing fails the script until it appears,
	// without main.js changing: deploying main.js first is not fatal.
	e.write("a/api/main.js", `const w = require("./lib/w"); module.exports = () => w;`)
	for i := 0; i < 2; i++ {
		if code, body := e.get("a", "/api/"); code != 500 || !strings.Contains(body, "Invalid module") {
			t.Fatalf("lib/w missing: %d %s", code, body)
		}
	}
	e.write("a/api/lib/w.js", `module.exports = "here";`)
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != `"here"` {
		t.Fatalf("after lib/w.js appeared: %d %s", code, body)
	}
}

func TestRunawayScriptsAreInterrupted(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"js": {"handler_timeout_ms": 300}}`,
		"a/api/main.js": `
function deep(n) { return deep(n + 1) + 1; }
module.exports = async function (req) {
  if (req.path === "/api/spin") { for (;;) {} }
  if (req.path === "/api/spin-later") { await new Promise(r => setTimeout(r, 1)); for (;;) {} }
  if (req.path === "/api/sleep") { await new Promise(r => setTimeout(r, 60000)); }
  if (req.path === "/api/deep") { return deep(0); }
  return "ok";
};`,
		"b/api/main.js": `for (;;) {}`,
	}, js.Config{HandlerTimeout: 10 * time.Second})
	for _, p := range []string{"/api/spin", "/api/spin-later", "/api/sleep"} {
		code, body := e.get("a", p)
		if b := decodeErr(t, body); code != 500 || !strings.Contains(b.Error, "time limit of 300ms") {
			t.Fatalf("%s: %d %s", p, code, body)
		}
		if code, body := e.get("a", "/api/ok"); code != 200 || strings.TrimSpace(body) != `"ok"` {
			t.Fatalf("after %s: %d %s", p, code, body)
		}
	}
	code, body := e.get("a", "/api/deep")
	if b := decodeErr(t, body); code != 500 || !strings.Contains(b.Error, "nested calls") {
		t.Fatalf("deep recursion: %d %s", code, body)
	}
	// A script that loops while loading is interrupted at the server's
	// limit, and answered 503 (a busy machine may have been why) for
	// loadRetry without being run again: a loop at load costs its limit
	// once each 5 s, not at every request.
	e2 := newEnv(t, map[string]string{"b/api/main.js": `for (;;) {}`}, js.Config{HandlerTimeout: 200 * time.Millisecond})
	for i := 0; i < 3; i++ {
		code, body := e2.get("b", "/api/")
		if b := decodeErr(t, body); code != 503 || b.Code != "unavailable" || !strings.Contains(b.Error, "time limit") {
			t.Fatalf("looping load: %d %s", code, body)
		}
	}
	if n := strings.Count(e2.logs.String(), "js script failed to load"); n != 1 {
		t.Fatalf("%d loads of a script that loops at load within 5 s, want 1:\n%s", n, e2.logs.String())
	}
}

// TestAThrownValueThatNeverDescribesItselfTimesOut: what a script throws
// is described (its toString, its stack) while the run's time limit still
// holds, so a toString or a stack getter that never ends is interrupted
// like any other loop, and one that throws is said to. Before, the
// description ran after the limit was disarmed: the request hung, and a
// CPU spun, for good.
func TestAThrownValueThatNeverDescribesItselfTimesOut(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"js": {"handler_timeout_ms": 1000}}`,
		"a/api/main.js": `
const spin = { toString() { for (;;) {} } };
const spinStack = { get stack() { for (;;) {} }, toString() { return "x"; } };
const throwStack = { get stack() { throw new Error("no"); }, toString() { return "y"; } };
module.exports = async function (req) {
  const v = { spin, spinStack, throwStack }[req.query.what];
  if (req.query.reject) { await null; return Promise.reject(v); }
  throw v;
};`,
	}, js.Config{})
	for _, tc := range []struct{ what, want string }{
		{"spin", "time limit of 1s"},
		{"spinStack", "time limit of 1s"},
		{"throwStack", "stack could not be read"},
	} {
		for _, reject := range []string{"", "&reject=1"} {
			code, body := e.get("a", "/api/?what="+tc.what+reject)
			if b := decodeErr(t, body); code != 500 || !strings.Contains(b.Error, tc.want) {
				t.Errorf("%s%s: %d %s, want 500 %q", tc.what, reject, code, body, tc.want)
			}
		}
	}
	if code, body := e.get("a", "/api/?what=none"); code != 500 || !strings.Contains(body, "undefined") {
		t.Errorf("after: %d %s", code, body)
	}
}

func TestConsoleGoesToTheServerLog(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function (req) {
  console.log("hello %s", "log", 1);
  console.warn("careful");
  console.error("bad");
  require("console").info("required");
  console.log("€".repeat(10000));
  return req.id;
};`}, js.Config{})
	code, body := e.get("a", "/api/")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var id string
	json.Unmarshal([]byte(body), &id)
	logs := e.logs.String()
	for _, want := range []string{
		`level=INFO msg="hello log 1"`, `level=WARN msg=careful`, `level=ERROR msg=bad`, `level=INFO msg=required`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(line, "source=console") && !(strings.Contains(line, "app=a") && strings.Contains(line, "request="+id) && strings.Contains(line, "file=api/main.js")) {
			t.Errorf("console line not tagged with app, file and request %s: %s", id, line)
		}
	}
	// A long line is cut at 8 KiB, on a character's boundary, and says
	// how much was left out: of 30,000 bytes of "€" (3 each), 2,730 are
	// kept, 8,190 bytes.
	if !strings.Contains(logs, strings.Repeat("€", 2730)+"… (21810 more bytes)") || strings.Contains(logs, strings.Repeat("€", 2731)) {
		t.Errorf("a 30,000-byte console line was not cut at 8 KiB:\n%.300s", logs)
	}
}

func TestRealtimeCallsValidateLikeTheAPI(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"limits": {"max_message_bytes": 100}}`,
		"a/api/main.js": `
module.exports = function (req) {
  const r = fazt.realtime;
  const calls = {
    badName: () => r.broadcast("a b", 1),
    noName: () => r.broadcast(undefined, 1),
    noData: () => r.broadcast("room"),
    fnData: () => r.broadcast("room", () => 1),
    nullData: () => r.broadcast("room", null),
    toJSONNull: () => r.broadcast("room", { toJSON: () => null }),
    nullAll: () => r.broadcastAll(null),
    tooBig: () => r.broadcast("room", "x".repeat(200)),
    historyNegative: () => r.history("room", { offset: -1 }),
    kickNobody: () => r.kick("nobody", "x"),
  };
  try { calls[req.query.c](); return "no error"; } catch (e) { return { message: e.message, code: e.code }; }
};`}, js.Config{})
	for c, want := range map[string]string{
		"badName": "invalid_channel", "noName": "invalid_channel", "noData": "bad_request", "fnData": "bad_request",
		"nullData": "bad_request", "toJSONNull": "bad_request", "nullAll": "bad_request",
		"tooBig": "too_large", "historyNegative": "bad_request", "kickNobody": "not_found",
	} {
		_, body := e.get("a", "/api/?c="+c)
		var got struct{ Message, Code string }
		json.Unmarshal([]byte(body), &got)
		if got.Code != want || !strings.HasPrefix(got.Message, want+": ") {
			t.Errorf("%s: %s, want code %s", c, body, want)
		}
	}
	evs, err := e.log.Events(context.Background(), domain.AuditQuery{App: "a"})
	if err != nil || len(evs) != 0 {
		t.Fatalf("refused calls recorded events: %v %v", evs, err)
	}
}

func TestRunsOfAScriptQueueAndTheLimitStartsWithTheRun(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json":    `{"js": {"handler_timeout_ms": 900}}`,
		"a/api/main.js": `module.exports = async () => { await new Promise(r => setTimeout(r, 600)); return "slept"; };`,
		"b/api/main.js": `module.exports = () => "b";`,
	}, js.Config{MaxConcurrent: 1})
	// One run at a time: the second waits 600ms and then has its whole
	// 900ms; the third would wait 1200ms, more than its limit, and is
	// answered 503 instead.
	codes := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func() {
			code, _ := e.get("a", "/api/")
			codes <- code
		}()
	}
	// Another app's script has slots of its own.
	if code, body := e.get("b", "/api/"); code != 200 || strings.TrimSpace(body) != `"b"` {
		t.Fatalf("b while a is busy: %d %s", code, body)
	}
	got := map[int]int{}
	for i := 0; i < 3; i++ {
		got[<-codes]++
	}
	if got[200] != 2 || got[503] != 1 {
		t.Fatalf("statuses %v, want two 200 and one 503", got)
	}
}

const batchScript = `
module.exports = function (req) {
  const r = fazt.realtime;
  const calls = {
    ok: () => r.broadcastBatch([{ channel: "x", data: 1 }, { channel: "y", data: { n: 2 } }, { channel: "x", data: 3 }]),
    badName: () => r.broadcastBatch([{ channel: "x", data: 1 }, { channel: "a b", data: 2 }]),
    noData: () => r.broadcastBatch([{ channel: "x" }]),
    tooBig: () => r.broadcastBatch([{ channel: "x", data: 1 }, { channel: "x", data: "x".repeat(200) }]),
    notArray: () => r.broadcastBatch({ channel: "x", data: 1 }),
    notObject: () => r.broadcastBatch([1]),
    empty: () => r.broadcastBatch([]),
    tooMany: () => r.broadcastBatch(Array.from({ length: 1001 }, (_, i) => ({ channel: "x", data: i }))),
  };
  if (fazt.app === "b") { // default limits: 70 messages of 60 KB are over 4 MiB
    return (() => { try { r.broadcastBatch(Array.from({ length: 70 }, () => ({ channel: "x", data: "x".repeat(60000) }))); return "no error"; } catch (e) { return { message: e.message, code: e.code }; } })();
  }
  try { return calls[req.query.c](); } catch (e) { return { message: e.message, code: e.code }; }
};`

// TestBroadcastBatch: fazt.realtime.broadcastBatch commits its messages in
// one transaction, in order, and answers each one's offset; a message that
// fails a check refuses the whole batch, naming its index, and commits
// nothing.
func TestBroadcastBatch(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json":    `{"limits": {"max_message_bytes": 100}}`,
		"a/api/main.js": batchScript,
		"b/api/main.js": batchScript,
	}, js.Config{})
	for c, want := range map[string][2]string{
		"badName":   {"invalid_channel", "messages[1]"},
		"noData":    {"bad_request", "messages[0]"},
		"tooBig":    {"too_large", "messages[1]"},
		"notArray":  {"bad_request", "array"},
		"notObject": {"bad_request", "messages[0]"},
		"empty":     {"bad_request", "needs messages"},
		"tooMany":   {"too_large", "at most 1000"},
	} {
		_, body := e.get("a", "/api/?c="+c)
		var got struct{ Message, Code string }
		json.Unmarshal([]byte(body), &got)
		if got.Code != want[0] || !strings.HasPrefix(got.Message, want[0]+": ") || !strings.Contains(got.Message, want[1]) {
			t.Errorf("%s: %s, want code %s naming %q", c, body, want[0], want[1])
		}
	}
	_, big := e.get("b", "/api/")
	var bigErr struct{ Message, Code string }
	if json.Unmarshal([]byte(big), &bigErr) != nil || bigErr.Code != "too_large" || !strings.Contains(bigErr.Message, "over 4194304 bytes") {
		t.Errorf("a batch over 4 MiB: %.200s", big)
	}
	if evs, err := e.log.Events(context.Background(), domain.AuditQuery{App: "a"}); err != nil || len(evs) != 0 {
		t.Fatalf("refused batches committed %d events (%v)", len(evs), err)
	}
	code, body := e.get("a", "/api/?c=ok")
	var got []struct {
		Channel string
		Offset  uint64
		Epoch   string
		Seq     uint64
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 || len(got) != 3 {
		t.Fatalf("ok: %d %s", code, body)
	}
	for i, want := range []struct {
		channel string
		offset  uint64
	}{{"x", 1}, {"y", 1}, {"x", 2}} {
		if got[i].Channel != want.channel || got[i].Offset != want.offset || got[i].Epoch == "" || got[i].Seq != uint64(i+1) {
			t.Errorf("result %d: %+v, want %s offset %d seq %d", i, got[i], want.channel, want.offset, i+1)
		}
	}
	evs, err := e.log.Events(context.Background(), domain.AuditQuery{App: "a"})
	if err != nil || len(evs) != 3 {
		t.Fatalf("%d events (%v)", len(evs), err)
	}
	if mb := evs[1].Fact.(*domain.MessageBroadcast); string(mb.Data) != `{"n":2}` || mb.Publisher.Kind != domain.ActorJS {
		t.Fatalf("second event %+v", mb)
	}
}

// TestOnDisconnectWaitsForASlot: when many sessions end at once and the
// hook is slow, onDisconnect runs wait for a run slot while their context
// lasts, not only the hook's time limit: every end is told.
func TestOnDisconnectWaitsForASlot(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/api/realtime.js": `
exports.onDisconnect = function (client, reason) {
  const t = Date.now();
  while (Date.now() - t < 400) {} // a slow hook: 400 ms of its 1 s limit
  fazt.realtime.broadcast("left", client.id);
};`}, js.Config{MaxConcurrent: 1, HookTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 5 { // the last ones wait 1.2 and 1.6 s for the one slot
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.eng.OnDisconnect(ctx, domain.Client{ID: fmt.Sprint("c", i), App: "a"}, domain.ReasonClientClosed, nil)
		}()
	}
	wg.Wait()
	evs, err := e.log.Events(context.Background(), domain.AuditQuery{App: "a"})
	if err != nil || len(evs) != 5 {
		t.Fatalf("%d of 5 onDisconnect runs broadcast (%v)\n%s", len(evs), err, e.logs.String())
	}
}

// TestAThrowWhileTheAnswerIsReadIsTheScriptsError returns a response
// whose header value throws when it is read, from a plain handler and
// from an async one: both answer 500 with the script's message and where
// it threw, as any throw of the script does (they were reported as a
// crash of the script engine, with no place, and cost the runtime).
func TestAThrowWhileTheAnswerIsReadIsTheScriptsError(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const thrown = () => ({ status: 201, headers: { "X-Bad": { toString() { throw new Error("no header for you"); } } }, body: "x" });
const typeError = () => ({ headers: { "X-Bad": Object.create(null) }, body: "x" });
const deep = { get toString() { return () => String(deep); } };
const overflow = () => ({ headers: { "X-Bad": deep }, body: "x" });
module.exports = function (req) {
  const answer = { thrown, typeError, overflow }[req.query.what];
  return req.query.async ? Promise.resolve().then(answer) : answer();
};`}, js.Config{})
	for _, tc := range []struct{ what, err, at string }{
		{"thrown", "Error: no header for you", "api/main.js:2:"},
		{"typeError", "TypeError: ", ""},
		{"overflow", "RangeError: more than", "api/main.js:"},
	} {
		for _, async := range []string{"", "&async=1"} {
			code, body := e.get("a", "/api/?what="+tc.what+async)
			if b := decodeErr(t, body); code != 500 || !strings.HasPrefix(b.Error, tc.err) || !strings.HasPrefix(b.At, tc.at) {
				t.Errorf("%s%s: %d %s, want 500 %q at %q", tc.what, async, code, body, tc.err, tc.at)
			}
		}
	}
	if strings.Contains(e.logs.String(), "engine failure") {
		t.Errorf("logged as an engine failure:\n%s", e.logs.String())
	}
}
