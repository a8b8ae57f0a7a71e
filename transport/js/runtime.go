package js

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja_nodejs/console"
	"github.com/dop251/goja_nodejs/eventloop"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// maxCallDepth bounds JS recursion, so that a runaway recursion is an
// exception rather than a server out of memory.
const maxCallDepth = 4096

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// runtime is one goja Runtime with its event loop, the module a version's
// script exported, and what an execution needs to reach the server. It
// belongs to one goroutine at a time: the pool hands it over.
type runtime struct {
	eng     *Engine
	ver     *version
	loop    *eventloop.EventLoop
	vm      atomic.Pointer[goja.Runtime] // read by the time limit's goroutine
	exports goja.Value

	// stringify is JSON.stringify(value, max) for the server's own use,
	// at most max levels deep (stringifyWithin); deepJSON is the error it
	// threw last for a value nested deeper.
	stringify goja.Callable
	deepJSON  goja.Value
	parse     goja.Callable
	// jsonWalks are the stringifyWithin calls under way, innermost last;
	// jsonReplacer is the replacer they all give goja's JSON.stringify.
	jsonWalks    []*jsonWalk
	jsonReplacer goja.Value

	// The engine's own JSON.stringify, Array.isArray, RangeError and
	// SyntaxError, as the runtime was made (a script may put others in
	// their place).
	nativeStringify, nativeIsArray  func(goja.FunctionCall) goja.Value
	rangeErrorType, syntaxErrorType goja.Value
	// shortOfMemory is set when the heap's check (memory.go) ends the run
	// in progress, before it cancels the run's context.
	shortOfMemory atomic.Bool
	// joining are the objects Array.prototype.join and toLocaleString are
	// joining, innermost last: one met again is joined as "" (sizes.go). typedLength is
	// goja's getter of a typed array's own length.
	joining     []*goja.Object
	typedLength func(goja.FunctionCall) goja.Value
	// nativeNesting counts the calls of built-in functions under way
	// (guardNatives).
	nativeNesting int

	// The execution in progress; set before and cleared after each one.
	cur *execution
	// passing is set when a fazt.realtime call threw for a reason that
	// may pass (the log unavailable, an internal failure, a cancelled
	// request): a load that failed with it is not kept as the script's.
	passing bool
	// passed are the error objects such calls threw in the run under way
	// (the latest maxPassed), with their codes: a run that fails with one
	// of them (not caught, or caught and thrown again) failed for the
	// server's state, not the script's decision (ScriptError.Code).
	passed []passedError
	// runs counts the runtime's runs; live is the number of the run whose
	// value has yet to settle, 0 when none: a timer's callback runs only
	// while the run that set it is live (timerGate).
	runs, live uint64
	// fail ends the run in progress with what a timer's callback threw
	// (timerGate); nil between runs.
	fail func(thrown error)
	// resetNesting sets arrayGuard's nesting count back to 0; nil until
	// the guard is in place.
	resetNesting goja.Callable
	// halted is set once the run in progress is interrupted (its limit,
	// its context): no timer's callback starts after that. goja clears
	// the interrupt when the callback it stopped returns to the event
	// loop, which would then run the next one with none armed.
	halted atomic.Bool
}

// timerGate wraps setTimeout, setInterval and setImmediate so that a
// callback runs only while the run that scheduled it is live (and not
// interrupted; one scheduled while no run was live, as by a toJSON of the
// answer being read, never runs): once a run's value settles, what it left behind never
// runs, although the event loop would still run an immediate's callback,
// or a timer due by then, on its way out. The callback runs through
// invoke (runtime.invoke), so that what it throws, a stack overflow
// included, ends its run with that error, as an uncaught exception ends a
// Node process: the event loop would drop it, and the run would end as a
// promise that never settled, saying nothing of why.
var timerGateProgram = goja.MustCompile("fazt:timers", timerGate, true)

const timerGate = `(function (live, invoke) {
  for (const name of ["setTimeout", "setInterval", "setImmediate"]) {
    const schedule = globalThis[name];
    globalThis[name] = function (fn, ...rest) {
      if (typeof fn !== "function") return schedule(fn, ...rest);
      const run = live();
      return schedule(function (...args) {
        if (run !== 0 && live() === run) return invoke(() => fn.apply(this, args));
      }, ...rest);
    };
  }
})`

