package js

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dop251/goja"

	"github.com/fazt-realtime/fazt/domain"
)

// maxNativeNesting bounds how deeply calls of the language's built-in
// functions may nest: as deep as a script's own calls may.
const maxNativeNesting = maxCallDepth

// maxJSONNesting is how deeply JSON.stringify goes into a value: as deep
// as arrays may nest in an array's text.
const maxJSONNesting = maxTextNesting

// goja runs the language's built-in functions as Go, and counts against
// the call depth limit only the calls a script's own code makes. A
// built-in that a script's object makes call itself goes round in Go
// until the stack overflows, which is a fatal error: no recover catches
// it, and it ends the whole server. One line does it:
// String({toString: String.prototype.trim}) (trim makes its this text,
// which calls trim), {then: Promise.prototype.catch}.then() (catch calls
// this.then), an array-like whose length getter is Array.prototype.push.
//
// guardBuiltIns puts a counted stand-in (counted, made in Go, so that a
// call costs nanoseconds more, not a JS call's microsecond) in the place
// of every built-in function the language gives a script: its methods,
// getters and setters, those of the iterators' and generators' hidden
// prototypes included. The same function gets the same stand-in wherever
// it sits (Array.prototype[Symbol.iterator] === Array.prototype.values
// still holds), with its name and length. Left as they are:
//   - constructors: none calls itself through its this, and a stand-in
//     would not be one. A bound function (of a constructor too) is
//     counted instead: bind gives a proxy whose calls are (guardBind);
//   - eval: a stand-in would make every direct eval an indirect one;
//   - what goja checks for by identity, to take its fast paths, and
//     which calls no script code: Array.prototype.values (also
//     arguments' iterator), Map's set, Set's add, has and values,
//     WeakMap's set, WeakSet's add, the thrower of Function.prototype's
//     caller, and RegExp.prototype's exec and flag getters (global,
//     multiline, ignoreCase, unicode, sticky). Changing any of those on
//     RegExp.prototype sends every replace, split and match down goja's
//     generic path, 8 times slower. exec does call script code: it reads
//     lastIndex as a number, which a regexp whose valueOf is exec, set
//     as its own lastIndex, turns into a loop in Go (docs/js-api.md);
//   - what the server adds: require, console and the timers call nothing
//     back through their this (the timers' callbacks run through
//     timerGate, as JS); fazt.realtime's functions are counted where
//     they are made.
//
// Where they are is found once, by walking a fresh runtime
// (builtInTargets); each runtime then has them replaced by path, in Go:
// walking each one took 10 ms a runtime, most of it describing every
// property as an object.

// builtInTarget is a property that holds a built-in function to guard:
// the object it is on is found from a root (builtInRootsProgram) down a path of
// property names ("@@Symbol.iterator" for a symbol, "[[Prototype]]" for a
// prototype).
type builtInTarget struct {
	root     int
	path     []string
	key      string
	accessor bool
}

// builtInRootsProgram gives the objects the built-ins are found from:
// the global object, and the prototypes no global leads to.
var builtInRootsProgram = goja.MustCompile("fazt:roots", `(() => {
  const p = Object.getPrototypeOf;
  return [globalThis, p([][Symbol.iterator]()), p(new Map()[Symbol.iterator]()), p(new Set()[Symbol.iterator]()),
    p(""[Symbol.iterator]()), p("a".matchAll(/a/g)), p(function* () {}), p(async function () {})];
})()`, true)

// builtInWalkProgram lists builtInTargets: every property, from the
// roots down, that holds a function guardable says is a built-in to
// guard, as [root, path, key, accessor]; and, in missed, those that
// cannot be changed.
var builtInWalkProgram = goja.MustCompile("fazt:walk", `(function (roots, guardable) {
  const ownKeys = Reflect.ownKeys, describe = Object.getOwnPropertyDescriptor, protoOf = Object.getPrototypeOf;
  const seen = new Set(), targets = [], missed = [];
  const step = (key) => (typeof key === "symbol" ? "@@" + key.description : key);
  const exempt = new Set([eval, RegExp.prototype.exec, Array.prototype.values, Map.prototype.set, Set.prototype.add,
    Set.prototype.has, Set.prototype.values, WeakMap.prototype.set, WeakSet.prototype.add,
    describe(Function.prototype, "caller").get,
    ...["global", "multiline", "ignoreCase", "unicode", "sticky"].map((f) => describe(RegExp.prototype, f).get)]);
  const guard = (fn) => typeof fn === "function" && !exempt.has(fn) && guardable(fn);
  const visit = (o, root, path) => {
    if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) return;
    seen.add(o);
    // Its prototype first: a path down a built-in function would pass
    // through its stand-in.
    visit(protoOf(o), root, path.concat(["[[Prototype]]"]));
    for (const key of ownKeys(o)) {
      // The language makes it fixed; it calls nothing of the script's
      // but through what is counted (a getter of prototype, a trap).
      if (o === Function.prototype && key === Symbol.hasInstance) continue;
      const d = describe(o, key);
      const at = path.concat([step(key)]);
      if ("value" in d) {
        visit(d.value, root, at);
        // Function.prototype is a function too, which does nothing.
        if (key === "prototype" || !guard(d.value)) continue;
        if (d.configurable || d.writable) targets.push([root, path, step(key), false]);
        else missed.push(at.join("."));
      } else if (guard(d.get) || guard(d.set)) {
        if (d.configurable) targets.push([root, path, step(key), true]);
        else missed.push(at.join("."));
      }
    }
  };
  roots.forEach((o, i) => visit(o, i, []));
  return { targets, missed };
})`, true)

