package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jsClient bounds every request of these tests, so that a script the
// server failed to interrupt fails the test instead of hanging it.
var jsClient = &http.Client{Timeout: 30 * time.Second}

// writeFiles writes files (paths relative to the apps dir) into a running
// node's apps dir.
func (tn *testNode) writeFiles(files map[string]string) {
	tn.t.Helper()
	for name, body := range files {
		p := filepath.Join(tn.cfg.AppsDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tn.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tn.t.Fatal(err)
		}
	}
}

// jsCall sends a request to app's /api/... and decodes the JSON answer
// into out when it is non-nil.
func (tn *testNode) jsCall(app, method, path string, body any, out any) (int, string) {
	tn.t.Helper()
	return tn.request(jsClient, app, "", method, path, body, out)
}

// callJS calls fazt.realtime.<fn>(args...) through the generic handler
// below and returns its JSON result.
func (tn *testNode) callJS(app, fn string, args ...any) (int, map[string]any) {
	tn.t.Helper()
	var out map[string]any
	if args == nil {
		args = []any{}
	}
	code, _ := tn.jsCall(app, "POST", "/api/call", map[string]any{"fn": fn, "args": args}, &out)
	return code, out
}

// jsHistory reads a channel's history through fazt.realtime.history (the
// app runs callerJS) and returns the messages' offsets.
func (tn *testNode) jsHistory(app, channel string, opts map[string]any) []uint64 {
	tn.t.Helper()
	code, out := tn.callJS(app, "history", channel, opts)
	if code != 200 {
		tn.t.Fatalf("JS history of %s %v: %d %v", channel, opts, code, out)
	}
	var offs []uint64
	for _, m := range out["result"].(map[string]any)["messages"].([]any) {
		offs = append(offs, uint64(m.(map[string]any)["offset"].(float64)))
	}
	return offs
}

// callerJS exposes every fazt.realtime function over HTTP: the answer is
// {result} or, for a JS exception, 400 {error, code}.
const callerJS = `
module.exports = function (req) {
  const { fn, args } = req.json;
  try {
    return { result: fazt.realtime[fn](...args) };
  } catch (e) {
    return { status: 400, json: { error: e.message, code: e.code } };
  }
};
`