// invoke is the Go side of timerGate: it calls a timer's callback and
// ends the run with what the callback threw. An interrupt is left to end
// the run as one (halted keeps the loop's other callbacks from running).
func (rt *runtime) invoke(c goja.FunctionCall) goja.Value {
	fn, ok := goja.AssertFunction(c.Argument(0))
	if !ok {
		return goja.Undefined()
	}
	v, err := fn(goja.Undefined())
	if err != nil {
		if !isInterrupt(err) && rt.fail != nil {
			rt.fail(err)
		}
		return goja.Undefined()
	}
	return v
}

// arrayGuardProgram replaces the built-in array methods that goja runs
// as Go recursion over nested arrays, where neither the time limit nor
// the call depth limit reaches: a cyclic array's flat(Infinity), or the
// text of an array nested a million deep, overflowed the Go stack, which
// no recover catches, and took the whole server down. flat is JS here
// (flatMap too), each level of nesting a call counted against
// maxCallDepth. toString
// and toLocaleString (which join reaches through the elements) count
// their nesting and refuse past maxTextNesting with a RangeError: the
// call depth limit would stop them too, but unwinding thousands of levels
// of Go and JS frames took seconds. A stack overflow skips the finally
// that takes the count back, and one in a promise job goes unseen by the
// run: the count starts again at every run (the function the guard
// returns, which run calls).
//
// A script that puts a built-in back in their place
// (Array.prototype.toString = Array.prototype.join) is stopped by the
// count of nested built-ins instead (guardNatives), deeper and slower.
var arrayGuardProgram = goja.MustCompile("fazt:arrays", arrayGuard, true)

// maxTextNesting is how deep arrays may nest in an array's text.
const maxTextNesting = 1000

const arrayGuard = `(function (maxNesting) {
  // What these use of the language, as it is before any script runs: a
  // script's changes to Array, Object, Math, Reflect or the errors do not
  // reach them.
  const defineProperty = Object.defineProperty, toObject = Object, isArray = Array.isArray, apply = Reflect.apply;
  const TypeError = globalThis.TypeError, RangeError = globalThis.RangeError;
  const trunc = Math.trunc, min = Math.min, max = Math.max, maxLength = Number.MAX_SAFE_INTEGER;
  const define = (name, fn) => defineProperty(Array.prototype, name,
    { __proto__: null, value: fn, writable: true, enumerable: false, configurable: true });
  let nesting = 0;
  const reset = () => { nesting = 0; };
  const nested = (native, self, args) => {
    if (nesting >= maxNesting) throw new RangeError("arrays nested more than " + maxNesting + " deep cannot be made text");
    nesting++;
    try {
      return apply(native, self, args);
    } finally {
      nesting--;
    }
  };
  const toText = Array.prototype.toString, toLocaleText = Array.prototype.toLocaleString;
  define("toString", { toString() { return nested(toText, this, []); } }.toString);
  define("toLocaleString", { toLocaleString(...args) { return nested(toLocaleText, this, args); } }.toLocaleString);
  // ToLength and ToIntegerOrInfinity: + throws for a BigInt, as they do.
  const toLength = (v) => min(max(trunc(+v) || 0, 0), maxLength);
  // An element of the answer, defined as the language does (a setter of
  // Array.prototype's is not called).
  const put = (out, v) => defineProperty(out, out.length,
    { __proto__: null, value: v, writable: true, enumerable: true, configurable: true });
  define("flat", { flat() {
    if (this === null || this === undefined) throw new TypeError("Array.prototype.flat called on null or undefined");
    const depth = arguments[0] === undefined ? 1 : trunc(+arguments[0]) || 0;
    const out = [];
    const into = (source, depth) => {
      for (let i = 0, n = toLength(source.length); i < n; i++) {
        if (!(i in source)) continue;
        const e = source[i];
        if (depth > 0 && isArray(e)) into(e, depth - 1);
        else put(out, e);
      }
    };
    into(toObject(this), depth);
    return out;
  } }.flat);
  // flatMap too: goja's goes through each answer's length in Go, where
  // nothing stops it ([0].flatMap(() => new Array(2**32-1)) went on for
  // minutes); here each element is a step of a JS loop.
  define("flatMap", { flatMap(callback) { // length 1, as the language's
    const thisArg = arguments[1];
    if (this === null || this === undefined) throw new TypeError("Array.prototype.flatMap called on null or undefined");
    const source = toObject(this), n = toLength(source.length);
    if (typeof callback !== "function") throw new TypeError("Array.prototype.flatMap callback must be a function");
    const out = [];
    for (let i = 0; i < n; i++) {
      if (!(i in source)) continue;
      const e = apply(callback, thisArg, [source[i], i, source]);
      if (!isArray(e)) { put(out, e); continue; }
      for (let j = 0, m = toLength(e.length); j < m; j++) if (j in e) put(out, e[j]);
    }
    return out;
  } }.flatMap);
  return reset;
})`

