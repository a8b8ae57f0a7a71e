package js

import (
	"fmt"
	"reflect"
	"strconv"

	"github.com/dop251/goja"
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
// nativeGuardProgram puts a counted stand-in in the place of every
// built-in function a fresh runtime gives a script (methods, getters and
// setters, those of the iterators' and generators' hidden prototypes
// included): guard (runtime.guardNative) makes it, in Go, so that a call
// costs a few nanoseconds more, not a JS call's microsecond. The same
// function gets the same stand-in wherever it sits
// (Array.prototype[Symbol.iterator] === Array.prototype.values still
// holds). Left as they are: constructors (none calls itself through its
// this, and a stand-in would not be one), eval (a stand-in would make
// every direct eval an indirect one), and what the runtime makes later
// (a bound function calls its target, which is counted). It runs before
// anything else is put in the runtime, so that every function it finds
// is the engine's own; what it could not put in place (a property that
// cannot be changed) it returns, by name, for the test that says there is
// none.
var nativeGuardProgram = goja.MustCompile("fazt:natives", nativeGuard, true)

const nativeGuard = `(function (guard) {
  const ownKeys = Reflect.ownKeys, describe = Object.getOwnPropertyDescriptor;
  const define = Object.defineProperty, protoOf = Object.getPrototypeOf;
  const source = Function.prototype.toString, call = Function.prototype.call.bind(source);
  const evaluate = eval;
  const standIns = new Map(), seen = new Set(), missed = [];
  const native = (fn) => typeof fn === "function" && fn !== evaluate && call(fn).endsWith("{ [native code] }");
  const standIn = (fn) => {
    let s = standIns.get(fn);
    if (s === undefined) {
      s = guard(fn);
      if (s !== fn) {
        define(s, "name", { value: fn.name, configurable: true });
        define(s, "length", { value: fn.length, configurable: true });
        seen.add(s);
      }
      standIns.set(fn, s);
    }
    return s;
  };
  const nameOf = (o, key) => (typeof o === "function" && o.name ? o.name + "." : "") + String(key);
  const visit = (o) => {
    if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) return;
    seen.add(o);
    for (const key of ownKeys(o)) {
      // The language makes it fixed; it calls nothing of the script's
      // but through what is counted (a getter of prototype, a proxy's
      // trap).
      if (o === Function.prototype && key === Symbol.hasInstance) continue;
      const d = describe(o, key);
      if ("value" in d) {
        visit(d.value);
        // Function.prototype is a function too, which does nothing.
        if (key === "prototype" || !native(d.value)) continue;
        const s = standIn(d.value);
        if (s === d.value) continue;
        if (d.configurable) define(o, key, { value: s });
        else if (d.writable) o[key] = s;
        else missed.push(nameOf(o, key));
      } else {
        visit(d.get);
        visit(d.set);
        const get = native(d.get) ? standIn(d.get) : d.get, set = native(d.set) ? standIn(d.set) : d.set;
        if (get === d.get && set === d.set) continue;
        if (d.configurable) define(o, key, { get, set });
        else missed.push(nameOf(o, key));
      }
    }
    visit(protoOf(o));
  };
  visit(globalThis);
  for (const hidden of [[][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](),
    ""[Symbol.iterator](), "a".matchAll(/a/g), function* () {}, async function () {}]) {
    visit(protoOf(hidden));
  }
  return missed;
})`

// guardNative is the Go side of nativeGuard: the stand-in for fn, or fn
// itself when it is a constructor or not a function goja runs as Go.
func (rt *runtime) guardNative(vm *goja.Runtime) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		fn, ok := c.Argument(0).(*goja.Object)
		if !ok {
			return c.Argument(0)
		}
		if _, ctor := goja.AssertConstructor(fn); ctor {
			return fn
		}
		native, ok := fn.Export().(func(goja.FunctionCall) goja.Value)
		if !ok {
			return fn
		}
		return vm.ToValue(rt.counted(vm, native))
	}
}

// counted calls native as goja would, one more level of nesting while it
// runs; past maxNativeNesting it throws a RangeError the script may catch.
// The counter is the runtime's: only its loop's goroutine calls in.
func (rt *runtime) counted(vm *goja.Runtime, native func(goja.FunctionCall) goja.Value) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		if rt.nativeNesting >= maxNativeNesting {
			panic(rt.rangeError(vm, fmt.Sprintf("built-in functions nested more than %d deep", maxNativeNesting)))
		}
		rt.nativeNesting++
		defer func() { rt.nativeNesting-- }()
		return native(c)
	}
}

