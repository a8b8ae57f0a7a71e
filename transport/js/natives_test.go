package js_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/transport/js"
)

// TestBuiltInsThatCallThemselvesEndTheScriptNotTheServer: goja runs the
// built-in functions as Go and did not count the calls one makes of
// another through a script's objects, so a built-in made to call itself
// went round in Go until the stack overflowed: a fatal error, which ended
// the whole server (each of these did, in one line). Now each is a
// RangeError the script may catch, and the server goes on.
func TestBuiltInsThatCallThemselvesEndTheScriptNotTheServer(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const deep = (n) => { let o = []; for (let i = 0; i < n; i++) o = [o]; return o; };
const cases = {
  "/api/trim": () => String({ toString: String.prototype.trim }),
  "/api/primitive": () => "" + { [Symbol.toPrimitive]: String.prototype.toUpperCase },
  "/api/catch": () => { const o = {}; o.then = Promise.prototype.catch; return o.then(); },
  "/api/locale": () => String({ toString: Object.prototype.toLocaleString }),
  "/api/length": () => { const o = {}; Object.defineProperty(o, "length", { get: Array.prototype.push }); return o.length; },
  "/api/put-back": () => { Array.prototype.toString = Array.prototype.join; return String(deep(100000)).length; },
  "/api/date": () => { const o = { toISOString: Date.prototype.toJSON }; return o.toISOString(); },
  "/api/error": () => { const o = { toString: Error.prototype.toString }; o.name = o; return String(o); },
  "/api/bound-constructor": () => { const x = {}; x.toString = String.bind(null, x); return String(x); },
  "/api/bound-broadcast": () => { const d = { a: 1 }; d.toJSON = fazt.realtime.broadcast.bind(null, "room", d); return fazt.realtime.broadcast("room", d); },
  "/api/proxy-prototype": () => { const t = {}; Object.setPrototypeOf(t, new Proxy(t, {})); return t.x; },
  "/api/proxy-trap": () => { const t = {}; Object.setPrototypeOf(t, new Proxy(t, { get: String })); return String(t); },
  "/api/reviver": () => JSON.parse('{"a":0,"b":0}', function (k, v) { if (k === "a") { const c = {}; c.c = c; this.b = c; } return v; }),
  "/api/reflect-deleted": () => { delete Reflect.get; const t = {}; Object.setPrototypeOf(t, new Proxy(t, {})); return t.x; },
  "/api/reflect-replaced": () => { Reflect.get = String; const t = {}; Object.setPrototypeOf(t, new Proxy(t, {})); return String(t); },
  "/api/bound-cycle-get": () => { const b = (() => {}).bind(); Object.setPrototypeOf(b, b); return b.x; },
  "/api/bound-cycle-has": () => { const b = (() => {}).bind(); Object.setPrototypeOf(b, b); return "x" in b; },
  "/api/bound-cycle-set": () => { const b = (() => {}).bind(); Object.setPrototypeOf(b, b); b.x = 1; },
};
module.exports = function (req) {
  if (req.path === "/api/caught") {
    try { return String({ toString: String.prototype.trim }); } catch (e) { return e.constructor.name + ": " + e.message + "; " + "ok".toUpperCase(); }
  }
  return cases[req.path]();
};`}, js.Config{HandlerTimeout: time.Minute}) // what ends the script, not when: a recursion to the stack's limit is slow under -race
	for _, path := range []string{"/api/trim", "/api/primitive", "/api/catch", "/api/locale", "/api/length",
		"/api/put-back", "/api/date", "/api/error", "/api/bound-constructor", "/api/bound-broadcast", "/api/proxy-prototype",
		"/api/reflect-deleted", "/api/reflect-replaced", "/api/bound-cycle-get", "/api/bound-cycle-has",
		"/api/bound-cycle-set",
		"/api/trim", // again, on a runtime after all these
	} {
		code, body := e.get("a", path)
		if code != 500 || decodeErr(t, body).Error != "RangeError: built-in functions nested more than 4096 deep" {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	// Each round a JS call too: the script's own count stops it.
	if code, body := e.get("a", "/api/proxy-trap"); code != 500 || decodeErr(t, body).Error != "RangeError: more than 4096 nested calls" {
		t.Errorf("proxy-trap: %d %s", code, body)
	}
	if code, body := e.get("a", "/api/reviver"); code != 500 || decodeErr(t, body).Error != "RangeError: JSON.parse with a reviver goes at most 1000 objects and arrays deep" {
		t.Errorf("reviver: %d %s", code, body)
	}
	if code, body := e.get("a", "/api/caught"); code != 200 || strings.TrimSpace(body) != `"RangeError: built-in functions nested more than 4096 deep; OK"` {
		t.Errorf("caught: %d %s", code, body)
	}
}

// TestGuardedBuiltInsAreStillTheLanguages: the counted stand-ins keep
// what a script can see of a built-in: its name, its length, its text,
// that it is no constructor, the same function wherever it sits, and a
// direct eval's view of the scope it is in.
func TestGuardedBuiltInsAreStillTheLanguages(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const size = Object.getOwnPropertyDescriptor(Map.prototype, "size").get;
module.exports = function () {
  const local = 7;
  return {
    names: [String.prototype.trim.name, Array.prototype.push.length, size.name, Math.max.name, Math.max.length].join(),
    text: Function.prototype.toString.call(String.prototype.trim),
    same: [Array.prototype[Symbol.iterator] === Array.prototype.values, String.prototype.trimLeft === String.prototype.trimStart,
      [].push === Array.prototype.push, Map.prototype.constructor === Map,
      (function () { return arguments[Symbol.iterator] === Array.prototype.values; })()].join(),
    bound: (() => {
      class A { constructor(x, y) { this.sum = x + y; } }
      const B = A.bind(null, 1), b = new B(2), f = function (a, b) { return [this.k, a, b].join(); }.bind({ k: "k" }, "a");
      const C = B.bind(null, 2), custom = A.bind(null);
      Object.defineProperty(custom, Symbol.hasInstance, { value: () => "custom" });
      const nullProto = Object.setPrototypeOf(function () {}, null), N = Function.prototype.bind.call(nullProto, null);
      return [b.sum, b instanceof B, b instanceof A, f("b"), f.name, f.length, typeof f, B.prototype === A.prototype,
        new C() instanceof C, new C().sum, ({}) instanceof custom, ({}) instanceof N].join();
    })(),
    proxy: (() => {
      const seen = [], h = { get(t, k, r) { seen.push(String(k)); return k === "x" ? 42 : Reflect.get(t, k, r); } };
      const p = new Proxy({ y: 1 }, h), r = Proxy.revocable({}, {});
      r.revoke();
      let revoked = "no";
      try { r.proxy.a; } catch (e) { revoked = e.constructor.name; }
      let noNew = "no";
      try { Proxy({}, {}); } catch (e) { noNew = e.constructor.name; }
      class H { #n = 0; get(t, k) { this.#n++; return [this === h2, t[k]].join(); } count() { return this.#n; } }
      const h2 = new H(), p2 = new Proxy({ a: 1 }, h2);
      const frozen = new Proxy({}, Object.freeze({ get() { return "f"; } }));
      return [p.x, p.y, "y" in p, Object.keys(p).join(), seen.join("/"), revoked, noNew, Proxy.name, Proxy.length, p2.a, p2.a, h2.count(), frozen.z].join();
    })(),
    notConstructor: (() => { try { new String.prototype.trim(); return "constructed"; } catch (e) { return e.constructor.name; } })(),
    eval: eval("local * 6"),
    works: [[3, 1, 2].sort().join(), new Map([[1, 2]]).size, "a-b".split("-").length, [..."ab"].length,
      Object.getPrototypeOf([][Symbol.iterator]()).next.name, JSON.parse("[1]")[0], (function* () { yield 5; })().next().value].join(),
  };
};`}, js.Config{})
	want := `{"names":"trim,1,get size,max,2","text":"function trim() { [native code] }","same":"true,true,true,true,true",` +
		`"bound":"3,true,true,k,a,b,bound ,1,function,false,true,3,true,false","proxy":"42,1,true,y,x/y,TypeError,TypeError,Proxy,2,true,1,true,1,2,f",` +
		`"notConstructor":"TypeError","eval":42,"works":"1,2,3,1,2,2,next,1,5"}`
	if code, body := e.get("a", "/api/"); code != 200 || strings.TrimSpace(body) != want {
		t.Errorf("%d %s\nwant %s", code, body, want)
	}
}