// execution is what one run of a script is about: its deadline, its app's
// current settings (app.json as of this run), and the logger its console
// output and errors go to, tagged with the app, file and request or hook.
type execution struct {
	ctx context.Context
	app *apps.App
	log *slog.Logger
}

// errTimeout is what an execution past its time limit is interrupted with.
var errTimeout = errors.New("time limit")

// TimeoutError is returned by an execution interrupted at its time limit.
type TimeoutError struct {
	File  string
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s ran past its time limit of %s and was interrupted", e.File, e.Limit)
}

// ScriptError is a JS exception or promise rejection that reached the
// server: the thrown value as text and where it was thrown.
type ScriptError struct {
	Message string
	At      string // "api/main.js:3:11", empty when unknown
	// Code is unavailable or internal when what the script threw is a
	// fazt.realtime call's error of that code, which it did not catch
	// (or threw again): the log could not commit, say. Empty otherwise.
	Code domain.Code
}

func (e *ScriptError) Error() string {
	if e.At == "" {
		return e.Message
	}
	return e.Message + " at " + e.At
}

// newRuntime makes a runtime for v and loads v's script into it under the
// time limit of ex.
func (e *Engine) newRuntime(v *version, ex *execution, limit time.Duration) (*runtime, error) {
	rt := &runtime{eng: e, ver: v}
	rt.loop = eventloop.NewEventLoop(eventloop.WithRegistry(v.reg), eventloop.EnableConsole(false))
	reusable, err := rt.run(ex, limit, func(vm *goja.Runtime) (goja.Value, error) {
		vm.SetMaxCallStackSize(maxCallDepth)
		if err := rt.guardNatives(vm); err != nil {
			return nil, err
		}
		mod := vm.NewObject()
		mod.Set("exports", vm.NewObject())
		console.RequireWithPrinter(printer{rt})(vm, mod)
		vm.Set("console", mod.Get("exports"))
		fazt := vm.NewObject()
		fazt.Set("app", v.app)
		fazt.Set("realtime", rt.realtimeObject(vm))
		vm.Set("fazt", fazt)
		guard, err := vm.RunProgram(arrayGuardProgram)
		if err != nil {
			return nil, err
		}
		guardArrays, _ := goja.AssertFunction(guard)
		reset, err := guardArrays(goja.Undefined(), vm.ToValue(maxTextNesting))
		if err != nil {
			return nil, err
		}
		rt.resetNesting, _ = goja.AssertFunction(reset)
		gate, err := vm.RunProgram(timerGateProgram)
		if err != nil {
			return nil, err
		}
		wrap, _ := goja.AssertFunction(gate)
		live := vm.ToValue(func() int64 {
			if rt.halted.Load() {
				return 0
			}
			return int64(rt.live)
		})
		if _, err := wrap(goja.Undefined(), live, vm.ToValue(rt.invoke)); err != nil {
			return nil, err
		}
		// The script is a CommonJS module of the app folder, so that
		// require() inside it resolves relative to it.
		return vm.RunString(`require("/` + v.file + `")`)
	}, func(_ *goja.Runtime, exports goja.Value) error {
		rt.exports = exports
		if v.file == RealtimeFile {
			v.noteHooks(exports)
		}
		return nil
	})
	if err != nil {
		if rt.passing {
			return nil, passingError{err}
		}
		return nil, err
	}
	if !reusable {
		if rt.shortOfMemory.Load() {
			return nil, &MemoryError{File: v.file, Limit: e.cfg.MemoryLimit}
		}
		return nil, &TimeoutError{File: v.file, Limit: limit}
	}
	return rt, nil
}

