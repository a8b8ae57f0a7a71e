package js_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/js"
)

// TestNestedArraysEndTheScriptNotTheServer: goja flattens and prints
// nested arrays by Go recursion, which neither the time limit nor the
// call depth limit stopped: a cyclic array's flat(Infinity) overflowed
// the Go stack and killed the server. Now every level is a JS call: the
// script ends with a RangeError, and flat, toString, join and
// toLocaleString still answer as the language says.
func TestNestedArraysEndTheScriptNotTheServer(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const deep = (n) => { let o = []; for (let i = 0; i < n; i++) o = [o]; return o; };
module.exports = function (req) {
  switch (req.path) {
  case "/api/cyclic-flat": { const a = [1]; a.push(a); return a.flat(Infinity).length; }
  case "/api/deep-text": return String(deep(10000)).length;
  case "/api/deep-locale": return deep(10000).toLocaleString().length;
  case "/api/deep-join": return deep(10000).join("-").length;
  case "/api/caught": try { return String(deep(1001)); } catch (e) { return e.message + "; " + String(deep(999)).length; }
  case "/api/same": {
    const keys = [];
    for (const k in [1]) keys.push(k);
    return {
      flat2: [1, [2, [3, [4]]], , 5].flat(2), flat: [[1], [2, [3]]].flat(), flat0: [1, [2]].flat(0),
      flatNaN: [1, [2]].flat("x"), flatLike: Array.prototype.flat.call({ length: 2, 0: [1], 1: 2 }),
      text: String([1, [2, 3], null, [undefined]]), template: ` + "`${[1, [2]]}`" + `, join: [1, [2, 3]].join("-"),
      locale: [[1], [2]].toLocaleString(), keys, length: Array.prototype.flat.length, name: Array.prototype.flat.name,
      nullThis: (() => { try { Array.prototype.flat.call(null); return "no throw"; } catch (e) { return e.constructor.name; } })(),
    };
  }
  }
};`}, js.Config{})
	for _, tc := range []struct{ path, err string }{
		{"/api/cyclic-flat", "RangeError: more than 4096 nested calls"},
		{"/api/deep-text", "RangeError: arrays nested more than 1000 deep"},
		{"/api/deep-locale", "RangeError: arrays nested more than 1000 deep"},
		{"/api/deep-join", "RangeError: arrays nested more than 1000 deep"},
		{"/api/deep-text", "RangeError: arrays nested more than 1000 deep"}, // again, on the runtime reused
	} {
		code, body := e.get("a", tc.path)
		if b := decodeErr(t, body); code != 500 || !strings.HasPrefix(b.Error, tc.err) {
			t.Errorf("%s: %d %s", tc.path, code, body)
		}
	}
	if code, body := e.get("a", "/api/caught"); code != 200 || strings.TrimSpace(body) != `"arrays nested more than 1000 deep cannot be made text; 0"` {
		t.Errorf("caught: %d %s", code, body)
	}
	want := `{"flat2":[1,2,3,[4],5],"flat":[1,2,[3]],"flat0":[1,[2]],"flatNaN":[1,[2]],"flatLike":[1,2],` +
		`"text":"1,2,3,,","template":"1,2","join":"1-2,3","locale":"1,2","keys":["0"],"length":0,"name":"flat","nullThis":"TypeError"}`
	if code, body := e.get("a", "/api/same"); code != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("built-ins: %d %s\nwant %s", code, body, want)
	}
}

// TestAScriptsFailureLeavesNothingBehind: what a script does wrong after
// its call returns (a timer's callback that throws, a returned promise
// whose then throws or is not a function, a header array with a hole)
// is answered as the script's error, with its message, and the timers it
// left are cancelled: before, a Go panic skipped their cancelling, and
// each due timer's goroutine stayed blocked for good.
func TestAScriptsFailureLeavesNothingBehind(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function (req) {
  setTimeout(() => {}, 5); // left behind: cancelled when the run ends
  switch (req.path) {
  case "/api/timer-throws":
    return new Promise((resolve) => setTimeout(() => { JSON.parse("{bad"); resolve(1); }, 1));
  case "/api/then-throws": {
    const p = new Promise(() => {});
    Object.defineProperty(p, "then", { get() { throw new Error("no then for you"); } });
    return p;
  }
  case "/api/then-not-a-function": {
    const p = new Promise(() => {});
    p.then = 5;
    return p;
  }
  case "/api/hole": {
    const answer = { headers: { "Set-Cookie": ["a=1", , "b=2"] }, body: "x" };
    // Later, the answer read where the event loop runs the promise's
    // reactions: a panic there left the loop, past its timers' cancelling.
    return req.query.later ? new Promise((resolve) => setTimeout(() => resolve(answer), 1)) : answer;
  }
  default:
    return "ok";
  }
};`}, js.Config{})
	if code, _ := e.get("a", "/api/"); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	before := runtime.NumGoroutine()
	const rounds = 20
	for i := 0; i < rounds; i++ {
		for _, tc := range []struct{ path, err, at string }{
			{"/api/timer-throws", "SyntaxError", "api/main.js:6:"},
			{"/api/then-throws", "Error: no then for you", "api/main.js:9:"},
			{"/api/then-not-a-function", "the promise api/main.js returned has a then that is not a function", ""},
		} {
			code, body := e.get("a", tc.path)
			if b := decodeErr(t, body); code != 500 || !strings.HasPrefix(b.Error, tc.err) || !strings.HasPrefix(b.At, tc.at) {
				t.Fatalf("%s: %d %s, want 500 %q at %q", tc.path, code, body, tc.err, tc.at)
			}
		}
		for _, path := range []string{"/api/hole", "/api/hole?later=1"} {
			req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
			req.Host = "a.localhost"
			resp, err := jsClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Values("Set-Cookie"); resp.StatusCode != 200 || strings.Join(got, "|") != "a=1|undefined|b=2" {
				t.Fatalf("%s: a header array with a hole: %d %q", path, resp.StatusCode, got)
			}
		}
	}
	// Every timer left behind is due by now: none holds a goroutine (a
	// few may be the HTTP client's and server's).
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("%d goroutines after %d runs, %d before", after, 5*rounds, before)
	}
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != `"ok"` {
		t.Fatalf("after the failures: %d %s", code, body)
	}
	if strings.Contains(e.logs.String(), "engine failure") {
		t.Errorf("logged as an engine failure:\n%s", e.logs.String())
	}
}

