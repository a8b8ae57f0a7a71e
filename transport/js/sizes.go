package js

import (
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/dop251/goja"
)

// goja's built-in functions take sizes and lengths from their arguments
// and go through them in Go, where the time limit does not reach, or ask
// Go for all the memory at once, which ends the process when it cannot
// be had (an error no recover catches). One number from a request was
// enough to take the whole server down or keep a run slot and a CPU for
// hours (each of these did, in one line, with n = 2**40):
//   - new ArrayBuffer(n), new Uint8Array(n), BigInt.asUintN(n, -1n),
//     Math.max.apply(null, {length: n}): out of memory at once;
//   - new Array(n).fill(0), Array.from({length: n}), [].join.call({length:
//     n}), new Array(n).indexOf(1) and most of Array.prototype over a
//     long array or an array-like: a loop in Go, for hours, growing.
//
// The built-ins that go through a length, or make as many values as one
// says, now refuse past maxBuiltInElements with a RangeError the script
// may catch, before they start; the ones that allocate bytes or bits past
// maxBufferBytes or maxBigIntBits. What is left, which only goja itself
// could bound, is in docs/js-api.md ("Built-in functions").

// maxBuiltInElements is the most elements a built-in function goes
// through or makes in one call: about 0.5 s of the slowest of them
// (Array.prototype.fill of an array-like, which makes a property of each)
// and 150 MB.
const maxBuiltInElements = 1 << 20

// maxBufferBytes is the largest ArrayBuffer a script may make, directly or
// as a typed array's: 64 MiB.
const maxBufferBytes = 1 << 26

// maxBigIntBits is the widest BigInt.asUintN and BigInt.asIntN make: V8's
// largest BigInt.
const maxBigIntBits = 1 << 30

// arrayMethodsThroughElements are the methods of Array.prototype that go
// through their receiver's elements (or move them). push, pop, at and the
// iterators do not; flat and flatMap are JS (arrayGuard), join and
// toLocaleString are the server's (join and localeText, through
// joinText), concat is checked by its answer (concatWithin), and
// toString calls join.
var arrayMethodsThroughElements = []string{"copyWithin", "every", "fill", "filter", "find", "findIndex", "findLast",
	"findLastIndex", "forEach", "includes", "indexOf", "lastIndexOf", "map", "reduce", "reduceRight",
	"reverse", "shift", "slice", "some", "sort", "splice", "toReversed", "toSorted", "toSpliced",
	"unshift", "with"}

// sizeCheck refuses a call before the built-in runs, with a RangeError;
// it gives the call on, with an argument it read replaced by what it read
// (a count converted once, as the built-in would have).
type sizeCheck func(c goja.FunctionCall) goja.FunctionCall

// nativeFunc is what goja runs for a built-in function.
type nativeFunc = func(goja.FunctionCall) goja.Value

// sized is what runs in a built-in's counted stand-in in place of goja's
// own (given): goja's after a check, or one of the server's.
type sized func(nativeFunc) nativeFunc

// checked is check, then goja's own.
func checked(check sizeCheck) sized {
	return func(f nativeFunc) nativeFunc { return func(c goja.FunctionCall) goja.Value { return f(check(c)) } }
}