// LoadError is a script that could not be loaded into a runtime: a
// syntax error, a throw at its top level, a file it requires that is
// missing, or a load past its time limit. It wraps why.
type LoadError struct{ Err error }

func (e *LoadError) Error() string { return e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// passingError is a load's failure that a fazt.realtime call's passing
// failure may have caused: tried again on the next run, not kept.
type passingError struct{ error }

func (e passingError) Unwrap() error { return e.error }

// clip cuts s to at most about max bytes, at a character's start, saying
// how much it left out.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
}

// maxThrown is the most of a thrown value's text that an error keeps: the
// log line, and the answer to the client, that carry it. A script that
// throws its request's body (1 MiB) would otherwise send it back, and
// write it to the log, at every request.
const maxThrown = 8 << 10

// maxConsoleLine is the most of one console call's text the log keeps.
const maxConsoleLine = 8 << 10

// printer sends console output to the server log, tagged with the app, the
// file and the execution.
type printer struct{ rt *runtime }

func (p printer) print(level slog.Level, s string) {
	// A script that logs a megabyte a call would flood the log.
	s = clip(s, maxConsoleLine)
	ex := p.rt.cur
	log := p.rt.eng.log
	if ex != nil && ex.log != nil {
		log = ex.log
	}
	log.Log(context.Background(), level, s, "source", "console")
}

func (p printer) Log(s string)   { p.print(slog.LevelInfo, s) }
func (p printer) Warn(s string)  { p.print(slog.LevelWarn, s) }
func (p printer) Error(s string) { p.print(slog.LevelError, s) }