func TestJSRealtimeFunctions(t *testing.T) {
	tn := startTestNode(t, map[string]string{"rt": ""})
	tn.writeFiles(map[string]string{"rt/api/main.js": callerJS})
	c := tn.dial("rt", "")
	c.subscribe(map[string]any{"channel": "room"})

	// broadcast: committed, with offset and epoch, and delivered.
	code, out := tn.callJS("rt", "broadcast", "room", map[string]any{"text": "hi"})
	sent, _ := out["result"].(map[string]any)
	if code != 200 || sent["offset"] != 1.0 || sent["epoch"] == "" || sent["channel"] != "room" {
		t.Fatalf("broadcast: %d %v", code, out)
	}
	m := c.messages("room", 1)[0]
	if m.num("offset") != 1 || m["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("message %v", m)
	}
	epoch := sent["epoch"].(string)
	if p := tn.publish("rt", "room", "from the API"); p.Offset != 2 || p.Epoch != epoch {
		t.Fatalf("API publish after JS broadcast: %+v", p)
	}
	c.messages("room", 1)

	// broadcastAll reaches every connection, with no channel.
	if code, out := tn.callJS("rt", "broadcastAll", map[string]any{"all": true}); code != 200 || out["result"].(map[string]any)["connections"] != 1.0 {
		t.Fatalf("broadcastAll: %d %v", code, out)
	}
	if f := c.expect("message"); f.str("channel") != "" || f["data"].(map[string]any)["all"] != true {
		t.Fatalf("broadcastAll frame %v", f)
	}

	// subscribers, count, channels.
	if _, out := tn.callJS("rt", "subscribers", "room"); !slices.Equal(toStrings(out["result"]), []string{c.id}) {
		t.Fatalf("subscribers: %v", out)
	}
	if _, out := tn.callJS("rt", "subscribers", "empty"); len(toStrings(out["result"])) != 0 {
		t.Fatalf("subscribers of an empty channel: %v", out)
	}
	if _, out := tn.callJS("rt", "count", "room"); out["result"] != 1.0 {
		t.Fatalf("count(room): %v", out)
	}
	if _, out := tn.callJS("rt", "count"); out["result"] != 1.0 {
		t.Fatalf("count(): %v", out)
	}
	_, out = tn.callJS("rt", "channels")
	chans, _ := out["result"].([]any)
	if len(chans) != 1 {
		t.Fatalf("channels: %v", out)
	}
	if ch := chans[0].(map[string]any); ch["channel"] != "room" || ch["subscribers"] != 1.0 || ch["head"] != 2.0 || ch["epoch"] != epoch || ch["first_offset"] != 1.0 {
		t.Fatalf("channels: %v", chans)
	}

	// history, by offset, last and since, with a limit.
	history := func(opts map[string]any) []uint64 { t.Helper(); return tn.jsHistory("rt", "room", opts) }
	tn.callJS("rt", "broadcast", "room", "three")
	c.messages("room", 1)
	if got := history(map[string]any{"offset": 0}); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("history offset 0: %v", got)
	}
	if got := history(map[string]any{"offset": 1, "limit": 1}); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("history offset 1 limit 1: %v", got)
	}
	if got := history(map[string]any{"last": 2}); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("history last 2: %v", got)
	}
	if got := history(map[string]any{"since": time.Now().Add(time.Hour).UnixMilli()}); len(got) != 0 {
		t.Fatalf("history since the future: %v", got)
	}
	if got := history(map[string]any{"since": 0}); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("history since 0: %v", got)
	}
	// reverse as the API takes it: a query's text passed on ("false" was
	// taken as true), and nothing else.
	for _, v := range []any{true, 1, "true", "1"} {
		if got := history(map[string]any{"reverse": v}); !slices.Equal(got, []uint64{3, 2, 1}) {
			t.Fatalf("history reverse %#v: %v", v, got)
		}
	}
	for _, v := range []any{false, 0, "false", "0", nil} {
		if got := history(map[string]any{"reverse": v}); !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Fatalf("history reverse %#v: %v", v, got)
		}
	}
	for _, v := range []any{"TRUE", "yes", 2, map[string]any{"a": 1}, []any{1}} {
		if code, out := tn.callJS("rt", "history", "room", map[string]any{"reverse": v}); code != 400 || out["code"] != "bad_request" {
			t.Errorf("history reverse %#v: %d %v, want 400 bad_request", v, code, out)
		}
	}
	_, out = tn.callJS("rt", "history", "room", map[string]any{"last": 1})
	if msg := out["result"].(map[string]any)["messages"].([]any)[0].(map[string]any); msg["data"] != "three" {
		t.Fatalf("history data: %v", msg)
	}

	// The audit shows the JS handler as the publisher.
	a := tn.audit("rt", "type=broadcast,broadcast_all")
	if len(a.Events) != 4 {
		t.Fatalf("audit: %v", a.types())
	}
	for i, want := range []string{"js", "admin_key", "js", "js"} {
		pub := a.Events[i].Event["publisher"].(map[string]any)
		if pub["kind"] != want || want == "js" && pub["id"] != "api/main.js" {
			t.Fatalf("event %d publisher %v, want kind %s", i, pub, want)
		}
	}

	// kick: the client is told and closed; the audit says a JS handler did it.
	if code, out := tn.callJS("rt", "kick", c.id, "bye"); code != 200 || out["result"].(map[string]any)["kicked"] != true {
		t.Fatalf("kick: %d %v", code, out)
	}
	if d := c.expect("disconnect"); d.num("code") != 4000 || d.str("reason") != "kicked: bye" {
		t.Fatalf("disconnect %v", d)
	}
	k := tn.audit("rt", "type=kicked")
	if by := k.Events[0].Event["by"].(map[string]any); by["kind"] != "js" || by["id"] != "api/main.js" {
		t.Fatalf("kick by %v", by)
	}
	waitFor(t, func() bool { _, out := tn.callJS("rt", "count"); return out["result"] == 0.0 })
	if code, out := tn.callJS("rt", "kick", c.id, "again"); code != 400 || out["code"] != "not_found" {
		t.Fatalf("kick of a gone client: %d %v", code, out)
	}
}