// sizeChecks are the built-ins that take a size or a length, by the
// function (goja's own, before its stand-in), and what runs in their
// stand-in (guardBuiltIns), counted, in place of goja's own.
func (rt *runtime) sizeChecks(vm *goja.Runtime) (map[*goja.Object]sized, error) {
	checks := map[*goja.Object]sized{}
	var err error
	at := func(o *goja.Object, where, name string) *goja.Object {
		fn, ok := o.Get(name).(*goja.Object)
		if !ok && err == nil {
			err = fmt.Errorf("the built-in %s.%s is not where it was", where, name)
		}
		return fn
	}
	object := func(name string) *goja.Object { return vm.Get(name).ToObject(vm) }
	prototypeOf := func(name string) *goja.Object { return object(name).Get("prototype").ToObject(vm) }
	arrayProto := prototypeOf("Array")
	for _, name := range arrayMethodsThroughElements {
		checks[at(arrayProto, "Array.prototype", name)] = checked(rt.receiverWithin(vm, "Array.prototype."+name))
	}
	checks[at(arrayProto, "Array.prototype", "join")] = func(nativeFunc) nativeFunc { return rt.join(vm) }
	stringProto := prototypeOf("String")
	for _, name := range []string{"repeat", "padStart", "padEnd"} {
		repeat := name == "repeat"
		checks[at(stringProto, "String.prototype", name)] = func(native nativeFunc) nativeFunc { return rt.sizedString(vm, native, repeat) }
	}
	reflectGet, ok := guardable(at(object("Reflect"), "Reflect", "get"))
	if !ok && err == nil {
		err = fmt.Errorf("the built-in Reflect.get is not where it was")
	}
	checks[at(arrayProto, "Array.prototype", "toLocaleString")] = func(nativeFunc) nativeFunc { return rt.localeText(vm, reflectGet) }
	checks[at(arrayProto, "Array.prototype", "concat")] = checked(rt.concatWithin(vm))
	typedArray := object("Uint8Array").Prototype() // %TypedArray%
	typedProto := typedArray.Get("prototype").ToObject(vm)
	// A typed array's own length, not its length property (which a
	// subclass, or an object in its prototype chain, may answer).
	var typedLength nativeFunc
	if describe, ok := goja.AssertFunction(object("Object").Get("getOwnPropertyDescriptor")); ok {
		if d, derr := describe(goja.Undefined(), typedProto, vm.ToValue("length")); derr == nil {
			typedLength, _ = guardable(d.ToObject(vm).Get("get"))
		}
	}
	if typedLength == nil && err == nil {
		err = fmt.Errorf("the built-in getter of %%TypedArray%%.prototype.length is not where it was")
	}
	rt.typedLength = typedLength
	// Its toString is Array.prototype's, which calls join.
	checks[at(typedProto, "%TypedArray%.prototype", "join")] = checked(rt.typedJoinWithin(vm))
	// sort with no comparator is a sort in Go, which nothing interrupts:
	// 3.1 s for a Float64Array of 2**22 (with goja directly).
	for _, name := range []string{"toLocaleString", "sort", "toSorted"} {
		checks[at(typedProto, "%TypedArray%.prototype", name)] = checked(rt.typedWithin(vm, "%TypedArray%.prototype."+name))
	}
	checks[at(object("Array"), "Array", "from")] = checked(rt.fromWithin(vm, "Array.from"))
	checks[at(typedArray, "%TypedArray%", "from")] = checked(rt.fromWithin(vm, "%TypedArray%.from"))
	checks[at(prototypeOf("Function"), "Function.prototype", "apply")] = checked(rt.argumentsWithin(vm, 1))
	reflectObject := object("Reflect")
	checks[at(reflectObject, "Reflect", "apply")] = checked(rt.argumentsWithin(vm, 2))
	checks[at(reflectObject, "Reflect", "construct")] = checked(rt.argumentsWithin(vm, 1))
	checks[at(object("String"), "String", "raw")] = checked(func(c goja.FunctionCall) goja.FunctionCall {
		if template, ok := c.Argument(0).(*goja.Object); ok {
			if n := lengthOf(template.Get("raw")); n > maxBuiltInElements {
				panic(rt.tooManyElements(vm, "String.raw", n))
			}
		}
		return c
	})
	bigInt := object("BigInt")
	for _, name := range []string{"asUintN", "asIntN"} {
		checks[at(bigInt, "BigInt", name)] = checked(func(c goja.FunctionCall) goja.FunctionCall {
			if len(c.Arguments) == 0 {
				return c
			}
			bits := c.Arguments[0].ToNumber() // once: it may be an object's valueOf
			if math.Trunc(bits.ToFloat()) > maxBigIntBits {
				panic(rt.rangeError(vm, fmt.Sprintf("BigInt.%s makes at most %d bits, not %.0f", name, maxBigIntBits, bits.ToFloat())))
			}
			return replaced(c, 0, bits)
		})
	}
	return checks, err
}

// replaced is c with its argument i v.
func replaced(c goja.FunctionCall, i int, v goja.Value) goja.FunctionCall {
	args := append([]goja.Value(nil), c.Arguments...)
	args[i] = v
	return goja.FunctionCall{This: c.This, Arguments: args}
}

// toLength is the language's ToLength(v): 0 for nil (no such property).
func toLength(v goja.Value) float64 {
	if v == nil {
		return 0
	}
	n := v.ToNumber().ToFloat()
	if math.IsNaN(n) || n <= 0 {
		return 0
	}
	return math.Min(math.Trunc(n), 1<<53-1)
}