// TestAHandlerOutlivesItsClient: a client that hangs up while its handler
// runs does not interrupt it: both of its broadcasts are made. Before,
// the handler was interrupted where it was, after the first.
func TestAHandlerOutlivesItsClient(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = async function (req) {
  fazt.realtime.broadcast("room", 1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  fazt.realtime.broadcast("room", 2);
  return "done";
};`}, js.Config{})
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/", nil)
	req.Host = "a.localhost"
	ctx, cancel := context.WithCancel(context.Background())
	req = req.WithContext(ctx)
	go func() {
		// Hung up once the first broadcast is in.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if info, err := e.log.Channel(context.Background(), "a", "room"); err == nil && info.Head >= 1 {
				break
			}
		}
		cancel()
	}()
	if _, err := jsClient.Do(req); err == nil {
		t.Fatal("the request was answered before the client hung up")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := e.log.Channel(context.Background(), "a", "room")
		if err == nil && info.Head == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the channel's head is %d, %v: the handler did not finish", info.Head, err)
		}
	}
	if strings.Contains(e.logs.String(), "js handler failed") {
		t.Errorf("logged as a failure:\n%s", e.logs.String())
	}
}

// TestARunEndsWhateverItsTimersDo: a timer's callback whose recursion
// overflows the call stack ends its run with that RangeError (it was
// dropped, and the run waited out its limit); one that spins past the
// limit is interrupted, and a callback due then does not start with no
// interrupt armed (goja clears it when the stopped callback returns to
// the loop, and the next spun for good). A header array of 2**32-1 holes
// is refused, not expanded; timers set while the answer is read (a toJSON)
// never run. A stack overflow inside an array's text does
// not leave the nesting count of later runs high. A promise job a run
// left queued (describing what it threw) runs in the next run, within its
// limit, not before it with none. And a runtime whose
// run ended in a throw from its promise's then getter is not reused.
// (App a's limit is 1.5 s: at 300 ms, the overflow of 4096 nested flat
// calls under the race detector ran past it in one run of three. The spin
// waits out the 300 ms of app s.)
func TestARunEndsWhateverItsTimersDo(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"js": {"handler_timeout_ms": 1500}}`, "a/api/main.js": timersJS,
		"s/app.json": `{"js": {"handler_timeout_ms": 300}}`, "s/api/main.js": timersJS,
	}, js.Config{})
	for _, tc := range []struct{ app, path, err string }{
		{"a", "/api/overflow-in-timer", "RangeError: more than 4096 nested calls"},
		{"s", "/api/spin", "api/main.js ran past its time limit of 300ms"},
		{"a", "/api/holes", "api/main.js returned 4294967295 values for header X-Many; at most 1000"},
		{"a", "/api/overflow-in-text", "RangeError: more than 4096 nested calls"},
	} {
		code, body := e.get(tc.app, tc.path)
		if b := decodeErr(t, body); code != 500 || !strings.HasPrefix(b.Error, tc.err) {
			t.Errorf("%s: %d %s, want 500 %q", tc.path, code, body, tc.err)
		}
	}
	if code, body := e.get("a", "/api/late-timers"); code != 200 || strings.TrimSpace(body) != "1" {
		t.Errorf("timers set while the answer was read: %d %s", code, body)
	}
	for _, overflow := range []string{"/api/overflow-in-text", "/api/overflow-late"} {
		e.get("a", overflow)     // leaves the count of nested arrays high, skipping its finally blocks
		for i := 0; i < 3; i++ { // on the runtime the overflow left
			if code, body := e.get("a", "/api/deep"); code != 200 || strings.TrimSpace(body) != "0" {
				t.Fatalf("deep text after %s: %d %s", overflow, code, body)
			}
		}
	}
	// The job left queued runs in the next run, within its limit; one
	// that overflows the stack is not the next run's failure.
	e.get("a", "/api/leave-a-job")
	if code, body := e.get("a", "/api/count"); code != 500 || !strings.Contains(body, "time limit") {
		t.Fatalf("the run after one that left a job: %d %s", code, body)
	}
	e.get("a", "/api/leave-an-overflow")
	if code, body := e.get("a", "/api/count"); code != 200 {
		t.Fatalf("the run after one that left an overflowing job: %d %s", code, body)
	}
	for _, want := range []string{"2", "3"} { // the one above counted 1
		if _, body := e.get("a", "/api/count"); strings.TrimSpace(body) != want {
			t.Fatalf("count: %s, want %s", body, want)
		}
	}
	if code, body := e.get("a", "/api/then-throws"); code != 500 || !strings.Contains(body, "no then") {
		t.Fatalf("then-throws: %d %s", code, body)
	}
	if _, body := e.get("a", "/api/count"); strings.TrimSpace(body) != "1" {
		t.Fatalf("count after a then getter threw: %s, want 1 (a fresh runtime)", body)
	}
}