// publishedAndMessage reads the reply to a client publish and the message
// it broadcast to the publisher, which may come in either order.
func (c *client) publishedAndMessage() (published, message frame) {
	c.t.Helper()
	for published == nil || message == nil {
		switch f := c.next(); f.str("type") {
		case "published":
			published = f
		case "message":
			message = f
		default:
			c.t.Fatalf("want published and message, got %v", f)
		}
	}
	return published, message
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestJSAppsStayApart(t *testing.T) {
	tn := startTestNode(t, map[string]string{"a": "", "b": ""})
	tn.writeFiles(map[string]string{"a/api/main.js": callerJS, "b/api/main.js": callerJS})
	ca := tn.dial("a", "")
	ca.subscribe(map[string]any{"channel": "room"})
	cb := tn.dial("b", "")
	cb.subscribe(map[string]any{"channel": "room"})

	if code, _ := tn.callJS("a", "broadcast", "room", "for a"); code != 200 {
		t.Fatal(code)
	}
	if f := ca.messages("room", 1)[0]; f["data"] != "for a" {
		t.Fatalf("a got %v", f)
	}
	cb.quiet(200 * time.Millisecond)
	tn.callJS("b", "broadcastAll", "for all of b")
	cb.expect("message")
	ca.quiet(200 * time.Millisecond)

	if _, out := tn.callJS("b", "subscribers", "room"); !slices.Equal(toStrings(out["result"]), []string{cb.id}) {
		t.Fatalf("b's subscribers of room: %v", out)
	}
	if _, out := tn.callJS("b", "history", "room", map[string]any{"offset": 0}); len(out["result"].(map[string]any)["messages"].([]any)) != 0 {
		t.Fatalf("b sees a's history: %v", out)
	}
	if _, out := tn.callJS("b", "channels"); len(out["result"].([]any)) != 1 || out["result"].([]any)[0].(map[string]any)["head"] != 0.0 {
		t.Fatalf("b's channels: %v", out)
	}
	if code, out := tn.callJS("b", "kick", ca.id, "not yours"); code != 400 || out["code"] != "not_found" {
		t.Fatalf("b kicking a's client: %d %v", code, out)
	}
	ca.send(map[string]any{"type": "ping"})
	ca.expect("pong")
}

const hooksJS = `
exports.onConnect = function (c) {
  if (c.query.deny === "throw") throw new Error("go away, " + c.query.name);
  if (c.query.deny) return false;
};
exports.onSubscribe = function (c, ch) {
  if (ch.startsWith("no-")) throw new Error("not " + ch);
  if (ch === "false") return false;
  if (ch === "whoami") fazt.realtime.broadcast("whoami", c);
  if (ch === "spin") for (;;) {}
  return true;
};
exports.onPublish = async function (c, ch, data) {
  await null;
  if (ch === "drop") return null;
  if (ch === "refuse") throw new Error("no publishing to " + ch);
  if (ch === "as-is") return undefined;
  if (ch === "nan") return NaN;
  return { wrapped: data, by: c.id };
};
exports.onDisconnect = function (c, reason) {
  if (c.query.name) fazt.realtime.broadcast("log", { left: c.id, reason, name: c.query.name });
};
`

func TestJSHooks(t *testing.T) {
	tn := startTestNode(t, map[string]string{"hk": `{"js": {"hook_timeout_ms": 300}}`})
	tn.writeFiles(map[string]string{"hk/api/realtime.js": hooksJS})

	// onConnect: false, and a throw with its message, refuse before the
	// upgrade; anything else allows.
	for q, want := range map[string]string{"deny=1": "connection refused by onConnect", "deny=throw&name=bob": "go away, bob"} {
		_, err := tn.tryDial("hk", q)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), `"code":"not_allowed"`) || !strings.Contains(err.Error(), want) {
			t.Fatalf("dial ?%s: %v, want 403 not_allowed %q", q, err, want)
		}
	}
	c := tn.dial("hk", "name=ann&x=1")

	// onSubscribe: the client carries id, app, remote, connect time, query.
	c.subscribe(map[string]any{"channel": "whoami", "offset": 0})
	who := c.messages("whoami", 1)[0]["data"].(map[string]any)
	if who["id"] != c.id || who["app"] != "hk" || !strings.HasPrefix(who["remote"].(string), "127.0.0.1:") ||
		who["connectedAt"].(float64) < float64(time.Now().Add(-time.Minute).UnixMilli()) ||
		who["query"].(map[string]any)["name"] != "ann" || who["query"].(map[string]any)["x"] != "1" {
		t.Fatalf("client as hooks see it: %v", who)
	}
	for ch, want := range map[string]string{"no-x": "not no-x", "false": "refused by onSubscribe", "spin": "time limit of 300ms"} {
		c.send(map[string]any{"type": "subscribe", "channel": ch, "id": ch})
		e := c.expect("error")
		if e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), want) || e.str("id") != ch {
			t.Fatalf("subscribe %s: %v, want not_allowed %q", ch, e, want)
		}
	}
	c.subscribe(map[string]any{"channel": "ok"})

	// onPublish: changed data is broadcast, even though app.json does not
	// let clients publish; null drops; a throw refuses; undefined leaves
	// the decision to app.json, which says no; a value whose JSON is null
	// (NaN) refuses, as the hook's error.
	c.send(map[string]any{"type": "publish", "channel": "ok", "data": map[string]any{"n": 1}})
	p, msg := c.publishedAndMessage()
	if p.num("offset") != 1 {
		t.Fatalf("published %v", p)
	}
	if m := msg["data"].(map[string]any); m["by"] != c.id || m["wrapped"].(map[string]any)["n"] != 1.0 {
		t.Fatalf("changed message %v", m)
	}
	c.send(map[string]any{"type": "publish", "channel": "drop", "data": 1})
	if p := c.expect("published"); p["dropped"] != true {
		t.Fatalf("dropped publish: %v", p)
	}
	for ch, want := range map[string]string{"refuse": "no publishing to refuse", "as-is": "may not publish", "nan": "whose JSON is null"} {
		c.send(map[string]any{"type": "publish", "channel": ch, "data": 1})
		if e := c.expect("error"); e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), want) {
			t.Fatalf("publish to %s: %v, want %q", ch, e, want)
		}
	}
	if a := tn.audit("hk", "type=broadcast&channel=ok"); len(a.Events) != 1 || a.Events[0].Event["publisher"].(map[string]any)["kind"] != "client" {
		t.Fatalf("audit of the client publish: %v", a.Events)
	}

	// onDisconnect is told, and may broadcast; the hook's file is the actor.
	watcher := tn.dial("hk", "")
	watcher.subscribe(map[string]any{"channel": "log"})
	c.conn.Close()
	left := watcher.messages("log", 1)[0]["data"].(map[string]any)
	if left["left"] != c.id || left["name"] != "ann" || left["reason"] != "connection_lost" && left["reason"] != "client_closed" {
		t.Fatalf("onDisconnect broadcast: %v", left)
	}
	a := tn.audit("hk", "type=broadcast&channel=log")
	if pub := a.Events[0].Event["publisher"].(map[string]any); pub["kind"] != "js" || pub["id"] != "api/realtime.js" {
		t.Fatalf("onDisconnect publisher %v", pub)
	}
}

