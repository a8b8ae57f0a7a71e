package js_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/transport/js"
)

// TestSizesPastTheLimitsAreRefused: goja's built-ins took a size or a
// length and went through it in Go, or asked Go for all the memory at
// once. Each of these, in one line, ended the whole server with an
// out-of-memory error no recover catches, or kept a run slot and a CPU
// for hours (a number from a request was enough: /api/json). Each is now
// a RangeError before the built-in starts.
func TestSizesPastTheLimitsAreRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const cases = {
  "/api/array-buffer": () => new ArrayBuffer(2 ** 40),
  "/api/array-buffer-object": () => new ArrayBuffer({ valueOf: () => 2 ** 40 }),
  "/api/uint8": () => new Uint8Array(2 ** 40),
  "/api/float64": () => new Float64Array(2 ** 24),
  "/api/subclass": () => { class A extends Uint8Array {} return new A(2 ** 40); },
  "/api/constructor-property": () => new (new Uint8Array(1).constructor)(2 ** 40),
  "/api/typed-copy": () => new Float64Array(new Uint8Array(2 ** 24)),
  "/api/typed-join-no-length": () => Uint8Array.prototype.join.call(Object.setPrototypeOf(new Uint8Array(2 ** 21), null), "x"),
  "/api/join-elements": () => new Array(2 ** 20).fill("x".repeat(2 ** 10)).join(""),
  "/api/uint8-array-like": () => new Uint8Array({ length: 2 ** 40 }),
  "/api/uint8-from": () => Uint8Array.from({ length: 2 ** 40 }),
  "/api/as-uint": () => BigInt.asUintN(2 ** 40, -1n),
  "/api/as-int": () => BigInt.asIntN(2 ** 40, -1n),
  "/api/apply": () => Math.max.apply(null, { length: 2 ** 36 }),
  "/api/reflect-apply": () => Reflect.apply(Math.max, null, { length: 2 ** 36 }),
  "/api/reflect-construct": () => Reflect.construct(Array, { length: 2 ** 36 }),
  "/api/fill": () => new Array(2 ** 32 - 1).fill(0),
  "/api/from": () => Array.from({ length: 2 ** 40 }),
  "/api/join": () => [].join.call({ length: 2 ** 40 }, "x"),
  "/api/join-separators": () => new Array(2 ** 20).join("x".repeat(2 ** 10)),
  "/api/to-string": () => String(new Array(2 ** 32 - 1)),
  "/api/index-of": () => [].indexOf.call({ length: 2 ** 53 - 1 }, 1),
  "/api/includes": () => new Array(2 ** 32 - 1).includes(1),
  "/api/raw": () => String.raw({ raw: { length: 2 ** 40 } }),
  "/api/concat": () => [].concat({ length: 2 ** 40, [Symbol.isConcatSpreadable]: true }),
  "/api/typed-join": () => new Uint8Array(2 ** 21).join(),
  "/api/typed-locale": () => new Uint8Array(2 ** 21).toLocaleString(),
  "/api/typed-sort": () => new Uint8Array(2 ** 21).sort(),
  "/api/typed-join-elements": () => new Float64Array(2 ** 20).fill(-3.0000000000000004e-6).join("x".repeat(488)),
  "/api/locale": () => [].toLocaleString.call({ length: 2 ** 40 }),
  "/api/locale-elements": () => { const long = "x".repeat(2 ** 20); return new Array(1024).fill({ toLocaleString: () => long }).toLocaleString(); },
};
module.exports = function (req) {
  if (req.path === "/api/json") return Math.max.apply(null, req.json.values);
  if (req.path === "/api/caught") {
    try { return new Array(2 ** 32 - 1).fill(0); } catch (e) { return e.name + "; " + [1, 2].fill(0).join(); }
  }
  if (req.path === "/api/edges") { // at the element and byte limits, not past them; joins of a cycle
    const cyclic = [1, 2]; cyclic.push(cyclic);
    return [[].indexOf.call({ length: 2 ** 20 }, 1), new ArrayBuffer(2 ** 26).byteLength, new ArrayBuffer(2 ** 26 + 0.5).byteLength,
      new Float64Array(2 ** 23).length, String(BigInt.asUintN(2 ** 20, 5n)), Math.max.apply(null, new Array(2 ** 20).fill(1)),
      [].join.call({ length: 2 ** 20 }).length, [].concat({ length: 2 ** 20, [Symbol.isConcatSpreadable]: true }).length,
      new Uint8Array(2 ** 20).sort().length, cyclic.join("-"), String([cyclic, [cyclic]]),
      Function.prototype.toString.call(Uint8Array)].join("|"); // a proxy's text, not the constructor's
  }
  return cases[req.path]();
};`}, js.Config{HandlerTimeout: 60 * time.Second}) // sizes, not time: /api/edges goes through millions of elements, slow under -race on a busy machine
	wantFailures(t, e, []answer{
		{"/api/array-buffer", "RangeError: ArrayBuffer holds at most 67108864 bytes, not 1099511627776"},
		{"/api/array-buffer-object", "RangeError: ArrayBuffer holds at most 67108864 bytes, not 1099511627776"},
		{"/api/uint8", "RangeError: Uint8Array holds at most 67108864 bytes, not 1099511627776"},
		{"/api/float64", "RangeError: Float64Array holds at most 67108864 bytes, not 134217728"},
		{"/api/subclass", "RangeError: Uint8Array holds at most 67108864 bytes, not 1099511627776"},
		{"/api/constructor-property", "RangeError: Uint8Array holds at most 67108864 bytes, not 1099511627776"},
		{"/api/typed-copy", "RangeError: Float64Array holds at most 67108864 bytes, not 134217728"},
		{"/api/typed-join-no-length", "RangeError: %TypedArray%.prototype.join goes through at most 1048576 elements, not 2097152"},
		{"/api/join-elements", "RangeError: Invalid string length"},
		{"/api/uint8-array-like", "RangeError: Uint8Array goes through at most 1048576 elements, not 1099511627776"},
		{"/api/uint8-from", "RangeError: %TypedArray%.from goes through at most 1048576 elements, not 1099511627776"},
		{"/api/as-uint", "RangeError: BigInt.asUintN makes at most 1073741824 bits, not 1099511627776"},
		{"/api/as-int", "RangeError: BigInt.asIntN makes at most 1073741824 bits, not 1099511627776"},
		{"/api/apply", "RangeError: a call takes at most 1048576 arguments, not 68719476736"},
		{"/api/reflect-apply", "RangeError: a call takes at most 1048576 arguments, not 68719476736"},
		{"/api/reflect-construct", "RangeError: a call takes at most 1048576 arguments, not 68719476736"},
		{"/api/fill", "RangeError: Array.prototype.fill goes through at most 1048576 elements, not 4294967295"},
		{"/api/from", "RangeError: Array.from goes through at most 1048576 elements, not 1099511627776"},
		{"/api/join", "RangeError: Array.prototype.join goes through at most 1048576 elements, not 1099511627776"},
		{"/api/join-separators", "RangeError: Invalid string length"},
		{"/api/to-string", "RangeError: Array.prototype.join goes through at most 1048576 elements, not 4294967295"},
		{"/api/index-of", "RangeError: Array.prototype.indexOf goes through at most 1048576 elements, not 9007199254740991"},
		{"/api/includes", "RangeError: Array.prototype.includes goes through at most 1048576 elements, not 4294967295"},
		{"/api/raw", "RangeError: String.raw goes through at most 1048576 elements, not 1099511627776"},
		{"/api/concat", "RangeError: Array.prototype.concat goes through at most 1048576 elements, not 1099511627776"},
		{"/api/typed-join", "RangeError: %TypedArray%.prototype.join goes through at most 1048576 elements, not 2097152"},
		{"/api/typed-locale", "RangeError: %TypedArray%.prototype.toLocaleString goes through at most 1048576 elements, not 2097152"},
		{"/api/typed-sort", "RangeError: %TypedArray%.prototype.sort goes through at most 1048576 elements, not 2097152"},
		{"/api/typed-join-elements", "RangeError: Invalid string length"},
		{"/api/locale", "RangeError: Array.prototype.toLocaleString goes through at most 1048576 elements, not 1099511627776"},
		{"/api/locale-elements", "RangeError: Invalid string length"},
	})
	if code, body := e.do("a", "POST", "/api/json", `{"values": {"length": 1e12}}`); code != 500 ||
		decodeErr(t, body).Error != "RangeError: a call takes at most 1048576 arguments, not 1000000000000" {
		t.Errorf("json: %d %.300s", code, body)
	}
	wantAnswers(t, e, []answer{
		{"/api/caught", `"RangeError; 0,0"`},
		{"/api/edges", `"-1|67108864|67108864|8388608|5|1|1048575|1048576|1048576|1-2-|1,2,,1,2,|function () { [native code] }"`},
	})
}

// TestSizeChecksLeaveTheLanguage: below the limits, the built-ins answer
// as before, and as Node does (the answers are Node 20's, errors by name):
// the constructors' proxies are the constructors for new, instanceof,
// subclasses, species and their properties; a size or separator given as
// an object is converted once.
func TestSizeChecksLeaveTheLanguage(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
const tryIt = (f) => { try { return f(); } catch (e) { return e.name; } };
const still = () => {
  let reads = 0;
  const count = (n) => ({ valueOf() { reads++; return n; } });
  class A extends Uint8Array {}
  const a = new A(3);
  return [
    new Uint8Array(16).length, new ArrayBuffer(8).byteLength, new Uint8Array([1, 2, 3]).join(),
    new Uint8Array({ length: 2, 0: 5 }).join(), new Float64Array(new ArrayBuffer(16)).length,
    Uint8Array.from({ length: 3 }, (_, i) => i * 2).join(), Uint8Array.of(1, 2).join(), new Int16Array(new Set([7, 8])).join(),
    new Uint8Array(2) instanceof Uint8Array, new Uint8Array(2) instanceof Int8Array, Uint8Array.prototype.constructor === Uint8Array,
    new Uint8Array(1).constructor === Uint8Array, a.map((x) => x + 1) instanceof A, a.subarray(1) instanceof A, a.length,
    Object.getPrototypeOf(Uint8Array) === Object.getPrototypeOf(Int8Array), Uint8Array.name, Uint8Array.length,
    Uint8Array.BYTES_PER_ELEMENT, Float64Array.BYTES_PER_ELEMENT, typeof Uint8Array, tryIt(() => Uint8Array(2)), tryIt(() => ArrayBuffer(2)),
    new Uint8Array(4).subarray(1).length, new Uint8Array(4).slice(1).constructor === Uint8Array,
    ArrayBuffer.isView(new DataView(new ArrayBuffer(2))), new ArrayBuffer(8).slice(2).byteLength,
    new ArrayBuffer(count(8)).byteLength, new Uint8Array(count(3)).length, reads,
    tryIt(() => new Uint8Array(-1)), tryIt(() => new ArrayBuffer(-1)), tryIt(() => new Uint8Array(Symbol())),
    new Uint8Array("3").length, new Uint8Array(null).length, new Uint8Array(undefined).length, new Uint8Array(2.5).length,
    String(BigInt.asUintN(8, 257n)), String(BigInt.asIntN(count(8), 255n)), reads, tryIt(() => BigInt.asUintN(-1, 1n)),
    Math.max.apply(null, [1, 5, 3]), Math.max.apply(null), Reflect.apply(Math.min, null, [4, 2]),
    Reflect.construct(Array, [1, 2]).length, Reflect.construct(Uint8Array, [2]).length,
    Array.from({ length: 3 }, (_, i) => i).join(), Array.from("abc").join(), Array.from(new Set([1, 2])).join(),
    new Array(5).fill(0).join("-"), [1, [2, 3]].concat([4], 5).length, [].concat.call(1, 2).length,
    [].concat({ length: 2, 0: "x", [Symbol.isConcatSpreadable]: true }).join(),
    String.raw({ raw: ["a", "b"] }, 1), String.raw({ raw: ["x\\n", ""] }, 1), String.raw({ raw: "xyz" }, "-", "+"),
    [3, 1, 2].toSorted().join(), [1, 2, 3].join({ toString() { reads++; return "+"; } }), reads,
    Array.prototype.join.call({ length: 2, 0: "a", 1: "b" }, ""), [1, 2].join(null), [1, 2].join(undefined),
    [1, 2].join(7), tryIt(() => [1, 2].join(Symbol())), Array.prototype.join.call("abc", "."), String([1, [2, 3]]),
    [1, 2, 3].indexOf(2), [1, 2, 3].includes(4), [1, 2, 3].reverse().join(), [1, 2, 3].map((x) => x * 2).join(),
    tryIt(() => Array.prototype.fill.call(null)), new Uint8Array([1, 2]).toString(), new Float32Array([1.5]).toLocaleString(),
    Array.prototype.indexOf.call({ length: 3, 2: "z" }, "z"), [..."ab"].length,
    new Uint8Array(1) instanceof A, a instanceof Uint8Array, Uint8Array[Symbol.hasInstance].call(A, new Uint8Array(1)),
    new Uint8Array(1) instanceof new Proxy(Uint8Array, {}), Uint8Array[Symbol.hasInstance].call(Float64Array, new Float64Array(1)),
    Uint8Array[Symbol.hasInstance].call(undefined, new Uint8Array(1)), Uint8Array[Symbol.hasInstance].call(A, 1),
    [1, [2], [[3]]].flatMap((x) => x).length, [1, 2].flatMap((x, i, arr) => [x, i, arr.length]).join(), tryIt(() => [1].flatMap(1)),
    [1, , 3].flatMap((x) => [x]).length, Array.prototype.flatMap.call({ length: 2, 0: "a", 1: ["b"] }, (x) => x).join(),
    [1].flatMap(function () { return this.v; }, { v: 5 }).join(), Array.prototype.flatMap.length, tryIt(() => Array.prototype.flatMap.call(null, (x) => x)),
    ["a", "b"].join(), [].join(), [null, undefined, 1].join(), [{ toString() { return 5; } }, 2n].join(), ["\uD800"].join() === "\uD800",
    tryIt(() => [Symbol()].join()), tryIt(() => [1, 2].join({ toString() { return Symbol(); } })),
    ["a", "\uD800"].join() === "a,\uD800", (() => { const cy = [1]; cy.push({ toLocaleString: () => cy.join("+") }); return cy.toLocaleString(); })(),
    [1, "a", null, [2, 3], undefined].toLocaleString(), tryIt(() => [{ toLocaleString: 1 }].toLocaleString()), [1.5, true].toLocaleString(),
    Array.prototype.toLocaleString.call({ length: 2, 1: 7 }), (() => { const th = [1, { toString() { throw new Error("x"); } }]; tryIt(() => th.join()); th.pop(); return th.join(); })(),
    (() => { Object.defineProperty(Array.prototype, "0", { set() {}, configurable: true }); try { return [[5].flatMap((x) => x)[0], [[6]].flat()[0]].join(); } finally { delete Array.prototype[0]; } })(),
    (() => { const o = Array.isArray; Array.isArray = () => false; try { return [[1, 2]].flatMap((x) => x).length + ":" + [[1, 2]].flat().length; } finally { Array.isArray = o; } })(),
    (() => { const d = Object.getOwnPropertyDescriptor(Number.prototype, "toLocaleString"); Object.defineProperty(Number.prototype, "toLocaleString", { configurable: true, get() { "use strict"; const t = typeof this; return () => t; } }); try { return [1].toLocaleString(); } finally { Object.defineProperty(Number.prototype, "toLocaleString", d); } })(),
    [{ toLocaleString: (l, o) => String(l) + typeof o }].toLocaleString("de", {}),
    (() => { const T = TypeError; globalThis.TypeError = function X() {}; try { [].flat.call(null); } catch (e) { return e instanceof T; } finally { globalThis.TypeError = T; } })(),
    tryIt(() => Array.prototype.flatMap.call({ length: 1n, 0: 7 }, (x) => x)), tryIt(() => [[1]].flat(1n)), [1, [2, [3, [4]]]].flat(2).length,
    new Uint8Array([3, 1, 2]).sort().join(), new Uint8Array([3, 1, 2]).toSorted().join(),
  ].join("|");
};
module.exports = still;`}, js.Config{})
	// node -e "$(cat lang.js)" with console.log(JSON.stringify(still()))
	want := `"16|8|1,2,3|5,0|2|0,2,4|1,2|7,8|true|false|true|true|true|true|3|true|Uint8Array|3|1|8|function|TypeError|TypeError|3|true|true|6|8|0|1|RangeError|RangeError|TypeError|3|0|0|2|1|-1|2|RangeError|5|-Infinity|2|2|2|0,1,2|a,b,c|1,2|0-0-0-0-0|4|2|x,|a1b|x\\n1|x-y+z|1,2,3|1+2+3|3|ab|1null2|1,2|172|TypeError|a.b.c|1,2,3|1|false|3,2,1|2,4,6|TypeError|1,2|1.5|2|2|false|true|false|true|true|false|false|3|1,0,2,2,1,2|TypeError|2|a,b|5|1|TypeError|a,b||,,1|5,2|true|TypeError|TypeError|true|1,|1,a,,2,3,|TypeError|1.5,true|,7|1|5,6|2:2|number|deobject|true|TypeError|TypeError|4|1,2,3|1,2,3"`
	code, body := e.get("a", "/api/")
	if code != 200 || strings.TrimSpace(body) != want {
		t.Errorf("%d %s\nwant %s", code, body, want)
	}
}