// TestJSONStringifyIsStillTheLanguages: JSON.stringify, now bounded in
// depth, answers as the language does. The cases' answers are Node's.
func TestJSONStringifyIsStillTheLanguages(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function () {
  const cases = {
    plain: () => JSON.stringify({ a: [1, "x", null, true], b: { c: undefined, d: () => 1 }, e: new Date(0), f: new Number(3), g: new String("s"), h: new Boolean(false) }),
    space: () => JSON.stringify({ a: [1, { b: 2 }], c: "d" }, null, 2) + JSON.stringify([1, [2]], null, "--"),
    fn: () => JSON.stringify({ a: 1, b: [2, { c: 3 }], d: "x" }, function (k, v) { return typeof v === "number" ? v * 10 + (Array.isArray(this) ? 1 : 0) : v; }),
    fnRoot: () => JSON.stringify(5, (k, v) => (k === "" ? { wrapped: v } : v)),
    fnDrop: () => JSON.stringify({ a: 1, b: 2 }, (k, v) => (k === "a" ? undefined : v)),
    list: () => JSON.stringify({ b: 1, a: { b: 2, c: 3 }, c: [{ a: 4, z: 5 }] }, ["c", "a", "b"]),
    listInherited: () => JSON.stringify(Object.create({ x: 1 }, { y: { value: 2, enumerable: false } }), ["x", "y"]),
    listKinds: () => JSON.stringify({ 1: "one", a: "A", b: "B" }, [1, new String("a"), true, null, "a", {}, new Number(1)]),
    listProto: () => JSON.stringify({ ["__proto__"]: 1, a: 2 }, ["__proto__", "a"]),
    toJSON: () => JSON.stringify({ a: { toJSON(k) { return "key:" + k; } }, b: [{ toJSON() { return [1]; } }] }),
    cyclic: () => { const a = { x: 1 }; a.self = a; try { return JSON.stringify(a); } catch (e) { return e.constructor.name; } },
    cyclicList: () => { const a = { x: 1 }; a.self = a; try { return JSON.stringify(a, ["x", "self"]); } catch (e) { return e.constructor.name; } },
    cyclicListArray: () => { const a = { x: [] }; a.x.push(a); try { return JSON.stringify(a, ["x"]); } catch (e) { return e.constructor.name; } },
    shared: () => { const s = { v: 1 }; return JSON.stringify({ a: s, b: [s, s] }, ["a", "b", "v"]) + JSON.stringify({ a: s, b: [s, s] }); },
    proxy: () => JSON.stringify(new Proxy({ a: 1 }, {}), (k, v) => v) + JSON.stringify(new Proxy([1, 2], {}), ["a"]),
    prim: () => [JSON.stringify(undefined), JSON.stringify(() => 1), JSON.stringify("a\u2028\"b"), JSON.stringify(NaN), JSON.stringify(null)].join("|"),
    symbols: () => JSON.stringify({ [Symbol("s")]: 1, a: Symbol("t") }),
    bigint: () => { try { return JSON.stringify({ a: 1n }); } catch (e) { return e.constructor.name; } },
    throwing: () => { try { return JSON.stringify({ a: 1 }, () => { throw new SyntaxError("mine"); }); } catch (e) { return e.message; } },
    reentrant: () => JSON.stringify({ a: { b: 1, t: { toJSON() { return JSON.stringify({ x: [1] }, null, 1); } } } }, function (k, v) { return k === "b" ? JSON.stringify([v, { c: [v] }], (k2, v2) => (typeof v2 === "number" ? v2 + 1 : v2)) : v; }),
    listSymbol: () => JSON.stringify({ a: 1 }, [Symbol("a"), "b"]),
    listBigInt: () => { try { return JSON.stringify({ a: Object(1n) }, ["a"]); } catch (e) { return e.constructor.name; } },
    revive: () => JSON.stringify(JSON.parse('{"a":[1,{"b":2}],"c":"x","d":true}', function (k, v) { return typeof v === "number" ? v * 2 : k === "c" ? undefined : v; })),
    reviveThis: () => { const seen = []; JSON.parse('{"a":{"b":1},"l":[0]}', function (k, v) { seen.push(k + ":" + (Array.isArray(this) ? "array" : typeof this)); return v; }); return seen.join(","); },
    reviveArray: () => JSON.stringify(JSON.parse("[1,2,3]", (k, v) => (k === "1" ? undefined : v))),
    reviveRoot: () => JSON.parse("5", (k, v) => (k === "" ? [v, typeof k] : v)).join(),
    shape: () => [JSON.stringify.name, JSON.stringify.length, typeof JSON.stringify, Object.keys(JSON).length].join(","),
  };
  const out = {};
  for (const [k, f] of Object.entries(cases)) out[k] = f();
  return JSON.stringify(out);
};`}, js.Config{})
	code, body := e.get("a", "/api/")
	var got string
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("%d %s", code, body)
	}
	var have, want map[string]any
	if err := json.Unmarshal([]byte(got), &have); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(wantJSONCases), &want); err != nil || len(have) != len(want) {
		t.Fatalf("%d cases answered, %d wanted (%v)", len(have), len(want), err)
	}
	for k, w := range want {
		if have[k] != w {
			t.Errorf("%s: %q, want %q", k, have[k], w)
		}
	}
}

const wantJSONCases = `{"plain":"{\"a\":[1,\"x\",null,true],\"b\":{},\"e\":\"1970-01-01T00:00:00.000Z\",\"f\":3,\"g\":\"s\",\"h\":false}","space":"{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ],\n  \"c\": \"d\"\n}[\n--1,\n--[\n----2\n--]\n]","fn":"{\"a\":10,\"b\":[21,{\"c\":30}],\"d\":\"x\"}","fnRoot":"{\"wrapped\":5}","fnDrop":"{\"b\":2}","list":"{\"c\":[{\"a\":4}],\"a\":{\"c\":3,\"b\":2},\"b\":1}","listInherited":"{\"x\":1,\"y\":2}","listKinds":"{\"1\":\"one\",\"a\":\"A\"}","listProto":"{\"__proto__\":1,\"a\":2}","toJSON":"{\"a\":\"key:a\",\"b\":[[1]]}","cyclic":"TypeError","cyclicList":"TypeError","cyclicListArray":"TypeError","shared":"{\"a\":{\"v\":1},\"b\":[{\"v\":1},{\"v\":1}]}{\"a\":{\"v\":1},\"b\":[{\"v\":1},{\"v\":1}]}","proxy":"{\"a\":1}[1,2]","prim":"||\"a \\\"b\"|null|null","symbols":"{}","bigint":"TypeError","throwing":"mine","reentrant":"{\"a\":{\"b\":\"[2,{\\\"c\\\":[2]}]\",\"t\":\"{\\n \\\"x\\\": [\\n  1\\n ]\\n}\"}}","listSymbol":"{}","listBigInt":"TypeError","revive":"{\"a\":[2,{\"b\":4}],\"d\":true}","reviveThis":"b:object,a:object,0:array,l:object,:object","reviveArray":"[1,null,3]","reviveRoot":"5,string","shape":"stringify,3,function,0"}`

// TestDeepJSONEndsTheScriptNotTheServer: goja's JSON.stringify went into
// a value by Go recursion, checking every level against those above it,
// past the time limit: 18 s for a value nested 100,000 deep. Now it goes
// 1000 deep at most, the script's own and the server's (an answer, a
// broadcast's data, which the app's max_json_depth already bounds).
func TestDeepJSONEndsTheScriptNotTheServer(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const deep = (n) => { let o = {}; for (let i = 0; i < n; i++) o = { o }; return o; };
const deepList = (n) => { let o = 1; for (let i = 0; i < n; i++) o = [o]; return o; };
module.exports = function (req) {
  switch (req.path) {
  case "/api/stringify": return JSON.stringify(deep(100000)).length;
  case "/api/replacer": return JSON.stringify(deep(100000), (k, v) => v).length;
  case "/api/list": return JSON.stringify(deep(100000), ["o"]).length;
  case "/api/answer": return deep(100000);
  case "/api/caught": try { JSON.stringify(deepList(1000)); return JSON.stringify(deepList(1001)); } catch (e) { return e.message; }
  case "/api/broadcast": try { fazt.realtime.broadcast("room", deep(100000)); } catch (e) { return e.message; }
  case "/api/broadcast-31": return fazt.realtime.broadcast("room", deep(30)).offset > 0;
  case "/api/broadcast-32": try { fazt.realtime.broadcast("room", deep(31)); } catch (e) { return e.message; }
  case "/api/toJSON": try { fazt.realtime.broadcast("room", { toJSON: () => deep(100000) }); } catch (e) { return e.message; }
  }
};`}, js.Config{})
	wantFailures(t, e, []answer{
		{"/api/stringify", "RangeError: JSON.stringify goes at most 1000 objects and arrays deep"},
		{"/api/replacer", "RangeError: JSON.stringify goes at most 1000 objects and arrays deep"},
		{"/api/list", "RangeError: JSON.stringify goes at most 1000 objects and arrays deep"},
		{"/api/answer", "RangeError: JSON nests deeper than 1000 levels"},
	})
	wantAnswers(t, e, []answer{
		{"/api/caught", `"JSON.stringify goes at most 1000 objects and arrays deep"`},
		{"/api/broadcast", `"bad_request: JSON nests deeper than 31 levels"`},
		{"/api/toJSON", `"bad_request: JSON nests deeper than 31 levels"`},
		{"/api/broadcast-31", `true`}, // max_json_depth 32, less one: 31 levels pass
		{"/api/broadcast-32", `"bad_request: JSON nests deeper than 31 levels"`},
	})
}

