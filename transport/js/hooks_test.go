package js_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/transport/js"
)

// A realtime.js that ran and then vanishes, or is emptied, as a deploy or
// an editor does for a moment while writing it, keeps its hooks for
// VanishGrace rather than let every subscribe in; a new file applies at
// once; and one gone (or empty) past the grace is taken as it is.
func TestAHookFileGoneForAMomentKeepsItsHooks(t *testing.T) {
	const grace = 600 * time.Millisecond
	const closed = `exports.onSubscribe = (client, channel) => channel !== "staff";`
	for _, how := range []string{"removed", "emptied"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, map[string]string{"a/api/realtime.js": closed}, js.Config{VanishGrace: grace})
			ctx := context.Background()
			c := domain.Client{ID: "c1", App: "a"}
			subscribe := func() error { return e.eng.OnSubscribe(ctx, c, "staff") }
			if err := subscribe(); domain.CodeOf(err) != domain.CodeNotAllowed {
				t.Fatalf("with the hook: %v", err)
			}
			path := filepath.Join(e.dir, "a", "api", "realtime.js")
			vanish := func() {
				t.Helper()
				if how == "removed" {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			vanish()
			if err := subscribe(); domain.CodeOf(err) != domain.CodeNotAllowed {
				t.Fatalf("just after the file was %s: %v", how, err)
			}
			if !strings.Contains(e.logs.String(), "js script gone or empty") {
				t.Fatalf("nothing logged:\n%s", e.logs.String())
			}
			// Written again within the grace: the new file applies at once.
			e.write("a/api/realtime.js", `exports.onSubscribe = () => "open now";`)
			if err := subscribe(); err != nil {
				t.Fatalf("after the file came back: %v", err)
			}
			e.write("a/api/realtime.js", closed)
			if err := subscribe(); domain.CodeOf(err) != domain.CodeNotAllowed {
				t.Fatalf("closed again: %v", err)
			}
			// Gone for longer than the grace: taken as gone (or empty),
			// and an app without hooks allows.
			vanish()
			gone := time.Now()
			for {
				err := subscribe()
				if err == nil {
					if since := time.Since(gone); since < grace {
						t.Fatalf("allowed %v after the file was %s, within the grace of %v", since, how, grace)
					}
					break
				}
				if domain.CodeOf(err) != domain.CodeNotAllowed {
					t.Fatalf("within the grace: %v", err)
				}
				if time.Since(gone) > grace+10*time.Second {
					t.Fatalf("still refused %v after the file was %s", time.Since(gone), how)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// A hook that lets a fazt.realtime call's unavailable error through (the
// log could not be read) was not answering: its client gets unavailable,
// which fazt.js asks again, not not_allowed, which it gives up for good.
// A hook that catches it and throws its own error refuses; one that
// throws the same error again passes it on. A realtime.js that does not
// load (a deploy's syntax error) is unavailable, which fazt.js asks again.
func TestAHookFailingOnTheServersStateIsNotARefusal(t *testing.T) {
	var st *unavailableStore
	e := newEnvStore(t, map[string]string{"a/api/realtime.js": `
exports.onSubscribe = function (client, channel) {
  if (channel === "through") fazt.realtime.history(channel, { last: 1 });
  try { fazt.realtime.history(channel, { last: 1 }); } catch (err) {
    if (channel === "again") throw err;
    if (channel === "first") { // of two, the first thrown again
      try { fazt.realtime.history(channel, { last: 2 }); } catch (_) {}
      throw err;
    }
    if (channel === "last") { // of twenty tries, the last thrown
      let last;
      for (let i = 0; i < 20; i++) try { fazt.realtime.history(channel, { last: 1 }); } catch (e) { last = e; }
      throw last;
    }
    throw new Error("closed while the log is down");
  }
  return true;
};`}, js.Config{}, func(l *events.Log) js.Store { st = &unavailableStore{Log: l}; return st })
	ctx := context.Background()
	c := domain.Client{ID: "c1", App: "a"}
	st.down.Store(true)
	for channel, want := range map[string]domain.Code{"through": domain.CodeUnavailable, "again": domain.CodeUnavailable, "first": domain.CodeUnavailable, "last": domain.CodeUnavailable, "own": domain.CodeNotAllowed} {
		if err := e.eng.OnSubscribe(ctx, c, channel); domain.CodeOf(err) != want {
			t.Errorf("subscribe to %s while the log is down: %v, want %s", channel, err, want)
		}
	}
	st.down.Store(false)
	if err := e.eng.OnSubscribe(ctx, c, "through"); err != nil {
		t.Fatalf("once the log is up: %v", err)
	}
	e.write("a/api/realtime.js", `exports.onSubscribe = () => { return true ;; ) };`)
	if err := e.eng.OnSubscribe(ctx, c, "x"); domain.CodeOf(err) != domain.CodeUnavailable || !strings.Contains(err.Error(), "does not load") {
		t.Fatalf("a realtime.js that does not load: %v, want unavailable", err)
	}
}

// What a script throws is cut to 8 KiB in the answer and in the log: a
// handler that throws its request's body (up to 1 MiB) sent it back,
// and wrote it to the log, at every request.
func TestAThrownValueIsCutShort(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `module.exports = (req) => {
  if (req.path === "/api/symbol") return Symbol("bad payload: " + req.body); // a value with no JSON
  throw new Error("bad payload: " + req.body);
};`}, js.Config{})
	for _, path := range []string{"/api/", "/api/symbol"} {
		code, body := e.do("a", "POST", path, strings.Repeat("x", 100<<10))
		if code != 500 || len(body) > 10<<10 || !strings.Contains(body, "more bytes)") || !strings.Contains(body, "bad payload: xxx") {
			t.Fatalf("%s of 100 KiB: %d, %d bytes: %.200s", path, code, len(body), body)
		}
	}
	if n := len(e.logs.String()); n > 20<<10 {
		t.Fatalf("the log took %d bytes for it", n)
	}
}

// A failure of the server's own (here, the app's api is a file, so its
// script cannot be looked up) is answered 500 internal without its text,
// which names the server's paths: the log has it, under the request's id.
func TestTheServersOwnFailureIsNotToldToTheClient(t *testing.T) {
	e := newEnv(t, map[string]string{"b/api": "not a folder"}, js.Config{})
	code, body := e.get("b", "/api/")
	if b := decodeErr(t, body); code != 500 || b.Code != "internal" || strings.Contains(body, e.dir) || !strings.Contains(b.Error, "internal error") {
		t.Fatalf("the app's api is a file: %d %s", code, body)
	}
	if !strings.Contains(e.logs.String(), e.dir) {
		t.Fatalf("the log does not say what failed:\n%s", e.logs.String())
	}
}

// A hook or a handler that returns a thenable (a promise library's
// object, not a native promise) is awaited, as await would: what it
// settles to is the answer. Taken as a plain value, it allowed whatever
// it would have said.
func TestAThenableIsAwaited(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/api/realtime.js": `
const later = (v, fail) => ({ then(ok, no) { setTimeout(() => fail ? no(new Error(v)) : ok(v), 1); } });
exports.onSubscribe = (client, channel) => {
  if (channel === "no") return later(false);
  if (channel === "throws") return later("no entry", true);
  if (channel === "nested") return later(later(false));
  return later(true);
};`,
		"a/api/main.js": `module.exports = () => ({ then(ok) { ok({ status: 201, json: { via: "thenable" } }); } });`,
	}, js.Config{})
	ctx := context.Background()
	c := domain.Client{ID: "c1", App: "a"}
	for channel, want := range map[string]domain.Code{"yes": "", "no": domain.CodeNotAllowed, "throws": domain.CodeNotAllowed, "nested": domain.CodeNotAllowed} {
		if err := e.eng.OnSubscribe(ctx, c, channel); domain.CodeOf(err) != want && !(want == "" && err == nil) {
			t.Errorf("subscribe to %s: %v, want %q", channel, err, want)
		}
	}
	if code, body := e.get("a", "/api/"); code != 201 || !strings.Contains(body, "thenable") {
		t.Fatalf("a handler's thenable: %d %s", code, body)
	}
}

// A binary body reaches the handler whole as req.bytes; req.body, text,
// has U+FFFD for each byte that is not UTF-8.
func TestABinaryBodyIsThereAsBytes(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `module.exports = (req) => {
  const b = new Uint8Array(req.bytes);
  return { n: b.length, first: b[0], last: b[b.length - 1], same: req.bytes === req.bytes, text: req.body.length };
};`}, js.Config{})
	code, body := e.do("a", "POST", "/api/", "\x89PNG\r\n\x1a\n\xff")
	if code != 200 || body != `{"n":9,"first":137,"last":255,"same":true,"text":9}`+"\n" {
		t.Fatalf("a binary body: %d %q", code, body)
	}
}

// An onDisconnect that could not get a run slot before its wait ended is
// logged as not run, not as a failure of the hook's.
func TestAnOnDisconnectNotRunSaysSo(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/realtime.js": `
exports.onSubscribe = () => {
  fazt.realtime.broadcast("started", 1); // the one run slot is taken
  const t = Date.now(); while (Date.now() - t < 1500) {}
  return true;
};
exports.onDisconnect = () => {};`}, js.Config{MaxConcurrent: 1, HookTimeout: 5 * time.Second})
	c := domain.Client{ID: "c1", App: "a"}
	done := make(chan error, 1)
	go func() { done <- e.eng.OnSubscribe(context.Background(), c, "room") }()
	for deadline := time.Now().Add(10 * time.Second); e.log.Head() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the subscribe's hook did not start within 10 s")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	e.eng.OnDisconnect(ctx, c, domain.ReasonClientClosed, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "js hook not run") || strings.Contains(logs, "js hook failed") {
		t.Fatalf("log:\n%s", logs)
	}
}

// A file the hooks require() that vanishes for a moment keeps the hooks
// as they were for the grace, as their own file does: read as it is then
// (gone, or an empty module), a rule module would make every hook throw,
// or allow.
func TestAModuleGoneForAMomentKeepsTheHooks(t *testing.T) {
	const grace = 600 * time.Millisecond
	e := newEnv(t, map[string]string{
		"a/api/realtime.js": `exports.onSubscribe = require("./lib/acl").onSubscribe;`,
		"a/api/lib/acl.js":  `exports.onSubscribe = (client, channel) => channel !== "staff";`,
	}, js.Config{VanishGrace: grace})
	ctx := context.Background()
	c := domain.Client{ID: "c1", App: "a"}
	if err := e.eng.OnSubscribe(ctx, c, "staff"); domain.CodeOf(err) != domain.CodeNotAllowed {
		t.Fatalf("with the rule: %v", err)
	}
	acl := filepath.Join(e.dir, "a", "api", "lib", "acl.js")
	for _, vanish := range []func() error{func() error { return os.WriteFile(acl, nil, 0o644) }, func() error { return os.Remove(acl) }} {
		if err := vanish(); err != nil {
			t.Fatal(err)
		}
		if err := e.eng.OnSubscribe(ctx, c, "staff"); domain.CodeOf(err) != domain.CodeNotAllowed {
			t.Fatalf("just after the rule's module went: %v", err)
		}
		e.write("a/api/lib/acl.js", `exports.onSubscribe = (client, channel) => channel !== "staff";`)
	}
	e.write("a/api/lib/acl.js", `exports.onSubscribe = () => true;`)
	if err := e.eng.OnSubscribe(ctx, c, "staff"); err != nil {
		t.Fatalf("a new rule: %v", err)
	}
	// A deploy that moves the rule to another module, and changes
	// realtime.js to match, applies at once: the old module is gone on
	// purpose.
	e.write("a/api/lib/access.js", `exports.onSubscribe = (client, channel) => channel !== "ops";`)
	e.write("a/api/realtime.js", `exports.onSubscribe = require("./lib/access").onSubscribe; // moved`)
	if err := os.Remove(acl); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.OnSubscribe(ctx, c, "ops"); domain.CodeOf(err) != domain.CodeNotAllowed {
		t.Fatalf("after the module moved: %v", err)
	}
	// But a module emptied as realtime.js changes (a deploy writing both,
	// not yet done with the module) keeps the version before.
	access := filepath.Join(e.dir, "a", "api", "lib", "access.js")
	if err := os.WriteFile(access, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.write("a/api/realtime.js", `exports.onSubscribe = require("./lib/access").onSubscribe; // new`)
	if err := e.eng.OnSubscribe(ctx, c, "ops"); domain.CodeOf(err) != domain.CodeNotAllowed {
		t.Fatalf("a module emptied as realtime.js changed: %v", err)
	}
}

// A thenable whose then runs past the time limit is stopped there, and
// the run is a time-out, whatever then settled first: the interrupt that
// goja clears with the error from resolving it is not lost. (It was: a
// hook past its limit allowed, and a getter of the value it settled with
// ran for good.)
func TestAThenablePastTheLimitIsStopped(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/api/realtime.js": `exports.onSubscribe = (client, channel) => {
  if (channel === "native") { // a pending promise with a then of its own
    const p = new Promise(() => {});
    p.then = function (ok) { ok(true); for (;;) {} };
    return p;
  }
  return { then(ok) { ok(true); for (;;) {} } };
};`,
		"a/api/main.js": `module.exports = () => ({ then(ok) { ok({ get json() { for (;;) {} } }); for (;;) {} } });`,
	}, js.Config{HookTimeout: 200 * time.Millisecond, HandlerTimeout: 200 * time.Millisecond})
	for _, channel := range []string{"room", "native"} {
		err := e.eng.OnSubscribe(context.Background(), domain.Client{ID: "c1", App: "a"}, channel)
		if domain.CodeOf(err) != domain.CodeNotAllowed || !strings.Contains(err.Error(), "time limit") {
			t.Fatalf("a hook (%s) whose then runs past its limit: %v", channel, err)
		}
	}
	if code, body := e.get("a", "/api/"); code != 500 || !strings.Contains(body, "time limit") {
		t.Fatalf("a handler whose then runs past its limit: %d %s", code, body)
	}
}

// A hook whose script's load took most of its time limit still has the
// whole limit for its run, and answers (before 70264f4 the load counted
// against the run, and such a hook was refused as past its limit). A run
// past its limit, after a slow load or a fast one, is the hook's own
// time-out, and refuses.
func TestAHookWhoseLoadTookMostOfTheLimitRuns(t *testing.T) {
	e := newEnv(t, map[string]string{
		"slow/api/realtime.js": `const t0 = Date.now(); while (Date.now() - t0 < 800) {}
exports.onSubscribe = () => { const t = Date.now(); while (Date.now() - t < 800) {} return true; };`,
		"slowloop/api/realtime.js": `const t0 = Date.now(); while (Date.now() - t0 < 800) {}
exports.onSubscribe = () => { for (;;) {} };`,
		"loop/api/realtime.js": `exports.onSubscribe = () => { for (;;) {} };`,
	}, js.Config{HookTimeout: 1500 * time.Millisecond})
	ctx := context.Background()
	if err := e.eng.OnSubscribe(ctx, domain.Client{ID: "c1", App: "slow"}, "room"); err != nil {
		t.Fatalf("a load of 800 ms, then a run of 800 ms, each within the 1.5 s limit: %v", err)
	}
	for _, app := range []string{"slowloop", "loop"} {
		start := time.Now()
		err := e.eng.OnSubscribe(ctx, domain.Client{ID: "c1", App: app}, "room")
		if domain.CodeOf(err) != domain.CodeNotAllowed || !strings.Contains(err.Error(), "time limit") {
			t.Fatalf("%s: a loop after the load: %v, want not_allowed past the time limit", app, err)
		}
		// A lower bound only: the loop had its whole limit, whatever
		// the load before it took.
		if took := time.Since(start); took < 1500*time.Millisecond {
			t.Fatalf("%s: refused after %v, before the run's own limit of 1.5s", app, took)
		}
	}
}