var builtIns struct {
	once    sync.Once
	targets []builtInTarget
	err     error
}

// builtInTargets walks a fresh runtime, once, for the built-ins to guard.
// One that cannot be changed is an error, so that a goja that adds one
// fails every test rather than leaving it unguarded.
func builtInTargets() ([]builtInTarget, error) {
	builtIns.once.Do(func() {
		defer func() {
			if p := recover(); p != nil {
				builtIns.targets, builtIns.err = nil, fmt.Errorf("walking the built-ins: %v", p)
			}
		}()
		builtIns.targets, builtIns.err = walkBuiltIns()
	})
	return builtIns.targets, builtIns.err
}

func walkBuiltIns() ([]builtInTarget, error) {
	vm := goja.New()
	roots, err := vm.RunProgram(builtInRootsProgram)
	if err != nil {
		return nil, err
	}
	walk, err := vm.RunProgram(builtInWalkProgram)
	if err != nil {
		return nil, err
	}
	fn, _ := goja.AssertFunction(walk)
	found, err := fn(goja.Undefined(), roots, vm.ToValue(func(c goja.FunctionCall) goja.Value {
		_, ok := guardable(c.Argument(0))
		return vm.ToValue(ok)
	}))
	if err != nil {
		return nil, err
	}
	var (
		list   [][]any
		missed []string
	)
	if err := vm.ExportTo(found.ToObject(vm).Get("targets"), &list); err != nil {
		return nil, err
	}
	if err := vm.ExportTo(found.ToObject(vm).Get("missed"), &missed); err != nil {
		return nil, err
	}
	if len(missed) > 0 {
		return nil, fmt.Errorf("built-in functions that cannot be guarded: %v", missed)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no built-in functions found to guard")
	}
	var targets []builtInTarget
	for _, t := range list {
		bt := builtInTarget{root: int(t[0].(int64)), key: t[2].(string), accessor: t[3].(bool)}
		for _, p := range t[1].([]any) {
			bt.path = append(bt.path, p.(string))
		}
		if strings.HasPrefix(bt.key, "@@") && wellKnown[bt.key] == nil {
			return nil, fmt.Errorf("built-in %v.%s is keyed by a symbol not known", bt.path, bt.key)
		}
		targets = append(targets, bt)
	}
	return targets, nil
}

// guardable is the Go function goja runs for v, when v is a built-in
// function that is not a constructor.
func guardable(v goja.Value) (func(goja.FunctionCall) goja.Value, bool) {
	fn, ok := v.(*goja.Object)
	if !ok {
		return nil, false
	}
	if _, ctor := goja.AssertConstructor(fn); ctor {
		return nil, false
	}
	native, ok := fn.Export().(func(goja.FunctionCall) goja.Value)
	return native, ok
}

// wellKnown are the symbols a built-in target's path may name.
var wellKnown = map[string]*goja.Symbol{}

func init() {
	for _, s := range []*goja.Symbol{goja.SymHasInstance, goja.SymIsConcatSpreadable, goja.SymIterator, goja.SymMatch,
		goja.SymMatchAll, goja.SymReplace, goja.SymSearch, goja.SymSpecies, goja.SymSplit, goja.SymToPrimitive,
		goja.SymToStringTag, goja.SymUnscopables} {
		wellKnown["@@"+s.String()] = s
	}
}