// run runs call on the runtime's event loop within limit, waits for the
// value it returns to settle (a promise is awaited, timers run), and passes
// the settled value to finish, still on the loop and within the limit.
//
// At the limit, or when ex.ctx ends, the JS is interrupted
// (Runtime.Interrupt) and the loop stopped; the runtime is then not
// reusable, since an interrupt may still be in flight.
func (rt *runtime) run(ex *execution, limit time.Duration, call func(*goja.Runtime) (goja.Value, error), finish func(*goja.Runtime, goja.Value) error) (reusable bool, err error) {
	ctx, cancel := context.WithTimeout(ex.ctx, limit)
	defer cancel()
	rt.shortOfMemory.Store(false)
	rt.eng.watch(rt, ctx, cancel) // the heap's check ends the run as its limit would
	defer rt.eng.unwatch(rt)
	run := *ex
	run.ctx = ctx
	rt.cur = &run
	rt.runs++
	rt.live = rt.runs
	rt.halted.Store(false)
	clear(rt.passed)
	rt.passed = rt.passed[:0]
	defer func() { rt.cur, rt.live = nil, 0 }()

	stop := context.AfterFunc(ctx, func() {
		rt.halted.Store(true)
		if vm := rt.vm.Load(); vm != nil {
			vm.Interrupt(errTimeout)
		}
		rt.loop.StopNoWait()
	})

	var (
		done    bool
		result  error
		crashed bool
		// tainted: something escaped the call or the wait for its
		// promise; goja may hold promise jobs of this run still.
		tainted        bool
		haltedAtSettle bool
		// overran: an interrupt came after the value had settled, from
		// script code that ran on in the call that settled it (settle,
		// called again). A time limit that passes while the run is being
		// cleaned up, with no script running, is not one; nor is a job
		// the loop runs after the answer, whose interrupt goja's event
		// loop drops: the answer, settled in time, stands, and the
		// runtime, interrupted, is thrown away.
		overran bool
	)
	// crash ends the run for a Go panic p: an engine failure, not the
	// script's, which leaves the runtime in no state to reuse.
	crash := func(p any) {
		crashed = true
		rt.live = 0 // nothing the script left runs any more
		result = fmt.Errorf("%s: script engine failure: %v", rt.ver.file, p)
	}
	settle := func(vm *goja.Runtime, v goja.Value, thrown error) {
		if done {
			// The script ran on after its value settled, in the call
			// that settled it (a then of its own that settled, then
			// looped), and was interrupted: the run did not end in
			// time. (Not an interrupt already due when it settled.)
			if isInterrupt(thrown) && !haltedAtSettle {
				overran = true
			}
			return
		}
		done = true
		rt.live = 0
		// The loop stops whatever happens here: its timers are then
		// cancelled (Terminate, below), which a panic out of the loop
		// would skip, leaving each due timer's goroutine blocked for good.
		defer rt.loop.StopNoWait()
		defer func() {
			if p := recover(); p != nil {
				crash(p)
			}
		}()
		if thrown == nil {
			if rt.halted.Load() {
				// The limit passed, and goja may have cleared its
				// interrupt with an error a script swallowed: the script
				// code finish runs (a getter of the value) is stopped
				// all the same.
				vm.Interrupt(errTimeout)
			}
			thrown = finishCatching(vm, v, finish)
		}
		// Whether the run was halted by the time it failed: a failure
		// then may be what a built-in threw for the halt (stopIfHalted),
		// while a limit that passes after it (while it is described,
		// below) does not make it one.
		haltedAtSettle = rt.halted.Load()
		// Described here, on the loop and within the limit: a thrown
		// value's toString, or its stack, may be script code that never
		// ends, and nothing could interrupt it once the run is over.
		result = describeCatching(thrown)
		if se, ok := result.(*ScriptError); ok && len(rt.passed) > 0 {
			se.Code = rt.passedCode(thrownValue(thrown))
		}
	}
	rt.fail = func(thrown error) {
		if vm := rt.vm.Load(); vm != nil {
			settle(vm, nil, thrown)
		}
	}
	defer func() { rt.fail = nil }()
	func() {
		defer func() {
			if p := recover(); p != nil {
				crash(p)
			}
		}()
		rt.loop.Run(func(vm *goja.Runtime) {
			// What escapes the call or the wait for its promise (a getter
			// of its then that throws, the interrupt) settles the run
			// here, on the loop, so that the loop still ends as it should.
			defer func() {
				if p := recover(); p != nil {
					tainted = true
					switch p := p.(type) {
					case *goja.Exception:
						settle(vm, nil, p)
					case *goja.InterruptedError:
						settle(vm, nil, p)
					case *goja.StackOverflowError:
						settle(vm, nil, p)
					default:
						crash(p)
						if !done {
							done = true
							rt.loop.StopNoWait()
						}
					}
				}
			}()
			if rt.vm.Load() == nil {
				rt.vm.Store(vm)
				if rt.halted.Load() { // the limit passed before the VM was known
					vm.Interrupt(errTimeout)
				}
			}
			if rt.resetNesting != nil {
				// Here, on the loop and within the limit: the call runs
				// the promise jobs an earlier run may have left queued
				// (a thrown value's toString that queued one, say), and
				// one that runs out the limit ends this run.
				if _, err := rt.resetNesting(goja.Undefined()); err != nil {
					if isInterrupt(err) {
						settle(vm, nil, err)
						return
					}
					// A leftover job's stack overflow is not this run's:
					// the count again, the queue now empty.
					rt.resetNesting(goja.Undefined())
					if rt.halted.Load() {
						// The limit passed meanwhile, and goja cleared
						// the interrupt with the error: again, so that
						// the call is stopped at once.
						vm.Interrupt(errTimeout)
					}
				}
			}
			// In Try: a getter a script left in the call's way (of its
			// exports' handler, of a promise's then) throws a JS value,
			// which is the script's failure, not the engine's.
			var (
				v   goja.Value
				err error
			)
			if ex := vm.Try(func() { v, err = call(vm) }); ex != nil {
				tainted, err = true, ex
			}
			if err != nil {
				settle(vm, nil, err)
				return
			}
			obj, ok := v.(*goja.Object)
			if ok && obj.ExportType() != promiseType {
				// A thenable (a promise library's object) is awaited as
				// await would: through a native promise resolved with
				// it. Taken as a plain value, its then was never called,
				// and a hook's answer, whatever it would settle to,
				// allowed.
				var thenValue goja.Value
				if ex := vm.Try(func() { thenValue = obj.Get("then") }); ex != nil {
					tainted = true
					settle(vm, nil, ex)
					return
				}
				if _, isFn := goja.AssertFunction(thenValue); isFn {
					p, resolve, _ := vm.NewPromise()
					// From the top of the stack, resolve runs the job
					// that calls the script's then at once, and returns
					// what escaped it (the interrupt at the limit, a stack
					// overflow) as its error: goja has cleared the
					// interrupt by then, so nothing would stop the script
					// code that settling runs next (a getter of the value).
					if err := resolve(obj); err != nil {
						tainted = true
						settle(vm, nil, err)
						return
					}
					obj = vm.ToValue(p).(*goja.Object)
				}
			}
			if !ok || obj.ExportType() != promiseType {
				settle(vm, v, nil)
				return
			}
			p := obj.Export().(*goja.Promise)
			switch p.State() {
			case goja.PromiseStateFulfilled:
				settle(vm, p.Result(), nil)
			case goja.PromiseStateRejected:
				settle(vm, nil, rejection(p.Result()))
			default:
				var thenValue goja.Value
				if ex := vm.Try(func() { thenValue = obj.Get("then") }); ex != nil {
					tainted = true
					settle(vm, nil, ex)
					return
				}
				then, ok := goja.AssertFunction(thenValue)
				if !ok {
					settle(vm, nil, &ScriptError{Message: "the promise " + rt.ver.file + " returned has a then that is not a function"})
					return
				}
				_, err := then(obj,
					vm.ToValue(func(c goja.FunctionCall) goja.Value { settle(vm, c.Argument(0), nil); return goja.Undefined() }),
					vm.ToValue(func(c goja.FunctionCall) goja.Value {
						settle(vm, nil, rejection(c.Argument(0)))
						return goja.Undefined()
					}))
				if err != nil {
					settle(vm, nil, err)
				}
			}
		})
		// Timers the script left behind are cancelled; none of their
		// callbacks runs (timerGate: the run is no longer live).
		rt.loop.Terminate()
	}()
	stopped := stop()
	reusable = stopped && !crashed && !tainted
	switch {
	case crashed:
		err = result
	case done && result == nil && !overran:
		err = nil
	case !done && rt.halted.Load(), overran, done && result != nil && (haltedAtSettle || isInterrupt(result)):
		// What a run that was interrupted failed with is the interrupt,
		// or what a built-in threw for it (stopIfHalted).
		if ex.ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%s: %w", rt.ver.file, ex.ctx.Err())
		} else if rt.shortOfMemory.Load() && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = &MemoryError{File: rt.ver.file, Limit: rt.eng.cfg.MemoryLimit}
		} else {
			err = &TimeoutError{File: rt.ver.file, Limit: limit}
		}
	case !done:
		err = &ScriptError{Message: "the promise " + rt.ver.file + " returned never settled (nothing left to wait for)"}
	default:
		err = result // described in settle, within the limit
	}
	return reusable, err
}