func TestJSNoHooksBehavesAsBefore(t *testing.T) {
	tn := startTestNode(t, map[string]string{"open": `{"client_publish": true}`, "closed": ""})
	// A realtime.js without hooks changes nothing either.
	tn.writeFiles(map[string]string{"open/api/realtime.js": "exports.unrelated = 1;"})
	for app, allowed := range map[string]bool{"open": true, "closed": false} {
		c := tn.dial(app, "")
		c.subscribe(map[string]any{"channel": "admin-x"})
		c.send(map[string]any{"type": "publish", "channel": "admin-x", "data": "  hi  "})
		if allowed {
			if _, m := c.publishedAndMessage(); m["data"] != "  hi  " {
				t.Fatalf("%s: data changed without a hook: %v", app, m)
			}
		} else if e := c.expect("error"); e.str("code") != "not_allowed" {
			t.Fatalf("%s: %v", app, e)
		}
	}
}

func TestJSInfiniteLoopIsInterruptedWhileOthersAreServed(t *testing.T) {
	tn := startTestNode(t, map[string]string{"spin": `{"js": {"handler_timeout_ms": 1500}}`})
	tn.writeFiles(map[string]string{"spin/api/main.js": `
module.exports = function (req) {
  if (req.path === "/api/spin") {
    fazt.realtime.broadcast("started", "spinning");
    for (;;) {}
  }
  return fazt.realtime.broadcast("room", "served");
};`})
	watcher := tn.dial("spin", "")
	watcher.subscribe(map[string]any{"channel": "started"})
	var (
		spinning atomic.Bool
		wg       sync.WaitGroup
		code     int
		body     string
	)
	spinning.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer spinning.Store(false)
		code, body = tn.jsCall("spin", "GET", "/api/spin", nil, nil)
	}()
	// From here on the loop runs: every request answered before the spin
	// request returns was served beside it.
	watcher.messages("started", 1)
	served := 0
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 10000 && spinning.Load() && time.Now().Before(deadline); i++ {
		if c, b := tn.jsCall("spin", "GET", "/api/ok", nil, nil); c != 200 {
			t.Fatalf("request during the loop: %d %s", c, b)
		}
		if spinning.Load() {
			served++
		}
	}
	wg.Wait()
	var e struct{ Error, Code string }
	json.Unmarshal([]byte(body), &e)
	if code != 500 || !strings.Contains(e.Error, "time limit of 1.5s") || e.Code != "internal" {
		t.Fatalf("spin: %d %s", code, body)
	}
	if served == 0 {
		t.Fatalf("no request was served while the loop ran")
	}
	if c, _ := tn.jsCall("spin", "GET", "/api/ok", nil, nil); c != 200 {
		t.Fatalf("after the loop: %d", c)
	}
}