// lengthOf is the length a built-in reads of v as its receiver or an
// array-like argument: a string's, or an object's length property; 0 for
// anything else (no elements, or the built-in's own TypeError to come).
func lengthOf(v goja.Value) float64 {
	switch v := v.(type) {
	case goja.String:
		return float64(v.Length())
	case *goja.Object:
		return toLength(v.Get("length"))
	}
	return 0
}

func (rt *runtime) tooManyBytes(vm *goja.Runtime, name string, n float64) goja.Value {
	return rt.rangeError(vm, fmt.Sprintf("%s holds at most %d bytes, not %.0f", name, maxBufferBytes, n))
}

func (rt *runtime) tooManyElements(vm *goja.Runtime, name string, n float64) goja.Value {
	return rt.rangeError(vm, fmt.Sprintf("%s goes through at most %d elements, not %.0f", name, maxBuiltInElements, n))
}

// receiverWithin refuses a receiver longer than maxBuiltInElements.
func (rt *runtime) receiverWithin(vm *goja.Runtime, name string) sizeCheck {
	return func(c goja.FunctionCall) goja.FunctionCall {
		if n := lengthOf(c.This); n > maxBuiltInElements {
			panic(rt.tooManyElements(vm, name, n))
		}
		return c
	}
}

// typedWithin refuses a typed array longer than maxBuiltInElements, by
// its own length (length, which goja reads, answers it).
func (rt *runtime) typedWithin(vm *goja.Runtime, name string) sizeCheck {
	return func(c goja.FunctionCall) goja.FunctionCall {
		if n := rt.typedLength(goja.FunctionCall{This: c.This}).ToFloat(); n > maxBuiltInElements {
			panic(rt.tooManyElements(vm, name, n))
		}
		return c
	}
}

// maxNumberText is the longest text of a typed array's element: a
// number's (-0.0000030000000000000004: between 1e-6 and 1e-5 a number is
// written out in full), longer than a 64-bit BigInt's.
const maxNumberText = 25

// typedJoinWithin is typedWithin, and refuses an answer that could be
// longer than a string may be, its separators and its elements at their
// longest; the separator is converted once and given on as a string.
func (rt *runtime) typedJoinWithin(vm *goja.Runtime) sizeCheck {
	return func(c goja.FunctionCall) goja.FunctionCall {
		n := rt.typedLength(goja.FunctionCall{This: c.This}).ToFloat()
		if n > maxBuiltInElements {
			panic(rt.tooManyElements(vm, "%TypedArray%.prototype.join", n))
		}
		if len(c.Arguments) == 0 || goja.IsUndefined(c.Arguments[0]) {
			return c
		}
		sep := toText(vm, c.Arguments[0])
		if n > 1 && float64(sep.Length())*(n-1)+maxNumberText*n > maxStringLength {
			panic(rt.invalidLength(vm))
		}
		return replaced(c, 0, sep)
	}
}

// join is Array.prototype.join, and localeText its toLocaleString, in
// Go: goja's write whatever their elements' text comes to (new
// Array(2**20).fill(s).join("") with a long s asked for 2**40 units, a
// piece at a time, until memory ran out). These refuse a receiver longer
// than maxBuiltInElements, and an answer past maxStringLength, with V8's
// RangeError, before they write any of it; and, as goja's and V8's do,
// join an array met again inside itself (through an element's toString
// or toLocaleString, one stack for both) as "".
func (rt *runtime) join(vm *goja.Runtime) nativeFunc {
	comma := vm.ToValue(",").(goja.String)
	return func(c goja.FunctionCall) goja.Value {
		return rt.joinText(vm, "Array.prototype.join", c.This, func() goja.String {
			sep := comma
			if s := c.Argument(0); !goja.IsUndefined(s) {
				sep = toText(vm, s)
			}
			return sep
		}, func(e goja.Value) goja.String { return toText(vm, e) })
	}
}

// localeText's elements' toLocaleString is read with the element itself
// as the receiver (a primitive's getter sees the primitive), through
// goja's own Reflect.get, and called with the element as this and the
// locales and options it was given, as ECMA-402 says.
func (rt *runtime) localeText(vm *goja.Runtime, reflectGet nativeFunc) nativeFunc {
	comma := vm.ToValue(",").(goja.String)
	name := vm.ToValue("toLocaleString")
	return func(c goja.FunctionCall) goja.Value {
		args := []goja.Value{c.Argument(0), c.Argument(1)}
		return rt.joinText(vm, "Array.prototype.toLocaleString", c.This, func() goja.String { return comma }, func(e goja.Value) goja.String {
			method := reflectGet(goja.FunctionCall{This: goja.Undefined(), Arguments: []goja.Value{e.ToObject(vm), name, e}})
			f, ok := goja.AssertFunction(method)
			if !ok {
				panic(vm.NewTypeError("Property 'toLocaleString' of object %s is not a function", e.String()))
			}
			t, err := f(e, args...)
			if err != nil {
				panic(err)
			}
			return toText(vm, t)
		})
	}
}