// TestAHandlerWhoseClientLeftWhileQueuedIsNotRun: a request whose client
// hangs up while it waits for a run slot is dropped, not run later to an
// answer no one reads (which only adds to the load that queued it).
func TestAHandlerWhoseClientLeftWhileQueuedIsNotRun(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = async function (req) {
  fazt.realtime.broadcast("room", req.query.n);
  if (req.query.n === "1") await new Promise((resolve) => setTimeout(resolve, 500));
  return "done";
};`}, js.Config{MaxConcurrent: 1})
	first := make(chan int, 1)
	go func() { code, _ := e.get("a", "/api/?n=1"); first <- code }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if info, err := e.log.Channel(context.Background(), "a", "room"); err == nil && info.Head == 1 {
			break // the first holds the only slot
		}
		if time.Now().After(deadline) {
			t.Fatal("the first request did not start")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/?n=2", nil)
	req.Host = "a.localhost"
	if _, err := jsClient.Do(req); err == nil {
		t.Fatal("the queued request was answered before its client left")
	}
	if code := <-first; code != 200 {
		t.Fatalf("the first request: %d", code)
	}
	// The slot is free again: a third request runs, and the second never did.
	if code, body := e.get("a", "/api/?n=3"); code != 200 {
		t.Fatalf("third: %d %s", code, body)
	}
	msgs, err := e.log.Messages(context.Background(), "a", "room", domain.HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Data))
	}
	if strings.Join(got, " ") != `"1" "3"` {
		t.Fatalf("broadcasts %v, want the first's and the third's", got)
	}
	// Not a failure of the script's or the server's: not logged as one.
	if logs := e.logs.String(); strings.Contains(logs, "js handler failed") || !strings.Contains(logs, "the client left while it waited") {
		t.Errorf("logged:\n%s", logs)
	}
}

// timersJS is the app of TestARunEndsWhateverItsTimersDo.
const timersJS = `
const deep = (n) => { let o = []; for (let i = 0; i < n; i++) o = [o]; return o; };
module.exports = function (req) {
  switch (req.path) {
  case "/api/overflow-in-timer":
    return new Promise(() => setTimeout(() => { const a = [1]; a.push(a); a.flat(Infinity); }, 1));
  case "/api/spin":
    return new Promise(() => setTimeout(() => { setImmediate(() => { for (;;) {} }); for (;;) {} }, 0));
  case "/api/holes":
    return { headers: { "X-Many": new Array(2 ** 32 - 1) }, body: "" };
  case "/api/overflow-in-text":
    return String([[{ toString() { const g = () => g(); return g(); } }]]);
  case "/api/deep":
    return String(deep(999)).length;
  case "/api/overflow-late": // in a promise job after a timer: unseen by the run
    return new Promise((resolve) => setTimeout(resolve, 0)).then(() => {
      let o = [{ toString: function f() { return f(); } }];
      for (let i = 0; i < 990; i++) o = [o];
      return String(o);
    });
  case "/api/late-timers": // set while the answer is read, when no run is live
    return { toJSON() { setImmediate(() => { for (;;) {} }); setImmediate(() => { for (;;) {} }); return 1; } };
  case "/api/leave-a-job": // describing what it throws queues a job that never ends
    throw { toString() { Promise.resolve().then(() => { for (;;) {} }); return "x"; } };
  case "/api/leave-an-overflow": // ... or one whose stack overflows
    throw { toString() { Promise.resolve().then(() => { const g = () => g(); g(); }); return "x"; } };
  case "/api/count":
    globalThis.n = (globalThis.n || 0) + 1;
    return globalThis.n;
  case "/api/then-throws": {
    const p = new Promise(() => {});
    Object.defineProperty(p, "then", { get() { Promise.resolve().then(() => { globalThis.n = 100; }); throw new Error("no then"); } });
    return p;
  }
  }
};`