// finishCatching is finish, with what the script throws meanwhile (a
// getter or a toString of the value it returned, goja's own TypeErrors
// included) as the error, as a throw from the call itself is: not a
// crash of the engine, which would cost the runtime and say nothing of
// where in the script it was. Runtime.Try catches what JS could; the
// interrupt at the time limit and a stack overflow, which JS cannot,
// are taken here.
func finishCatching(vm *goja.Runtime, v goja.Value, finish func(*goja.Runtime, goja.Value) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			switch p := p.(type) {
			case *goja.InterruptedError:
				err = p
			case *goja.StackOverflowError:
				err = p
			default:
				panic(p)
			}
		}
	}()
	if ex := vm.Try(func() { err = finish(vm, v) }); ex != nil {
		return ex
	}
	return err
}

// describeCatching is scriptError, run where the script's code may run:
// the interrupt at the time limit that ends a toString or stack getter is
// returned as such (the run timed out), and a thrown value that cannot be
// described (its stack throws, or overflows the call stack) is said to be
// one.
func describeCatching(err error) (out error) {
	if err == nil || isInterrupt(err) {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			switch p := p.(type) {
			case *goja.InterruptedError:
				out = p
			case *goja.StackOverflowError:
				out = &ScriptError{Message: fmt.Sprintf("RangeError: more than %d nested calls describing the thrown value", maxCallDepth)}
			case *goja.Exception: // its stack's getter, or the stack's toString, threw
				out = &ScriptError{Message: "a value was thrown whose stack could not be read"}
			default:
				panic(p)
			}
		}
	}()
	return scriptError(err)
}