// joinText joins the elements of this (at most maxBuiltInElements) with
// the separator sepOf gives (once the length is read), each element's
// text (text, for those neither undefined nor null, in order) read once
// and kept, with its index, until the answer's size is known.
func (rt *runtime) joinText(vm *goja.Runtime, name string, this goja.Value, sepOf func() goja.String, text func(goja.Value) goja.String) goja.Value {
	if this == nil {
		this = goja.Undefined()
	}
	o := this.ToObject(vm) // a TypeError for null and undefined
	for _, in := range rt.joining {
		if in == o {
			return vm.ToValue("")
		}
	}
	rt.joining = append(rt.joining, o)
	defer func() { rt.joining[len(rt.joining)-1] = nil; rt.joining = rt.joining[:len(rt.joining)-1] }()
	n := toLength(o.Get("length"))
	if n > maxBuiltInElements {
		panic(rt.tooManyElements(vm, name, n))
	}
	sep := sepOf()
	size := 0
	if n > 1 {
		if float64(sep.Length())*(n-1) > maxStringLength {
			panic(rt.invalidLength(vm))
		}
		size = sep.Length() * (int(n) - 1)
	}
	type piece struct {
		at   int
		text goja.String
	}
	var pieces []piece // only the elements that have text: a long array of holes keeps nothing
	for i := 0; i < int(n); i++ {
		e := o.Get(strconv.Itoa(i))
		if e == nil || goja.IsUndefined(e) || goja.IsNull(e) {
			continue
		}
		t := text(e)
		if size += t.Length(); size > maxStringLength {
			panic(rt.invalidLength(vm))
		}
		pieces = append(pieces, piece{i, t})
	}
	var b goja.StringBuilder
	b.Grow(size)
	at := 0
	for i := 0; i < int(n); i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		if at < len(pieces) && pieces[at].at == i {
			b.WriteString(pieces[at].text)
			at++
		}
	}
	return b.String()
}

// toText is the language's ToString(v): goja's ToString of an object
// gives the primitive its toString gave, which may be null or a number,
// and of a Symbol the Symbol.
func toText(vm *goja.Runtime, v goja.Value) goja.String {
	v = v.ToString()
	switch v := v.(type) {
	case goja.String:
		return v
	case *goja.Symbol:
		panic(vm.NewTypeError("Cannot convert a Symbol value to a string"))
	}
	return vm.ToValue(v.String()).(goja.String)
}

// concatWithin refuses a concat whose answer would hold more than
// maxBuiltInElements elements: the receiver and each argument count
// their length when spread (an array, or Symbol.isConcatSpreadable), 1
// otherwise.
func (rt *runtime) concatWithin(vm *goja.Runtime) sizeCheck {
	return func(c goja.FunctionCall) goja.FunctionCall {
		total := 0.0
		for i := -1; i < len(c.Arguments); i++ {
			v := c.This
			if i >= 0 {
				v = c.Arguments[i]
			}
			o, ok := v.(*goja.Object)
			if !ok {
				total++
				continue
			}
			spread := rt.isArray(o)
			if s := o.GetSymbol(goja.SymIsConcatSpreadable); s != nil && !goja.IsUndefined(s) {
				spread = s.ToBoolean()
			}
			if spread {
				total += lengthOf(o)
			} else {
				total++
			}
			if total > maxBuiltInElements {
				panic(rt.tooManyElements(vm, "Array.prototype.concat", total))
			}
		}
		return c
	}
}

// fromWithin refuses an array-like source (one with no Symbol.iterator)
// longer than maxBuiltInElements. An iterable's steps are counted
// built-ins or the script's own calls, which the time limit ends.
func (rt *runtime) fromWithin(vm *goja.Runtime, name string) sizeCheck {
	return func(c goja.FunctionCall) goja.FunctionCall {
		if source, ok := c.Argument(0).(*goja.Object); ok && !iterable(source) {
			if n := lengthOf(source); n > maxBuiltInElements {
				panic(rt.tooManyElements(vm, name, n))
			}
		}
		return c
	}
}