// rangeError makes a RangeError with the runtime's own constructor (a
// script may have put another in its place). vm.New, not a Callable: one
// of those runs the promise jobs queued when called from Go with no JS
// below, which here would be in the middle of a built-in.
func (rt *runtime) rangeError(vm *goja.Runtime, msg string) goja.Value {
	e, err := vm.New(rt.rangeErrorType, vm.ToValue(msg))
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
// walk past max nested objects and arrays, throwing what tooDeep makes:
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
func (rt *runtime) stringifyWithin(vm *goja.Runtime, value, replacer, space goja.Value, max int, tooDeep func() goja.Value) goja.Value {
	var (
		user func(goja.FunctionCall) goja.Value
		list []string
	)
	if r, ok := replacer.(*goja.Object); ok {
		if call, ok := goja.AssertFunction(r); ok {
			if f, ok := r.Export().(func(goja.FunctionCall) goja.Value); ok {
				user = f // as goja calls it
			} else { // a class, a Go function of another shape, a proxy
				user = func(c goja.FunctionCall) goja.Value {
					v, err := call(c.This, c.Arguments...)
					if err != nil {
						panic(err)
					}
					return v
				}
			}
		} else if rt.isArray(r) {
			list = rt.propertyList(vm, r)
		}
	}
	// path holds the objects and arrays being written, outermost first;
	// in list mode, from holds what each was made from.
	var path, from []*goja.Object
	track := func(c goja.FunctionCall) goja.Value {
		holder, _ := c.This.(*goja.Object)
		for len(path) > 0 && path[len(path)-1] != holder { // what lies above it is written
			path = path[:len(path)-1]
			if list != nil {
				from = from[:len(from)-1]
			}
		}
		v := c.Argument(1)
		if user != nil {
			v = user(c)
		}
		obj, ok := v.(*goja.Object)
		if !ok {
			return v
		}
		if _, fn := goja.AssertFunction(obj); fn {
			return v // not written
		}
		switch obj.ClassName() {
		case "Number", "String", "Boolean", "BigInt", "RawJSON":
			return v // written as a primitive
		}
		if len(path) >= max {
			panic(tooDeep())
		}
		orig := obj
		if list != nil {
			for _, o := range from {
				if o == obj {
					panic(vm.NewTypeError("Converting circular structure to JSON"))
				}
			}
			if !rt.isArray(obj) {
				obj = copyListed(vm, obj, list)
			}
			from = append(from, orig)
		}
		path = append(path, obj)
		return obj
	}
	return rt.nativeStringify(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{value, vm.ToValue(track), space}})
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

// guardNatives puts nativeGuard's stand-ins in place, and JSON.stringify
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
	rt.rangeErrorType = vm.Get("RangeError")
	guard, err := vm.RunProgram(nativeGuardProgram)
	if err != nil {
		return err
	}
	walk, _ := goja.AssertFunction(guard)
	missed, err := walk(goja.Undefined(), vm.ToValue(rt.guardNative(vm)))
	if err != nil {
		return err
	}
	if names := missed.Export().([]any); len(names) > 0 {
		return fmt.Errorf("built-in functions that cannot be guarded: %v", names)
	}
	tooDeep := func() goja.Value {
		return rt.rangeError(vm, fmt.Sprintf("JSON.stringify goes at most %d objects and arrays deep", maxJSONNesting))
	}
	stringify := vm.ToValue(rt.counted(vm, func(c goja.FunctionCall) goja.Value {
		return rt.stringifyWithin(vm, c.Argument(0), c.Argument(1), c.Argument(2), maxJSONNesting, tooDeep)
	})).(*goja.Object)
	stringify.DefineDataProperty("name", vm.ToValue("stringify"), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	stringify.DefineDataProperty("length", vm.ToValue(3), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	json.DefineDataProperty("stringify", stringify, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	rt.stringify, _ = goja.AssertFunction(vm.ToValue(func(c goja.FunctionCall) goja.Value {
		max := int(c.Argument(1).ToInteger())
		return rt.stringifyWithin(vm, c.Argument(0), goja.Undefined(), goja.Undefined(), max, func() goja.Value {
			rt.deepJSON = rt.rangeError(vm, fmt.Sprintf("JSON nests deeper than %d levels", max))
			return rt.deepJSON
		})
	}))
	return nil
}

// isArray is the language's Array.isArray (a proxy of an array is one).
func (rt *runtime) isArray(o *goja.Object) bool {
	return rt.nativeIsArray(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{o}}).ToBoolean()
}

var (
	arrayBufferType = reflect.TypeOf(goja.ArrayBuffer{})
	bytesType       = reflect.TypeOf([]byte(nil))
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