// passedError is an error a fazt.realtime call threw for a reason that
// may pass, and its code.
type passedError struct {
	obj  *goja.Object
	code domain.Code
}

// maxPassed bounds the errors of that kind a run keeps: a script that
// catches them in a loop would otherwise grow the list.
const maxPassed = 64

// passedCode is the code of v when it is one of the run's passed errors,
// and "" otherwise.
func (rt *runtime) passedCode(v goja.Value) domain.Code {
	for _, p := range rt.passed {
		if v == goja.Value(p.obj) {
			return p.code
		}
	}
	return ""
}

// thrownValue is the value a run failed with: what it threw, or the
// reason its promise was rejected with; nil for other failures.
func thrownValue(err error) goja.Value {
	var ex *goja.Exception
	var rj *rejectedError
	switch {
	case errors.As(err, &rj):
		return rj.reason
	case errors.As(err, &ex):
		return ex.Value()
	}
	return nil
}

func isInterrupt(err error) bool {
	var ie *goja.InterruptedError
	return errors.As(err, &ie)
}

// rejectedError carries a promise's rejection reason.
type rejectedError struct{ reason goja.Value }

func (r *rejectedError) Error() string { return valueString(r.reason) }

func rejection(v goja.Value) error { return &rejectedError{v} }

// valueString is v's toString, or "" when that throws. The interrupt at
// the time limit passes: it must end the run, not just the toString.
func valueString(v goja.Value) (s string) {
	if v == nil {
		return "undefined"
	}
	defer func() {
		if p := recover(); p != nil {
			if ie, ok := p.(*goja.InterruptedError); ok {
				panic(ie)
			}
		}
	}()
	return v.String()
}

// scriptError turns what an execution failed with into a *ScriptError with
// the JS location; other errors pass through.
func scriptError(err error) error {
	var (
		ex *goja.Exception
		so *goja.StackOverflowError
		rj *rejectedError
	)
	switch {
	case errors.As(err, &rj):
		return &ScriptError{Message: clip(valueString(rj.reason), maxThrown), At: clip(stackLine(rj.reason), maxThrown)}
	case errors.As(err, &so):
		return &ScriptError{Message: fmt.Sprintf("RangeError: more than %d nested calls", maxCallDepth), At: firstFrame(so.Stack())}
	case errors.As(err, &ex):
		se := &ScriptError{Message: clip(valueString(ex.Value()), maxThrown), At: clip(stackLine(ex.Value()), maxThrown)}
		if se.At == "" {
			se.At = firstFrame(ex.Stack())
		}
		return se
	}
	return err
}

// firstFrame returns the innermost script location of a stack.
func firstFrame(stack []goja.StackFrame) string {
	for _, f := range stack {
		if p := f.Position(); p.Filename != "" {
			return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column)
		}
	}
	return ""
}

// stackLine returns the first script location of an Error's stack
// property: the line it was thrown from.
func stackLine(v goja.Value) string {
	obj, ok := v.(*goja.Object)
	if !ok {
		return ""
	}
	stack := obj.Get("stack")
	if stack == nil || goja.IsUndefined(stack) {
		return ""
	}
	for _, line := range strings.Split(stack.String(), "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "at ")
		if !ok || rest == "native" || strings.HasSuffix(rest, "(native)") {
			continue
		}
		// "fn (api/main.js:3:11(12))" or "api/main.js:3:11(12)"
		if i := strings.LastIndexByte(rest, '('); i > 0 && strings.HasSuffix(rest, "))") {
			rest = rest[strings.IndexByte(rest, '(')+1 : len(rest)-1]
		}
		if i := strings.LastIndexByte(rest, '('); i > 0 {
			rest = rest[:i]
		}
		return rest
	}
	return ""
}