// iterable says whether o has a Symbol.iterator.
func iterable(o *goja.Object) bool {
	it := o.GetSymbol(goja.SymIterator)
	return it != nil && !goja.IsUndefined(it) && !goja.IsNull(it)
}

// argumentsWithin refuses an arguments list (argument i, an array-like)
// longer than maxBuiltInElements: goja makes the whole list at once.
func (rt *runtime) argumentsWithin(vm *goja.Runtime, i int) sizeCheck {
	return func(c goja.FunctionCall) goja.FunctionCall {
		if list, ok := c.Argument(i).(*goja.Object); ok {
			if n := lengthOf(list); n > maxBuiltInElements {
				panic(rt.rangeError(vm, fmt.Sprintf("a call takes at most %d arguments, not %.0f", maxBuiltInElements, n)))
			}
		}
		return c
	}
}

// bufferConstructors are the constructors that allocate a buffer of a
// size they are given.
var bufferConstructors = []string{"ArrayBuffer", "Uint8Array", "Uint8ClampedArray", "Int8Array", "Uint16Array",
	"Int16Array", "Uint32Array", "Int32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"}

// guardBuffers puts in each buffer constructor's place (the global, and
// its prototype's constructor) a proxy whose new refuses a buffer past
// maxBufferBytes, or a typed array from an array-like past
// maxBuiltInElements, with a RangeError; and otherwise is new of the
// constructor, as are subclasses' super() calls. A size given as an
// object is converted once, and given on as a number. The proxy's own
// reads and writes go through fw; its text is a proxy's, "function () {
// [native code] }", not the constructor's.
func (rt *runtime) guardBuffers(vm *goja.Runtime, fw *forwarding) error {
	global := vm.GlobalObject()
	for _, name := range bufferConstructors {
		ctor, ok := global.Get(name).(*goja.Object)
		if !ok {
			return fmt.Errorf("the built-in %s is not where it was", name)
		}
		proto, ok := ctor.Get("prototype").(*goja.Object)
		if !ok {
			return fmt.Errorf("the built-in %s.prototype is not where it was", name)
		}
		size := 1.0
		if name != "ArrayBuffer" {
			size = ctor.Get("BYTES_PER_ELEMENT").ToFloat()
		}
		check := func(args []goja.Value) []goja.Value {
			if len(args) == 0 {
				return args
			}
			if o, ok := args[0].(*goja.Object); ok {
				if name == "ArrayBuffer" {
					n := o.ToNumber() // once: valueOf may count
					args = append([]goja.Value{n}, args[1:]...)
					if math.Trunc(n.ToFloat()) > maxBufferBytes {
						panic(rt.tooManyBytes(vm, name, n.ToFloat()))
					}
					return args
				}
				t := o.ExportType()
				if t == arrayBufferType {
					return args // a view of it
				}
				if t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Interface { // a typed array: a copy
					if n := rt.typedLength(goja.FunctionCall{This: o}).ToFloat() * size; n > maxBufferBytes {
						panic(rt.tooManyBytes(vm, name, n))
					}
					return args
				}
				if iterable(o) {
					return args // its steps are counted built-ins or the script's calls
				}
				if n := lengthOf(o); n > maxBuiltInElements {
					panic(rt.tooManyElements(vm, name, n))
				}
				return args
			}
			if goja.IsUndefined(args[0]) || goja.IsNull(args[0]) {
				return args
			}
			if _, ok := args[0].(*goja.Symbol); ok {
				return args // the constructor's own TypeError
			}
			if n := math.Trunc(args[0].ToFloat()) * size; n > maxBufferBytes {
				panic(rt.tooManyBytes(vm, name, n))
			}
			return args
		}
		// No Apply trap: a call without new is the constructor's own
		// TypeError, from goja's forwarding, which calls nothing else.
		var proxy *goja.Object
		traps := fw.traps(rt, vm, ctor, &proxy, check)
		proxy = vm.ToValue(vm.NewProxy(ctor, traps)).(*goja.Object)
		if err := global.DefineDataProperty(name, proxy, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
			return err
		}
		if err := proto.DefineDataProperty("constructor", proxy, goja.FLAG_TRUE, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
			return err
		}
	}
	return nil
}