func TestJSThrowingHandler(t *testing.T) {
	tn := startTestNode(t, map[string]string{"th": ""})
	tn.writeFiles(map[string]string{"th/api/main.js": `module.exports = function (req) {
  const x = 1;
  throw new RangeError("boom " + x);
};`})
	var e struct{ Error, Code, At string }
	code, body := tn.jsCall("th", "POST", "/api/x", nil, &e)
	if code != 500 || e.Error != "RangeError: boom 1" || !strings.HasPrefix(e.At, "api/main.js:3:") || e.Code != "internal" {
		t.Fatalf("throw: %d %s", code, body)
	}
}

func TestJSFileEditedBetweenRequests(t *testing.T) {
	const grace = time.Second // --app-grace, which a vanished hook file has too
	tn := startTestNode(t, map[string]string{"ed": ""}, func(c *nodeConfig) { c.AppGrace = grace })
	tn.writeFiles(map[string]string{"ed/api/main.js": `module.exports = () => "first";`})
	if _, body := tn.jsCall("ed", "GET", "/api/", nil, nil); strings.TrimSpace(body) != `"first"` {
		t.Fatalf("before: %s", body)
	}
	tn.writeFiles(map[string]string{"ed/api/main.js": `module.exports = () => "second, edited";`})
	if _, body := tn.jsCall("ed", "GET", "/api/", nil, nil); strings.TrimSpace(body) != `"second, edited"` {
		t.Fatalf("after the edit: %s", body)
	}

	// Hooks too. The connect found no realtime.js; one written now is
	// looked for again within a second, not at every hook.
	c := tn.dial("ed", "")
	tn.writeFiles(map[string]string{"ed/api/realtime.js": `exports.onSubscribe = () => { throw new Error("not yet"); };`})
	start := time.Now()
	for i := 0; ; i++ {
		c.send(map[string]any{"type": "subscribe", "channel": fmt.Sprintf("new%d", i)})
		f := c.next()
		if f.str("type") == "error" {
			if f.str("error") != "not yet" {
				t.Fatalf("subscribe after adding realtime.js: %v", f)
			}
			break
		}
		if f.str("type") != "subscribed" || time.Since(start) > 3*time.Second {
			t.Fatalf("realtime.js added %v ago, not applied: %v", time.Since(start), f)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An edit to a script that exists applies at the next run.
	tn.writeFiles(map[string]string{"ed/api/realtime.js": `exports.onSubscribe = () => true;`})
	c.subscribe(map[string]any{"channel": "a"})
	tn.writeFiles(map[string]string{"ed/api/realtime.js": `exports.onSubscribe = () => { throw new Error("closed for now"); };`})
	c.send(map[string]any{"type": "subscribe", "channel": "b"})
	if e := c.expect("error"); e.str("code") != "not_allowed" || e.str("error") != "closed for now" {
		t.Fatalf("subscribe after editing realtime.js: %v", e)
	}
	// And removing it restores the default, allow, once it has been gone
	// for --app-grace: a deploy may be writing it again.
	if err := os.Remove(filepath.Join(tn.cfg.AppsDir, "ed", "api", "realtime.js")); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	for i := 0; ; i++ {
		c.send(map[string]any{"type": "subscribe", "channel": fmt.Sprintf("b%d", i)})
		f := c.next()
		if f.str("type") == "subscribed" {
			if since := time.Since(removed); since < grace {
				t.Fatalf("allowed %v after realtime.js was removed, within the grace", since)
			}
			break
		}
		if f.str("error") != "closed for now" || time.Since(removed) > grace+10*time.Second {
			t.Fatalf("realtime.js removed %v ago: %v", time.Since(removed), f)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestJSAsyncHandlerWithRequire(t *testing.T) {
	tn := startTestNode(t, map[string]string{"as": ""})
	tn.writeFiles(map[string]string{
		"as/api/lib/wait.js": `module.exports = ms => new Promise(r => setTimeout(r, ms));`,
		"as/secret.js":       `module.exports = "inside the app folder, outside api/";`,
		"other/secret.js":    `module.exports = "another app";`,
		"as/api/main.js": `
const wait = require("./lib/wait");
module.exports = async function (req) {
  await wait(10);
  let outside;
  try { require("../../other/secret"); outside = "escaped"; } catch (e) { outside = e.message; }
  return { inside: require("../secret"), outside, sent: fazt.realtime.broadcast("room", "late") };
};`,
	})
	var out struct {
		Inside, Outside string
		Sent            struct{ Offset int }
	}
	if code, body := tn.jsCall("as", "GET", "/api/", nil, &out); code != 200 || out.Inside == "" || !strings.Contains(out.Outside, "outside the app folder") || out.Sent.Offset != 1 {
		t.Fatalf("async with require: %d %s", code, body)
	}
}

// TestChatExampleApp runs the bundled apps/chat.
func TestChatExampleApp(t *testing.T) {
	tn := startTestNode(t, nil)
	src := filepath.Join("..", "..", "apps", "chat")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tn.writeFiles(map[string]string{filepath.ToSlash(filepath.Join("chat", rel)): string(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := tn.dial("chat", "")
	c.subscribe(map[string]any{"channel": "room"})

	// POST /api/messages broadcasts, through the handler's require()d rules.
	var sent struct {
		Offset uint64
		Epoch  string
	}
	if code, body := tn.jsCall("chat", "POST", "/api/messages", map[string]any{"text": "  hello \n  world ", "name": "ann"}, &sent); code != 201 || sent.Offset != 1 {
		t.Fatalf("post: %d %s", code, body)
	}
	if m := c.messages("room", 1)[0]["data"].(map[string]any); m["text"] != "hello world" || m["name"] != "ann" {
		t.Fatalf("posted message %v", m)
	}
	if code, _ := tn.jsCall("chat", "POST", "/api/messages", map[string]any{"text": "   "}, nil); code != 400 {
		t.Fatalf("empty post: %d", code)
	}
	var recent []map[string]any
	if code, body := tn.jsCall("chat", "GET", "/api/messages?last=5", nil, &recent); code != 200 || len(recent) != 1 {
		t.Fatalf("recent: %d %s", code, body)
	}
	if a := tn.audit("chat", "type=broadcast"); a.Events[0].Event["publisher"].(map[string]any)["id"] != "api/main.js" {
		t.Fatalf("audit: %v", a.Events)
	}

	// onPublish trims, size-limits, and drops empty lines.
	c.send(map[string]any{"type": "publish", "channel": "room", "data": map[string]any{"text": "  " + strings.Repeat("x", 1000) + "  "}})
	if _, msg := c.publishedAndMessage(); msg["data"].(map[string]any)["text"] != strings.Repeat("x", 280) {
		t.Fatalf("long line became %v", msg)
	}
	c.send(map[string]any{"type": "publish", "channel": "room", "data": map[string]any{"text": " \t "}})
	if p := c.expect("published"); p["dropped"] != true {
		t.Fatalf("blank line: %v", p)
	}
	c.send(map[string]any{"type": "publish", "channel": "room", "data": 42})
	if e := c.expect("error"); e.str("code") != "not_allowed" {
		t.Fatalf("non-chat data: %v", e)
	}

	// admin-* channels need the token in the WebSocket URL's query.
	c.send(map[string]any{"type": "subscribe", "channel": "admin-mods"})
	if e := c.expect("error"); e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), "token") {
		t.Fatalf("admin channel without a token: %v", e)
	}
	wrong := tn.dial("chat", "token=guess")
	wrong.send(map[string]any{"type": "subscribe", "channel": "admin-mods"})
	wrong.expect("error")
	mod := tn.dial("chat", "token=chat-admin-token")
	mod.subscribe(map[string]any{"channel": "admin-mods"})
	// ... to write to them as well, over the WebSocket or the HTTP API;
	// and to read them, or see them listed, over the HTTP API.
	c.send(map[string]any{"type": "publish", "channel": "admin-mods", "data": map[string]any{"text": "sneaky"}})
	if e := c.expect("error"); e.str("code") != "not_allowed" {
		t.Fatalf("publish to an admin channel without the token: %v", e)
	}
	mod.send(map[string]any{"type": "publish", "channel": "admin-mods", "data": map[string]any{"text": "mods only"}})
	if _, msg := mod.publishedAndMessage(); msg["offset"] != float64(1) {
		t.Fatalf("moderator's publish: %v", msg)
	}
	const admin = "chat-admin-token"
	post := map[string]any{"channel": "admin-mods", "text": "x"}
	for _, key := range []string{"", "guess"} {
		if code, body := tn.request(jsClient, "chat", key, "POST", "/api/messages", post, nil); code != 403 {
			t.Errorf("POST to an admin channel with key %q: %d %s", key, code, body)
		}
		if code, body := tn.request(jsClient, "chat", key, "GET", "/api/messages?channel=admin-mods", nil, nil); code != 403 {
			t.Errorf("GET of an admin channel with key %q: %d %s", key, code, body)
		}
	}
	if code, body := tn.request(jsClient, "chat", admin, "POST", "/api/messages", post, nil); code != 201 {
		t.Errorf("moderator's POST: %d %s", code, body)
	}
	if code, body := tn.request(jsClient, "chat", admin, "GET", "/api/messages?channel=admin-mods", nil, &recent); code != 200 || len(recent) != 2 {
		t.Errorf("moderator's GET: %d %s", code, body)
	}
	listed := func(key string) (names []string) {
		var stats struct{ Channels []struct{ Channel string } }
		if code, body := tn.request(jsClient, "chat", key, "GET", "/api/stats", nil, &stats); code != 200 {
			t.Fatalf("stats: %d %s", code, body)
		}
		for _, c := range stats.Channels {
			names = append(names, c.Channel)
		}
		return names
	}
	// A private-* channel (joined on the WebSocket with a token the
	// server checks) is not open on the HTTP API either, which has no
	// such token to check.
	tn.publish("chat", "private-dm", "secret")
	private := map[string]any{"channel": "private-dm", "text": "injected"}
	if code, body := tn.request(jsClient, "chat", "", "POST", "/api/messages", private, nil); code != 403 {
		t.Errorf("POST to a private channel without the token: %d %s", code, body)
	}
	if code, body := tn.request(jsClient, "chat", "", "GET", "/api/messages?channel=private-dm", nil, nil); code != 403 {
		t.Errorf("GET of a private channel without the token: %d %s", code, body)
	}
	if code, body := tn.request(jsClient, "chat", admin, "GET", "/api/messages?channel=private-dm", nil, &recent); code != 200 || len(recent) != 1 {
		t.Errorf("moderator's GET of a private channel: %d %s", code, body)
	}
	if got := listed(""); slices.Contains(got, "admin-mods") || slices.Contains(got, "private-dm") || !slices.Contains(got, "room") {
		t.Errorf("stats without the token list %v", got)
	}
	if got := listed(admin); !slices.Contains(got, "admin-mods") || !slices.Contains(got, "private-dm") {
		t.Errorf("stats with the token list %v", got)
	}
	// Stats pages through the channels: one past the first page of
	// 100 (by name) is listed.
	for i := range 120 {
		tn.publish("chat", fmt.Sprintf("zz%03d", i), i)
	}
	if got := listed(""); !slices.Contains(got, "zz119") {
		t.Errorf("stats of %d channels miss the last: %d listed", 124, len(got))
	}

	// Bad input is the caller's mistake: 400 with a code, not a 500.
	for _, bad := range []struct {
		method, path string
		body         any
		code         string
	}{
		{"GET", "/api/messages?last=-5", nil, "bad_request"},
		{"GET", "/api/messages?last=2.5", nil, "bad_request"},
		{"GET", "/api/messages?last=5000", nil, "bad_request"},
		{"GET", "/api/messages?channel=a%20b", nil, "invalid_channel"},
		{"POST", "/api/messages", map[string]any{"channel": "a b", "text": "x"}, "invalid_channel"},
		{"POST", "/api/messages", map[string]any{"channel": 7, "text": "x"}, "bad_request"},
	} {
		var e struct{ Code string }
		if code, body := tn.jsCall("chat", bad.method, bad.path, bad.body, &e); code != 400 || e.Code != bad.code {
			t.Errorf("%s %s %v: %d %s", bad.method, bad.path, bad.body, code, body)
		}
	}

	// A POST that is not JSON (a form, text/plain: what another site's
	// page can send without a preflight) is refused.
	req, _ := http.NewRequest("POST", tn.srv.URL+"/api/messages", strings.NewReader(`{"text":"from elsewhere"}`))
	req.Host = "chat.localhost"
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := jsClient.Do(req); err != nil {
		t.Errorf("a text/plain POST: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != 415 {
			t.Errorf("a text/plain POST: %s, want 415", resp.Status)
		}
	}

	// A line without a name is named by the random end of its client's
	// id: its start is the connection's time, the same for everyone for
	// hours.
	c.send(map[string]any{"type": "publish", "channel": "room", "data": map[string]any{"text": "who am I"}})
	if _, msg := c.publishedAndMessage(); msg["data"].(map[string]any)["name"] != c.id[len(c.id)-6:] {
		t.Errorf("a line without a name: %v, want the name %s", msg, c.id[len(c.id)-6:])
	}

	// An empty adminToken admits no one, not every request without a
	// token. (The new config's shorter lines tell it is read.)
	tn.writeFiles(map[string]string{"chat/api/config.json": `{"adminToken": "", "maxTextLength": 5}`})
	waitFor(t, func() bool {
		var last []struct{ Data struct{ Text string } }
		tn.jsCall("chat", "POST", "/api/messages", map[string]any{"text": "abcdefgh"}, nil)
		code, _ := tn.jsCall("chat", "GET", "/api/messages?last=1", nil, &last)
		return code == 200 && len(last) == 1 && last[0].Data.Text == "abcde"
	})
	if code, body := tn.jsCall("chat", "GET", "/api/messages?channel=admin-mods", nil, nil); code != 403 {
		t.Errorf("GET of an admin channel with an empty adminToken and no token: %d %s", code, body)
	}
}

// TestAHandlerSignsChannelTokens: fazt.realtime.channelToken signs, with
// the app's secret, a token the server admits to that private channel of
// that app, for that client when named, until its expiry, and for none
// other; an app without a secret, a channel that is not private, and bad
// options are refused.
func TestAHandlerSignsChannelTokens(t *testing.T) {
	const secret = "a secret of thirty-two bytes or more, for tests"
	tn := startTestNode(t, map[string]string{"vault": `{"secret":"` + secret + `"}`, "twin": `{"secret":"` + secret + `"}`, "open": ""})
	const handler = `module.exports = (req) => ({ token: fazt.realtime.channelToken(req.query.channel, req.query.opts ? JSON.parse(req.query.opts) : undefined) });`
	tn.writeFiles(map[string]string{"vault/api/main.js": handler, "open/api/main.js": handler})
	token := func(app, channel, opts string) (int, string, string) {
		var out struct{ Token string }
		q := url.Values{"channel": {channel}}
		if opts != "" {
			q.Set("opts", opts)
		}
		code, body := tn.jsCall(app, "GET", "/api/t?"+q.Encode(), nil, &out)
		return code, body, out.Token
	}
	waitFor(t, func() bool { code, _, _ := token("vault", "private-a", ""); return code == 200 })
	claims := func(tok string) jwt.MapClaims {
		c := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
			t.Fatal(err)
		}
		return c
	}

	a := tn.dial("vault", "")
	_, _, tok := token("vault", "private-a", `{"client":"`+a.id+`","expiresIn":60}`)
	if c := claims(tok); c["app"] != "vault" || c["client"] != a.id || c["channel"] != "private-a" || c["exp"].(float64)-c["iat"].(float64) != 60 {
		t.Fatalf("claims of a token for a, for 60 s: %v", c)
	}
	a.subscribe(map[string]any{"channel": "private-a", "token": tok})
	// Another channel, another client, another app of the same secret:
	// none is admitted by it.
	a.send(map[string]any{"type": "subscribe", "channel": "private-b", "token": tok})
	if e := a.expect("error"); e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), `"private-a"`) {
		t.Fatalf("a token for private-a on private-b: %v", e)
	}
	b := tn.dial("vault", "")
	b.send(map[string]any{"type": "subscribe", "channel": "private-a", "token": tok})
	if e := b.expect("error"); e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), "another client") {
		t.Fatalf("a's token used by b: %v", e)
	}
	_, _, open := token("vault", "private-a", "")
	if c := claims(open); c["client"] != nil || c["exp"].(float64)-c["iat"].(float64) != 300 {
		t.Fatalf("claims of a token with no options: %v, want no client and 300 s", c)
	}
	twin := tn.dial("twin", "")
	twin.send(map[string]any{"type": "subscribe", "channel": "private-a", "token": open})
	if e := twin.expect("error"); e.str("code") != "not_allowed" || !strings.Contains(e.str("error"), `token is for app "vault"`) {
		t.Fatalf("vault's token on app twin, of the same secret: %v", e)
	}
	// Without a client, any connection of the app.
	b.subscribe(map[string]any{"channel": "private-a", "token": open})

	// An uncaught throw of a handler is its 500, with the code in the
	// error's text.
	for _, tc := range []struct{ app, channel, opts, want string }{
		{"vault", "room", "", "bad_request: channelToken: room is not a private-* channel"},
		{"open", "private-a", "", "not_allowed: channelToken: app open has no secret"},
		{"vault", "private-a", `{"expiresIn":0}`, "expiresIn must be a whole number"},
		{"vault", "private-a", `{"expiresIn":1.5}`, "expiresIn must be a whole number"},
		{"vault", "private-a", `{"expiresIn":"60"}`, "expiresIn must be a whole number"},
		{"vault", "private-a", `{"expiresIn":86401}`, "expiresIn must be a whole number"},
		{"vault", "private-a", `{"client":""}`, "client must be a client id"},
		{"vault", "private-a", `{"client":5}`, "client must be a client id"},
		{"vault", "private-a", `5`, "options must be an object"},
	} {
		if code, body, _ := token(tc.app, tc.channel, tc.opts); code != 500 || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %q", tc.app, tc.channel, tc.opts, code, body, tc.want)
		}
	}
}