// TestIterablesOfAnyLengthEndAtTheLimit: what goes through an iterable
// is not refused by its length (a holey array of 2**32-1 is iterable),
// but each step calls the array iterator's next, a counted built-in, so
// the run ends at its time limit; and flatMap, JS now, goes through what
// its callback gives in JS (goja's went through [0].flatMap(() => new
// Array(2**32-1)) in Go, for minutes).
func TestIterablesOfAnyLengthEndAtTheLimit(t *testing.T) {
	e := newEnv(t, map[string]string{
		"a/app.json": `{"js": {"handler_timeout_ms": 300}}`,
		"a/api/main.js": `
const long = () => new Array(2 ** 32 - 1);
const cases = {
  "/api/typed": () => new Uint8Array(long()).length,
  "/api/spread": () => [...long()].length,
  "/api/from": () => Array.from(long()).length,
  "/api/set": () => new Set(long()).size,
  "/api/keys": () => [...long().keys()].length,
  "/api/flat-map": () => [0].flatMap(() => long()).length,
};
module.exports = function (req) { return cases[req.path](); };`}, js.Config{})
	for _, path := range []string{"/api/typed", "/api/spread", "/api/from", "/api/set", "/api/keys", "/api/flat-map"} {
		if code, body := e.get("a", path); code != 500 || decodeErr(t, body).Error != "api/main.js ran past its time limit of 300ms and was interrupted" {
			t.Errorf("%s: %d %.300s", path, code, body)
		}
	}
}