// answer is what app a answers 200 at path (wantAnswers), or the error
// it answers 500 with (wantFailures).
type answer struct{ path, want string }

func wantAnswers(t *testing.T, e *env, answers []answer) {
	t.Helper()
	for _, a := range answers {
		if code, body := e.get("a", a.path); code != 200 || strings.TrimSpace(body) != a.want {
			t.Errorf("%s: %d %.300s, want %s", a.path, code, body, a.want)
		}
	}
}

func wantFailures(t *testing.T, e *env, failures []answer) {
	t.Helper()
	for _, f := range failures {
		if code, body := e.get("a", f.path); code != 500 || decodeErr(t, body[:min(len(body), 2000)]).Error != f.want {
			t.Errorf("%s: %d %.300s, want 500 %s", f.path, code, body, f.want)
		}
	}
}

// TestTheServerDoesNotReadAnAnswerItRefuses: a body, status or channel of
// the wrong type was exported whole to see its type, every getter called
// and every level copied by Go recursion, past the time limit.
func TestTheServerDoesNotReadAnAnswerItRefuses(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const trap = { get x() { throw new Error("read"); } };
module.exports = function (req) {
  switch (req.path) {
  case "/api/body": return { body: trap };
  case "/api/channel": try { fazt.realtime.broadcast(trap, 1); } catch (e) { return e.message; }
  }
};`}, js.Config{})
	if code, body := e.get("a", "/api/body"); code != 500 || !strings.Contains(decodeErr(t, body).Error, "returned a body that is an object") {
		t.Errorf("body: %d %s", code, body)
	}
	if code, body := e.get("a", "/api/channel"); code != 200 || strings.TrimSpace(body) != `"invalid_channel: channel name must be a string"` {
		t.Errorf("channel: %d %s", code, body)
	}
}

// TestLongBuiltInWorkEndsAtTheLimit: a built-in that runs long in Go is
// stopped at the time limit (a JSON.stringify of an array holding itself
// twice at each of 40 levels would write 2**40 values), JSON.parse goes
// 10,000 levels deep at most (goja's overflowed the stack at 5,000,000
// and took seconds at 1,000,000),
// and an app's max_json_depth set past 1000 still bounds a broadcast's
// data at 1000.
func TestLongBuiltInWorkEndsAtTheLimit(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"js": {"handler_timeout_ms": 300}, "limits": {"max_json_depth": 100000000}}`,
		"a/api/main.js": `
const deep = (n) => { let o = 1; for (let i = 0; i < n; i++) o = [o]; return o; };
module.exports = function (req) {
  switch (req.path) {
  case "/api/shared": { let x = []; for (let i = 0; i < 40; i++) x = [x, x]; return JSON.stringify(x).length; }
  case "/api/parse": try { return JSON.parse("[".repeat(10001) + "]".repeat(10001)).length; } catch (e) { return e.name + ": " + e.message; }
  case "/api/parse-deepest": { let v = JSON.parse("[".repeat(10000) + "]".repeat(10000)), n = 0; while (Array.isArray(v)) { v = v[0]; n++; } return n; }
  case "/api/shared-caught": { let x = []; for (let i = 0; i < 40; i++) x = [x, x]; try { return JSON.stringify(x).length; } catch (e) { return [e.name, e.message, String(e)].join("|"); } }
  case "/api/broadcast": try { fazt.realtime.broadcast("room", deep(2000)); } catch (e) { return e.message; }
  case "/api/bound-cycle-instanceof": { const b = (() => {}).bind(); Object.setPrototypeOf(b, b); return b instanceof Object; }
  case "/api/revive-deep": {
    const text = (n) => "[".repeat(n) + "]".repeat(n), same = (k, v) => v;
    JSON.parse(text(1000), same);
    try { return JSON.parse(text(1001), same); } catch (e) { return e.name + ": " + e.message; }
  }
  }
};`}, js.Config{})
	for _, path := range []string{"/api/shared", "/api/shared-caught", "/api/bound-cycle-instanceof"} {
		if code, body := e.get("a", path); code != 500 || decodeErr(t, body).Error != "api/main.js ran past its time limit of 300ms and was interrupted" {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
	wantAnswers(t, e, []answer{
		{"/api/parse", `"SyntaxError: JSON.parse goes at most 10000 objects and arrays deep"`},
		{"/api/parse-deepest", `10000`},
		{"/api/broadcast", `"bad_request: JSON nests deeper than 1000 levels"`},
		{"/api/revive-deep", `"RangeError: JSON.parse with a reviver goes at most 1000 objects and arrays deep"`},
	})
}

// TestAThrowInTheCallsWayIsTheScripts: a built-in getter that throws in
// the way of the call (the exports' handler here) is the script's
// failure, answered with its error; it was read as a Go panic, and
// answered as the engine's ("script engine failure").
func TestAThrowInTheCallsWayIsTheScripts(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const thrower = Object.getOwnPropertyDescriptor(Function.prototype, "caller").get;
Object.defineProperty(module.exports, "handler", { get: thrower });`}, js.Config{})
	code, body := e.get("a", "/api/")
	if b := decodeErr(t, body); code != 500 || !strings.HasPrefix(b.Error, "TypeError") {
		t.Errorf("%d %s", code, body)
	}
}

// TestAStringTooLongToMakeIsRefused: goja asks Go for a repeat's or a
// pad's whole answer at once, and "x".repeat(2**40) ended the process
// with an out-of-memory error no recover catches (a width taken from a
// request would do). Past V8's limit, about 2**29 units, it is V8's
// RangeError; below, the answers are goja's as before (and Node's, but
// for goja's wording of three errors), the receiver, the count and a
// pad's filler are read once each, and a receiver whose toString is one
// of them is stopped by the count of nested built-ins.
func TestAStringTooLongToMakeIsRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const tryIt = (f) => { try { return f(); } catch (e) { return e.name + ": " + e.message; } };
module.exports = function () {
  let reads = 0;
  const self = { toString() { reads++; return "ab"; } }, count = { valueOf() { reads++; return 2; } };
  return [
    tryIt(() => "x".repeat(2 ** 40)), tryIt(() => "x".padStart(2 ** 40)), tryIt(() => "x".padEnd(2 ** 40, "-")),
    tryIt(() => "x".repeat(Infinity)), tryIt(() => "x".repeat(-1)),
    "ab".repeat(3), "5".padStart(3, "0"), "5".padEnd(3), "\uD800".repeat(2) === "\uD800\uD800", "x".repeat(0),
    String.prototype.repeat.call(self, count), reads, String.prototype.repeat.call(12, 2),
    tryIt(() => String.prototype.repeat.call(null, 2)),
    String.prototype.padStart.call({ toString() {} }, 12), String.prototype.repeat.call({ toString() { return null; } }, 2),
    "x".padEnd(2 ** 40, ""), "abc".padStart(2, "-"), "x".padStart(3, { toString() { return "ab"; } }),
    tryIt(() => String({ toString: String.prototype.repeat })), tryIt(() => String({ toString: String.prototype.padStart })),
  ].join("|");
};`}, js.Config{})
	want := `"RangeError: Invalid string length|RangeError: Invalid string length|RangeError: Invalid string length|` +
		`RangeError: Invalid count value|RangeError: Invalid count value|ababab|005|5  |true||abab|2|1212|TypeError: ` + // goja's words
		`Value is not object coercible|   undefined|nullnull|x|abc|abx|` +
		`RangeError: built-in functions nested more than 4096 deep|RangeError: built-in functions nested more than 4096 deep"`
	code, body := e.get("a", "/api/")
	if code != 200 || strings.TrimSpace(body) != want {
		t.Errorf("%d %s\nwant %s", code, body, want)
	}
}