// guardBuiltIns puts the stand-ins in place in vm.
func (rt *runtime) guardBuiltIns(vm *goja.Runtime) error {
	targets, err := builtInTargets()
	if err != nil {
		return err
	}
	rootsValue, err := vm.RunProgram(builtInRootsProgram)
	if err != nil {
		return err
	}
	var roots []*goja.Object
	if err := vm.ExportTo(rootsValue, &roots); err != nil {
		return err
	}
	describe, _ := goja.AssertFunction(vm.Get("Object").ToObject(vm).Get("getOwnPropertyDescriptor"))
	checks, err := rt.sizeChecks(vm)
	if err != nil {
		return err
	}
	standIns := map[*goja.Object]goja.Value{}
	// standIn is v's stand-in; nil for an accessor's absent half.
	standIn := func(v goja.Value) goja.Value {
		fn, ok := v.(*goja.Object)
		if !ok {
			return nil
		}
		if s, ok := standIns[fn]; ok {
			return s
		}
		native, ok := guardable(fn)
		if !ok {
			return fn // the other half of an accessor, not a built-in's
		}
		if sized := checks[fn]; sized != nil {
			native = sized(native)
		}
		s := vm.ToValue(rt.counted(vm, native)).(*goja.Object)
		s.DefineDataProperty("name", fn.Get("name"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
		s.DefineDataProperty("length", fn.Get("length"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
		standIns[fn] = s
		return s
	}
	get := func(o *goja.Object, name string) goja.Value {
		if name == "[[Prototype]]" {
			if p := o.Prototype(); p != nil {
				return p
			}
			return nil
		}
		if s := wellKnown[name]; s != nil {
			return o.GetSymbol(s)
		}
		return o.Get(name)
	}
	var holder *goja.Object
	for i, t := range targets {
		if i == 0 || t.root != targets[i-1].root || !slices.Equal(t.path, targets[i-1].path) {
			holder = roots[t.root]
			for _, step := range t.path {
				o, ok := get(holder, step).(*goja.Object)
				if !ok {
					return fmt.Errorf("built-in %v.%s is not where it was", t.path, t.key)
				}
				holder = o
			}
		}
		sym := wellKnown[t.key]
		if t.accessor {
			var name goja.Value = sym
			if sym == nil {
				name = vm.ToValue(t.key)
			}
			dv, err := describe(goja.Undefined(), holder, name)
			if err != nil {
				return err
			}
			d := dv.(*goja.Object)
			g, s := standIn(d.Get("get")), standIn(d.Get("set"))
			if sym != nil {
				err = holder.DefineAccessorPropertySymbol(sym, g, s, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET)
			} else {
				err = holder.DefineAccessorProperty(t.key, g, s, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET)
			}
			if err != nil {
				return err
			}
			continue
		}
		s := standIn(get(holder, t.key))
		if s == nil {
			return fmt.Errorf("built-in %v.%s is not where it was", t.path, t.key)
		}
		if sym != nil {
			err = holder.DefineDataPropertySymbol(sym, s, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET)
		} else {
			err = holder.DefineDataProperty(t.key, s, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// counted calls native as goja would, one more level of nesting while it
// runs; past maxNativeNesting it throws a RangeError the script may catch.
// The counter is the runtime's: only its loop's goroutine calls in.
func (rt *runtime) counted(vm *goja.Runtime, native func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		rt.enter(vm)
		defer rt.leave()
		return native(c)
	}
}

// enter is one more level of nesting of built-ins, or the RangeError
// past maxNativeNesting (or a halt's, stopIfHalted); leave takes it back.
func (rt *runtime) enter(vm *goja.Runtime) {
	rt.stopIfHalted(vm)
	if rt.nativeNesting >= maxNativeNesting {
		panic(rt.rangeError(vm, fmt.Sprintf("built-in functions nested more than %d deep", maxNativeNesting)))
	}
	rt.nativeNesting++
}

func (rt *runtime) leave() { rt.nativeNesting-- }

// stopIfHalted throws once the run is interrupted (its time limit, its
// request gone): goja checks for an interrupt between JS instructions
// only, and a built-in may run long in Go (a JSON.stringify of an array
// that holds itself twice at each of 40 levels writes 2**40 values). The
// interrupt then ends the run at its next instruction, whatever catches
// this.
func (rt *runtime) stopIfHalted(vm *goja.Runtime) {
	if rt.halted.Load() {
		// Armed here too: the limit's goroutine sets halted before it
		// interrupts, and a script that caught this in between would
		// otherwise finish past its limit.
		vm.Interrupt(errTimeout)
		if rt.shortOfMemory.Load() {
			panic(rt.rangeError(vm, "interrupted: the server's heap passed its limit for scripts"))
		}
		panic(rt.rangeError(vm, "interrupted: the script ran past its time limit"))
	}
}

// rangeError makes a RangeError with the runtime's own constructor (a
// script may have put another in its place). vm.New, not a Callable: one
// of those runs the promise jobs queued when called from Go with no JS
// below, which here would be in the middle of a built-in.
func (rt *runtime) rangeError(vm *goja.Runtime, msg string) goja.Value {
	return rt.newError(vm, rt.rangeErrorType, msg)
}

// newError makes an error of type with msg; msg itself should that fail.
func (rt *runtime) newError(vm *goja.Runtime, errorType goja.Value, msg string) goja.Value {
	e, err := vm.New(errorType, vm.ToValue(msg))
	if err != nil {
		return vm.ToValue(msg)
	}
	return e
}

// goja's JSON.stringify goes into a value by Go recursion, where neither
// the time limit nor the call depth limit reaches, and checks each level
// against every level above it for a cycle: a value nested 100,000 deep
// took 18 s past any limit, a million deep half an hour (and a deep
// enough one would overflow the stack). stringifyWithin runs it with a
// replacer of its own, which keeps the path from the top to the value
// being written (each call's this is the object it is in) and stops the
// walk past max nested objects and arrays with a RangeError (for the
// server's own stringify, the one it keeps in rt.deepJSON):
// the walk goes no deeper than that, so its cycle checks stay cheap too.
//
// A replacer function of the script's is called from that one, as the
// language would call it. A replacer list (an array of names) cannot sit
// beside a function, so the function writes each object (not an array)
// as a copy with the listed properties in the list's order, and finds
// cycles itself, since the copies hide them from goja's check. What the
// copy cannot keep: integer-like names come first, in ascending order,
// whatever the list's order, and the properties' getters are all called
// before the first property is written.
func (rt *runtime) stringifyWithin(vm *goja.Runtime, value, replacer, space goja.Value, max int, server bool) goja.Value {
	w := &jsonWalk{rt: rt, vm: vm, max: max, server: server}
	if r, ok := replacer.(*goja.Object); ok {
		if call, ok := goja.AssertFunction(r); ok {
			if f, ok := r.Export().(func(goja.FunctionCall) goja.Value); ok {
				w.user = f // as goja calls it
			} else { // a class, a Go function of another shape, a proxy
				w.user = func(c goja.FunctionCall) goja.Value {
					v, err := call(c.This, c.Arguments...)
					if err != nil {
						panic(err)
					}
					return v
				}
			}
		} else if rt.isArray(r) {
			w.list = rt.propertyList(vm, r)
		}
	}
	// The replacer is one function object for all the runtime's walks
	// (making one a call cost some 30 allocations): it serves the
	// innermost walk under way, as a replacer may call JSON.stringify.
	rt.jsonWalks = append(rt.jsonWalks, w)
	defer func() {
		rt.jsonWalks[len(rt.jsonWalks)-1] = nil
		rt.jsonWalks = rt.jsonWalks[:len(rt.jsonWalks)-1]
	}()
	return rt.nativeStringify(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{value, rt.jsonReplacer, space}})
}

// jsonWalk is one stringifyWithin under way.
type jsonWalk struct {
	rt     *runtime
	vm     *goja.Runtime
	user   func(goja.FunctionCall) goja.Value // the script's replacer function
	list   []string                           // the script's replacer list
	max    int
	server bool // the server's own: too deep is rt.deepJSON
	// path holds the objects and arrays being written, outermost first;
	// in list mode, from holds what each was made from.
	path, from []*goja.Object
}

// jsonTrack is the replacer of every stringifyWithin: it calls the one
// under way.
func (rt *runtime) jsonTrack(c goja.FunctionCall) goja.Value {
	if n := len(rt.jsonWalks); n > 0 {
		return rt.jsonWalks[n-1].track(c)
	}
	return c.Argument(1)
}

func (w *jsonWalk) track(c goja.FunctionCall) goja.Value {
	w.rt.stopIfHalted(w.vm)
	holder, _ := c.This.(*goja.Object)
	for len(w.path) > 0 && w.path[len(w.path)-1] != holder { // what lies above it is written
		w.path = w.path[:len(w.path)-1]
		if w.list != nil {
			w.from = w.from[:len(w.from)-1]
		}
	}
	v := c.Argument(1)
	if w.user != nil {
		v = w.user(c)
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		return v
	}
	if _, fn := goja.AssertFunction(obj); fn {
		return v // not written
	}
	switch obj.ClassName() {
	case "Number", "String", "Boolean", "RawJSON":
		return v // written as a primitive
	case "Object":
		// goja makes Object(1n) a plain object, which its stringify
		// sees through, to a TypeError: not one to copy.
		if obj.ExportType() == bigIntType {
			return v
		}
	}
	if len(w.path) >= w.max {
		if w.server {
			w.rt.deepJSON = w.rt.rangeError(w.vm, (&domain.DepthError{Max: w.max}).Error())
			panic(w.rt.deepJSON)
		}
		panic(w.rt.rangeError(w.vm, fmt.Sprintf("JSON.stringify goes at most %d objects and arrays deep", w.max)))
	}
	orig := obj
	if w.list != nil {
		for _, o := range w.from {
			if o == obj {
				panic(w.vm.NewTypeError("Converting circular structure to JSON"))
			}
		}
		if !w.rt.isArray(obj) {
			obj = copyListed(w.vm, obj, w.list)
		}
		w.from = append(w.from, orig)
	}
	w.path = append(w.path, obj)
	return obj
}

// maxReplacerList is the longest replacer list stringifyWithin reads: one
// of 2**32-1 holes would be read hole by hole, in Go, past any limit.
const maxReplacerList = 1 << 20

// propertyList reads a replacer list as goja's JSON.stringify does: its
// strings and numbers (and String and Number objects), each name once.
func (rt *runtime) propertyList(vm *goja.Runtime, r *goja.Object) []string {
	n := r.Get("length").ToInteger()
	if n > maxReplacerList {
		panic(rt.rangeError(vm, fmt.Sprintf("JSON.stringify reads a replacer list of at most %d elements, not %d", maxReplacerList, n)))
	}
	list := []string{}
	seen := map[string]bool{}
	for i := int64(0); i < n; i++ {
		v := r.Get(strconv.FormatInt(i, 10))
		if v == nil {
			continue
		}
		if o, ok := v.(*goja.Object); ok {
			if c := o.ClassName(); c != "String" && c != "Number" {
				continue
			}
		} else if _, sym := v.(*goja.Symbol); sym {
			continue // its ExportType is string
		} else if t := v.ExportType(); t == nil || (t.Kind() != reflect.String && t.Kind() != reflect.Int64 && t.Kind() != reflect.Float64) {
			continue // undefined, null, a boolean, a symbol, a BigInt
		}
		name := v.String()
		if !seen[name] {
			seen[name] = true
			list = append(list, name)
		}
	}
	return list
}

// copyListed is a copy of obj with the listed properties it has (its own
// or inherited), in the list's order.
func copyListed(vm *goja.Runtime, obj *goja.Object, list []string) *goja.Object {
	out := vm.NewObject()
	for _, name := range list {
		v := obj.Get(name)
		if v == nil || goja.IsUndefined(v) {
			continue
		}
		out.DefineDataProperty(name, v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	return out
}

// guardNatives puts the built-ins' stand-ins in place, and JSON.stringify
// bounded by maxJSONNesting, before a script can reach the runtime. The
// server's own stringify (rt.stringify) takes the bound as an argument no
// script can pass.
func (rt *runtime) guardNatives(vm *goja.Runtime) error {
	json := vm.Get("JSON").ToObject(vm)
	var ok bool
	if rt.nativeStringify, ok = json.Get("stringify").Export().(func(goja.FunctionCall) goja.Value); !ok {
		return fmt.Errorf("JSON.stringify is not a built-in function")
	}
	if rt.nativeIsArray, ok = vm.Get("Array").ToObject(vm).Get("isArray").Export().(func(goja.FunctionCall) goja.Value); !ok {
		return fmt.Errorf("Array.isArray is not a built-in function")
	}
	// goja's own JSON.parse, before it gets a stand-in: the server's
	// parse of what it holds (a request body json.Valid checked, a
	// stored message) needs no guard, and the script's wraps this once.
	parseObject := json.Get("parse")
	nativeParse, ok := guardable(parseObject)
	if !ok {
		return fmt.Errorf("JSON.parse is not a built-in function")
	}
	rt.parse, _ = goja.AssertFunction(parseObject)
	rt.rangeErrorType = vm.Get("RangeError")
	rt.syntaxErrorType = vm.Get("SyntaxError")
	if err := rt.guardBuiltIns(vm); err != nil {
		return err
	}
	fw, err := newForwarding(vm)
	if err != nil {
		return err
	}
	if err := rt.guardBind(vm, fw); err != nil {
		return err
	}
	if err := rt.guardBuffers(vm, fw); err != nil {
		return err
	}
	if _, err := vm.RunProgram(proxyGuardProgram); err != nil {
		return err
	}
	reviveProgramValue, err := vm.RunProgram(reviveProgram)
	if err != nil {
		return err
	}
	makeRevive, ok := reviveProgramValue.Export().(func(goja.FunctionCall) goja.Value)
	if !ok {
		return fmt.Errorf("the reviver's walk is not a function")
	}
	revive, ok := makeRevive(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{vm.ToValue(maxJSONNesting)}}).Export().(func(goja.FunctionCall) goja.Value)
	if !ok {
		return fmt.Errorf("the reviver's walk is not a function")
	}
	parse := vm.ToValue(rt.counted(vm, func(c goja.FunctionCall) goja.Value {
		text := c.Argument(0).ToString() // once: it may be an object's toString
		if str, ok := text.(goja.String); !ok || str.Length() > maxParseNesting {
			if err := domain.CheckDepth([]byte(text.String()), maxParseNesting); err != nil {
				panic(rt.newError(vm, rt.syntaxErrorType, fmt.Sprintf("JSON.parse goes at most %d objects and arrays deep", maxParseNesting)))
			}
		}
		value := nativeParse(goja.FunctionCall{This: c.This, Arguments: []goja.Value{text}})
		if _, ok := goja.AssertFunction(c.Argument(1)); !ok {
			return value
		}
		return revive(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{value, c.Argument(1)}})
	})).(*goja.Object)
	parse.DefineDataProperty("name", vm.ToValue("parse"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	parse.DefineDataProperty("length", vm.ToValue(2), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	json.DefineDataProperty("parse", parse, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	rt.jsonReplacer = vm.ToValue(rt.jsonTrack)
	stringify := vm.ToValue(rt.counted(vm, func(c goja.FunctionCall) goja.Value {
		return rt.stringifyWithin(vm, c.Argument(0), c.Argument(1), c.Argument(2), maxJSONNesting, false)
	})).(*goja.Object)
	stringify.DefineDataProperty("name", vm.ToValue("stringify"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	stringify.DefineDataProperty("length", vm.ToValue(3), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	json.DefineDataProperty("stringify", stringify, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	rt.stringify, _ = goja.AssertFunction(vm.ToValue(func(c goja.FunctionCall) goja.Value {
		return rt.stringifyWithin(vm, c.Argument(0), goja.Undefined(), goja.Undefined(), int(c.Argument(1).ToInteger()), true)
	}))
	return nil
}

// maxStringLength is the longest string repeat, padStart, padEnd, an
// array's join and toLocaleString (sizes.go) make, in UTF-16 units: V8's
// limit, about 2**29.
const maxStringLength = 1<<29 - 24

// sizedString refuses, with V8's RangeError, a repeat, padStart or
// padEnd whose answer would be longer than maxStringLength: goja asks Go
// for the whole answer at once, and "x".repeat(2**40) (or a padStart to
// a width taken from a request) ended the process with an out-of-memory
// error no recover catches. It converts the receiver, the count or width
// and a pad's filler once each, in the language's order, and passes them
// on to native, goja's own, as a string, a number and a string. It runs
// in their counted stand-ins (sizeChecks): a receiver whose toString is
// one of these calls it again.
func (rt *runtime) sizedString(vm *goja.Runtime, native nativeFunc, repeat bool) nativeFunc {
	length := func(v goja.Value) float64 { return float64(v.(goja.String).Length()) }
	return func(c goja.FunctionCall) goja.Value {
		if c.This == nil || goja.IsUndefined(c.This) || goja.IsNull(c.This) {
			return native(c) // a TypeError, as the language says
		}
		s := toText(vm, c.This)
		n := c.Argument(0).ToNumber().ToFloat()
		if math.IsNaN(n) {
			n = 0
		}
		n = math.Trunc(n)
		if repeat {
			if n > 0 && !math.IsInf(n, 1) && length(s)*n > maxStringLength {
				panic(rt.invalidLength(vm))
			}
			return native(goja.FunctionCall{This: s, Arguments: []goja.Value{vm.ToValue(n)}})
		}
		if n <= length(s) {
			return s
		}
		var filler goja.Value = vm.ToValue(" ")
		if f := c.Argument(1); !goja.IsUndefined(f) {
			filler = toText(vm, f)
		}
		if length(filler) == 0 {
			return s
		}
		if n > maxStringLength {
			panic(rt.invalidLength(vm))
		}
		return native(goja.FunctionCall{This: s, Arguments: []goja.Value{vm.ToValue(n), filler}})
	}
}

// invalidLength is V8's RangeError for a string too long to make.
func (rt *runtime) invalidLength(vm *goja.Runtime) goja.Value {
	return rt.rangeError(vm, "Invalid string length")
}

// maxParseNesting is how deeply JSON.parse goes into a text: goja's
// recurses in Go, a level a call, and a text of 5,000,000 brackets
// overflowed the stack. As deep as Go's encoding/json goes, and the
// server's check of a request body (json.Valid) before it is parsed.
const maxParseNesting = 10000

// reviveProgram is JSON.parse's walk of a reviver, as the language
// says (InternalizeJSONProperty), in JS: goja's recursed in Go, and a
// reviver that put an object holding itself where the walk was to go
// next sent it round for good. Here each level is a JS call, and the walk
// goes at most maxJSONNesting deep (a RangeError the script may catch).
// It runs before any script, so that what it uses is the language's own.
var reviveProgram = goja.MustCompile("fazt:revive", `(function (max) {
  const isArray = Array.isArray, keys = Object.keys, define = Reflect.defineProperty, remove = Reflect.deleteProperty;
  const apply = Reflect.apply, trunc = Math.trunc, min = Math.min, str = String, maxLength = Number.MAX_SAFE_INTEGER;
  const RangeErr = RangeError;
  const walk = (holder, name, reviver, depth) => {
    const val = holder[name];
    if (val !== null && typeof val === "object") {
      // Catchable, and well within the call depth limit (a level is a
      // call of walk and the reviver's).
      if (depth >= max) throw new RangeErr("JSON.parse with a reviver goes at most " + max + " objects and arrays deep");
      const array = isArray(val), names = array ? null : keys(val);
      const n = array ? min(trunc(+val.length) || 0, maxLength) : names.length;
      for (let i = 0; i < n; i++) {
        const k = array ? str(i) : names[i];
        const v = walk(val, k, reviver, depth + 1);
        if (v === undefined) remove(val, k);
        else define(val, k, { __proto__: null, value: v, writable: true, enumerable: true, configurable: true });
      }
    }
    return apply(reviver, holder, [name, val]);
  };
  return (value, reviver) => walk({ "": value }, "", reviver, 0);
})`, true)

// guardBind makes Function.prototype.bind give a proxy of the bound
// function whose calls are counted: goja calls a bound function's target
// from Go, uncounted, so x.toString = String.bind(null, x) made String(x)
// call itself until the stack overflowed. new of the proxy is new of the
// bound function; instanceof, which goja refuses for any proxy, is its
// target's (so bound[Symbol.hasInstance] is a function of its own).
func (rt *runtime) guardBind(vm *goja.Runtime, fw *forwarding) error {
	fp := vm.Get("Function").ToObject(vm).Get("prototype").ToObject(vm)
	bind, ok := guardable(fp.Get("bind"))
	if !ok {
		return fmt.Errorf("the built-in Function.prototype.bind is not where it was")
	}
	counted := vm.ToValue(func(c goja.FunctionCall) goja.Value {
		bound, ok := bind(c).(*goja.Object)
		if !ok {
			return bound
		}
		call, ok := bound.Export().(func(goja.FunctionCall) goja.Value)
		target, _ := c.This.(*goja.Object)
		if !ok || target == nil {
			return bound
		}
		run := rt.counted(vm, call)
		var proxy *goja.Object
		// new of the proxy is new of the bound function, whose
		// prototype is then its target's, as the language says.
		traps := fw.traps(rt, vm, target, &proxy, nil)
		traps.Apply = func(_ *goja.Object, this goja.Value, args []goja.Value) goja.Value {
			return run(goja.FunctionCall{This: this, Arguments: args})
		}
		proxy = vm.ToValue(vm.NewProxy(bound, traps)).(*goja.Object)
		return proxy
	}).(*goja.Object)
	counted.DefineDataProperty("name", vm.ToValue("bind"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	counted.DefineDataProperty("length", vm.ToValue(1), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	return fp.DefineDataProperty("bind", counted, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET, goja.FLAG_NOT_SET)
}

// construct is new of t with newTarget (t itself when nil).
func construct(vm *goja.Runtime, t *goja.Object, newTarget *goja.Object, args []goja.Value) *goja.Object {
	ctor, ok := goja.AssertConstructor(t)
	if !ok {
		panic(vm.NewTypeError("not a constructor"))
	}
	o, err := ctor(newTarget, args...)
	if err != nil {
		panic(err)
	}
	return o
}

// forwarding is what the proxies the server makes of functions (a bound
// function's, guardBind; a constructor's, guardBuffers) go through for
// what they leave to their target: Reflect's functions (counted stand-ins
// by then), and the language's instanceof, which goja refuses for any
// proxy.
type forwarding struct {
	get, set, has, proto func(goja.FunctionCall) goja.Value
	hasInstance          goja.Value // Function.prototype[Symbol.hasInstance], left as it is
	hasInstanceCall      func(goja.FunctionCall) goja.Value
}

func newForwarding(vm *goja.Runtime) (*forwarding, error) {
	fw := &forwarding{}
	reflectObject := vm.Get("Reflect").ToObject(vm)
	for name, f := range map[string]*func(goja.FunctionCall) goja.Value{
		"get": &fw.get, "set": &fw.set, "has": &fw.has, "getPrototypeOf": &fw.proto,
	} {
		var ok bool
		if *f, ok = reflectObject.Get(name).Export().(func(goja.FunctionCall) goja.Value); !ok {
			return nil, fmt.Errorf("the built-in Reflect.%s is not where it was", name)
		} // its stand-in: counted
	}
	fw.hasInstance = vm.Get("Function").ToObject(vm).Get("prototype").ToObject(vm).GetSymbol(goja.SymHasInstance)
	var ok bool
	if fw.hasInstanceCall, ok = guardable(fw.hasInstance); !ok {
		return nil, fmt.Errorf("the built-in Function.prototype[Symbol.hasInstance] is not where it was")
	}
	return fw, nil
}

func (fw *forwarding) call(f func(goja.FunctionCall) goja.Value, args ...goja.Value) goja.Value {
	return f(goja.FunctionCall{This: goja.Undefined(), Arguments: args})
}

// instanceOf is the language's InstanceofOperator(v, target).
func (fw *forwarding) instanceOf(vm *goja.Runtime, v goja.Value, target *goja.Object) goja.Value {
	h := fw.call(fw.get, target, goja.SymHasInstance, target)
	if h == nil || goja.IsUndefined(h) || goja.IsNull(h) {
		h = fw.hasInstance // a target with no prototype: the ordinary check
	}
	if h == fw.hasInstance {
		return vm.ToValue(fw.hasInstanceCall(goja.FunctionCall{This: target, Arguments: []goja.Value{v}}).ToBoolean())
	}
	call, ok := goja.AssertFunction(h)
	if !ok {
		panic(vm.NewTypeError("Symbol.hasInstance of the target of a bound function is not a function"))
	}
	r, err := call(target, v)
	if err != nil {
		panic(err)
	}
	return vm.ToValue(r.ToBoolean())
}

// ordinaryHasInstance is the language's OrdinaryHasInstance(c, v), its
// reads through Reflect's (counted) functions: goja's refuses a c that is
// a proxy (so any bound function). A bound c is not looked through:
// its prototype, which it has none of, is read instead (a TypeError).
func (fw *forwarding) ordinaryHasInstance(vm *goja.Runtime, c, v goja.Value) bool {
	if _, ok := goja.AssertFunction(c); !ok {
		return false
	}
	o, ok := v.(*goja.Object)
	if !ok {
		return false
	}
	p, ok := fw.call(fw.get, c, vm.ToValue("prototype"), c).(*goja.Object)
	if !ok {
		panic(vm.NewTypeError("Function has non-object prototype in instanceof check"))
	}
	for {
		next, ok := fw.call(fw.proto, o).(*goja.Object)
		if !ok {
			return false
		}
		if next == p {
			return true
		}
		o = next
	}
}

// traps forwards a proxy's new, reads, writes and prototype reads through
// Reflect's (counted) functions rather than goja's forwarding in Go: a
// function made its own prototype (goja's check for a cycle stops at a
// proxy) would send a read round for good. x instanceof the proxy (*self,
// once made) is x instanceof instanceTarget, so the proxy's
// Symbol.hasInstance is a function of its own, made at the first
// instanceof; called with another this (a class that extends the proxy
// inherits it), it is the ordinary check of that this. new of the proxy
// is new of its target, counted, its arguments first given to check
// (when not nil); as the proxy's own new target, the target stands for
// it (goja's bound functions take themselves for none).
func (fw *forwarding) traps(rt *runtime, vm *goja.Runtime, instanceTarget *goja.Object, self **goja.Object, check func([]goja.Value) []goja.Value) *goja.ProxyTrapConfig {
	var hasInstanceOf goja.Value
	return &goja.ProxyTrapConfig{
		Construct: func(t *goja.Object, args []goja.Value, newTarget *goja.Object) *goja.Object {
			rt.enter(vm)
			defer rt.leave()
			if check != nil {
				args = check(args)
			}
			if newTarget == *self {
				newTarget = t
			}
			return construct(vm, t, newTarget, args)
		},
		Get: func(t *goja.Object, name string, receiver goja.Value) goja.Value {
			return fw.call(fw.get, t, vm.ToValue(name), receiver)
		},
		GetIdx: func(t *goja.Object, i int, receiver goja.Value) goja.Value {
			return fw.call(fw.get, t, vm.ToValue(i), receiver)
		},
		Has: func(t *goja.Object, name string) bool {
			return fw.call(fw.has, t, vm.ToValue(name)).ToBoolean()
		},
		HasIdx: func(t *goja.Object, i int) bool { return fw.call(fw.has, t, vm.ToValue(i)).ToBoolean() },
		HasSym: func(t *goja.Object, sym *goja.Symbol) bool { return fw.call(fw.has, t, sym).ToBoolean() },
		Set: func(t *goja.Object, name string, v, receiver goja.Value) bool {
			return fw.call(fw.set, t, vm.ToValue(name), v, receiver).ToBoolean()
		},
		SetIdx: func(t *goja.Object, i int, v, receiver goja.Value) bool {
			return fw.call(fw.set, t, vm.ToValue(i), v, receiver).ToBoolean()
		},
		SetSym: func(t *goja.Object, sym *goja.Symbol, v, receiver goja.Value) bool {
			return fw.call(fw.set, t, sym, v, receiver).ToBoolean()
		},
		GetPrototypeOf: func(t *goja.Object) *goja.Object {
			p, _ := fw.call(fw.proto, t).(*goja.Object)
			return p
		},
		GetSym: func(t *goja.Object, sym *goja.Symbol, receiver goja.Value) goja.Value {
			v := fw.call(fw.get, t, sym, receiver)
			if sym != goja.SymHasInstance || v != fw.hasInstance && v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
				return v // one the script gave the function
			}
			if hasInstanceOf == nil {
				hasInstanceOf = vm.ToValue(rt.counted(vm, func(c goja.FunctionCall) goja.Value {
					if c.This != *self {
						return vm.ToValue(fw.ordinaryHasInstance(vm, c.This, c.Argument(0)))
					}
					return fw.instanceOf(vm, c.Argument(0), instanceTarget)
				}))
			}
			return hasInstanceOf
		},
	}
}

// proxyGuardProgram puts a Proxy in the global Proxy's place whose
// proxies find their traps through a handler of its own: a trap the
// script's handler leaves out is Reflect's (counted), not goja's own
// forwarding in Go. A proxy that forwards to an object whose prototype is
// the proxy (Object.setPrototypeOf(t, new Proxy(t, {}))) went round in Go
// until the stack overflowed; each round now makes a JS call and a
// counted one, the script's traps too. The handler's traps are looked up
// at each use, as the language does, and called with the script's
// handler as this. Proxy itself is then a JS function, which has a
// prototype and its source as its text.
var proxyGuardProgram = goja.MustCompile("fazt:proxy", `(() => {
  const NativeProxy = Proxy, revocable = Proxy.revocable, apply = Reflect.apply, create = Object.create;
  // Reflect's functions as they are now (counted): a script may change
  // Reflect itself later.
  const defaults = create(null);
  for (const name of ["apply", "construct", "defineProperty", "deleteProperty", "get", "getOwnPropertyDescriptor",
    "getPrototypeOf", "has", "isExtensible", "ownKeys", "preventExtensions", "set", "setPrototypeOf"]) {
    defaults[name] = Reflect[name];
  }
  // The proxy goja calls the traps of is of an empty object, not of the
  // script's handler, whose properties it would otherwise have to give
  // back as they are (a frozen handler's trap, not a wrapper of it).
  const handlerOf = (h) => {
    if (h === null || (typeof h !== "object" && typeof h !== "function")) return h;
    return new NativeProxy(create(null), {
      __proto__: null,
      get(_, name) {
        const trap = h[name];
        if (trap === undefined || trap === null) return defaults[name];
        // Through a JS call and a counted one, with the script's
        // handler as this: a trap that is a constructor (get: String)
        // calls itself through the proxy in Go otherwise.
        return function () { return apply(trap, h, arguments); };
      },
    });
  };
  const P = function Proxy(target, handler) {
    if (new.target === undefined) throw new TypeError("Constructor Proxy requires 'new'");
    return new NativeProxy(target, handlerOf(handler));
  };
  Object.defineProperty(P, "revocable", {
    value: { revocable(target, handler) { return revocable(target, handlerOf(handler)); } }.revocable,
    writable: true, enumerable: false, configurable: true,
  });
  Object.defineProperty(globalThis, "Proxy", { value: P, writable: true, enumerable: false, configurable: true });
})()`, true)

// isArray is the language's Array.isArray (a proxy of an array is one).
func (rt *runtime) isArray(o *goja.Object) bool {
	return rt.nativeIsArray(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{o}}).ToBoolean()
}

var (
	arrayBufferType = reflect.TypeOf(goja.ArrayBuffer{})
	bytesType       = reflect.TypeOf([]byte(nil))
	bigIntType      = reflect.TypeOf((*big.Int)(nil))
)

// exportFlat is v.Export() for a primitive, a primitive's object (new
// Boolean(true)), an ArrayBuffer or a Uint8Array, and nil for any other
// object: goja exports an object by copying it whole, by Go recursion,
// past the time limit (a million levels deep took seconds), where the
// server only wanted to see that it was not a string or a number.
func exportFlat(v goja.Value) any {
	if v == nil {
		return nil
	}
	if o, ok := v.(*goja.Object); ok {
		switch o.ClassName() {
		case "Number", "String", "Boolean":
		default:
			if t := o.ExportType(); t != arrayBufferType && t != bytesType {
				return nil
			}
		}
	}
	return v.Export()
}
