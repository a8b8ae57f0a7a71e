package js

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/dop251/goja"

	"github.com/fazt-realtime/fazt/domain"
)

// Hook names: the exports of api/realtime.js.
const (
	HookConnect    = "onConnect"
	HookSubscribe  = "onSubscribe"
	HookPublish    = "onPublish"
	HookDisconnect = "onDisconnect"
)

// hookOutcome is what a hook's settled value meant.
type hookOutcome int

const (
	outcomeNone    hookOutcome = iota // no such hook, or it returned undefined
	outcomeRefused                    // false
	outcomeDrop                       // null (onPublish)
	outcomeValue                      // anything else
)

// hook runs one hook of c's app and says what its settled value meant:
// outcomeNone when the app has no api/realtime.js, it exports no such hook,
// or the hook returned undefined. For onPublish, data is the value as JSON.
// A hook that throws or runs out of time is a not_allowed error with the
// hook's message; one that could not answer (no run slot, a script that
// does not load, a fazt.realtime failure it let through) is unavailable
// or internal (refusal).
func (e *Engine) hook(ctx context.Context, c domain.Client, name string, args func(rt *runtime, vm *goja.Runtime) []goja.Value) (out hookOutcome, data json.RawMessage, err error) {
	app, err := e.apps.Lookup(c.App)
	if err != nil {
		return outcomeNone, nil, err
	}
	var lg *slog.Logger
	log := func() *slog.Logger {
		if lg == nil {
			lg = e.log.With("app", app.Name, "file", RealtimeFile, "hook", name, "client", c.ID)
		}
		return lg
	}
	_, err = e.run(ctx, app, RealtimeFile, log,
		func(rt *runtime, vm *goja.Runtime) (goja.Value, error) {
			exports, ok := rt.exports.(*goja.Object)
			if !ok {
				return goja.Undefined(), nil
			}
			fn, ok := goja.AssertFunction(exports.Get(name))
			if !ok {
				return goja.Undefined(), nil
			}
			return fn(goja.Undefined(), args(rt, vm)...)
		},
		func(rt *runtime, vm *goja.Runtime, v goja.Value) error {
			switch {
			case v == nil || goja.IsUndefined(v):
				out = outcomeNone
			case goja.IsNull(v):
				out = outcomeDrop
			case name != HookPublish && isFalse(v):
				// For onPublish, false is data like any other; it
				// refuses by throwing.
				out = outcomeRefused
			default:
				out = outcomeValue
				if name == HookPublish {
					d, err := rt.toJSON(vm, v, maxJSONNesting)
					if err != nil {
						return err
					}
					if d == nil {
						return &ScriptError{Message: "onPublish returned a value that is not JSON"}
					}
					if !domain.HasData(d) {
						// NaN, Infinity, or a toJSON that gives null: not
						// a message, and not null, which drops one.
						return &ScriptError{Message: "onPublish returned a value whose JSON is null; return null to drop the message"}
					}
					data = d
				}
			}
			return nil
		})
	if err != nil {
		return outcomeNone, nil, e.refusal(log(), name, err)
	}
	return out, data, nil
}

// refusal turns a hook's failure into the error the client gets, and
// logs what went wrong. The hook's own answers refuse for good
// (not_allowed): what it threw, with its message, and its running past its
// time limit (a loop cannot be told from a busy machine, and were it
// tried again, a hook that never ends would cost its limit at every retry
// of every client). A failure of the server's state or of the app's
// deploy is one the client may try again, as fazt.js does for a subscribe
// (it gives a not_allowed one up for good): the hook not run for want of
// a run slot, or interrupted for the heap (unavailable); a fazt.realtime
// call's unavailable or internal error that it let through (that code); a
// script that does not load, such as a syntax error in a deploy, or a
// load past the limit (unavailable: a retry costs no run until a file
// changes, or, for a load past the limit, but one each loadRetry); or the
// engine's own failure (internal).
func (e *Engine) refusal(log *slog.Logger, name string, err error) error {
	var se *ScriptError
	var te *TimeoutError
	var me *MemoryError
	var le *LoadError
	switch {
	case errors.As(err, &me):
		log.Warn("js hook interrupted", "err", me.Error())
		return domain.Errorf(domain.CodeUnavailable, "%s: %s", name, me.Error())
	case errors.As(err, &le) && errors.As(le.Err, &te):
		// Tried again after loadRetry, whatever the number of tries
		// meanwhile: so may the client. The load's own failure was
		// logged at Error where it failed; a run it holds back, here.
		log.Debug("js hook not run: its script's load ran past the time limit", "err", le.Err)
		return domain.Errorf(domain.CodeUnavailable, "%s: %s", name, le.Err.Error())
	case errors.As(err, &te):
		log.Warn("js hook interrupted", "limit", te.Limit)
		return domain.Errorf(domain.CodeNotAllowed, "%s: %s", name, te.Error())
	case domain.CodeOf(err) == domain.CodeUnavailable:
		log.Warn("js hook not run", "err", err)
		return domain.Errorf(domain.CodeUnavailable, "%s: %s", name, err.Error())
	case errors.As(err, &se) && se.Code != "":
		log.Warn("js hook failed on a fazt.realtime call", "err", se.Message, "at", se.At)
		return domain.Errorf(se.Code, "%s: %s", name, trimErrorPrefix(se.Message))
	case errors.Is(err, context.Canceled):
		// The connection ended (its client left, a kick) while the hook
		// ran or waited for a slot: no one is told, and it is not a
		// failure of the hook's.
		log.Debug("js hook cut short or not run: its connection ended", "err", err)
		return domain.Errorf(domain.CodeUnavailable, "%s: %s", name, err.Error())
	case errors.Is(err, errNotRun):
		log.Warn("js hook not run", "err", err)
		return domain.Errorf(domain.CodeUnavailable, "%s: %s", name, err.Error())
	case errors.As(err, &le):
		// Logged at Error where the load failed, once a load: here at
		// each hook its failure answers, which clients ask again.
		log.Debug("js hook not run: its script does not load", "err", le.Err)
		return domain.Errorf(domain.CodeUnavailable, "%s: %s does not load", name, RealtimeFile)
	case errors.As(err, &se):
		log.Info("js hook refused", "reason", se.Message, "at", se.At)
		return domain.Errorf(domain.CodeNotAllowed, "%s", trimErrorPrefix(se.Message))
	default:
		log.Error("js hook failed", "err", err)
		return domain.Errorf(domain.CodeInternal, "%s failed", name)
	}
}

// trimErrorPrefix drops the "Error: " that String() puts before a plain
// Error's message, so that `throw new Error("token required")` reaches the
// client as "token required". Other error types keep their name.
func trimErrorPrefix(msg string) string {
	if len(msg) > 7 && msg[:7] == "Error: " {
		return msg[7:]
	}
	return msg
}

// clientValue is a client as hooks see it: id, app, remote, connectedAt
// (unix ms) and query (the upgrade request's parameters, first values).
func clientValue(vm *goja.Runtime, c domain.Client) *goja.Object {
	q := vm.NewObject()
	for k, v := range c.Query {
		q.Set(k, v)
	}
	return object(vm, "id", c.ID, "app", c.App, "remote", c.Remote, "connectedAt", c.ConnectedAt, "query", q)
}

// OnConnect implements domain.Hooks: onConnect(client) returning false, or
// throwing, refuses the connection.
func (e *Engine) OnConnect(ctx context.Context, c domain.Client) error {
	out, _, err := e.hook(ctx, c, HookConnect, func(_ *runtime, vm *goja.Runtime) []goja.Value {
		return []goja.Value{clientValue(vm, c)}
	})
	if err != nil {
		return err
	}
	if out == outcomeRefused {
		return domain.Errorf(domain.CodeNotAllowed, "connection refused by %s", HookConnect)
	}
	return nil
}

// OnSubscribe implements domain.Hooks: onSubscribe(client, channel)
// returning false, or throwing, refuses the subscription.
func (e *Engine) OnSubscribe(ctx context.Context, c domain.Client, channel string) error {
	out, _, err := e.hook(ctx, c, HookSubscribe, func(_ *runtime, vm *goja.Runtime) []goja.Value {
		return []goja.Value{clientValue(vm, c), vm.ToValue(channel)}
	})
	if err != nil {
		return err
	}
	if out == outcomeRefused {
		return domain.Errorf(domain.CodeNotAllowed, "subscription to %s refused by %s", channel, HookSubscribe)
	}
	return nil
}

// OnPublish implements domain.Hooks: onPublish(client, channel, data)
// returns the data to broadcast (changed or not), which also allows the
// publish where app.json does not; null drops the message; undefined
// leaves the message as it is and the decision to app.json; a throw
// refuses it.
func (e *Engine) OnPublish(ctx context.Context, c domain.Client, channel string, data json.RawMessage) (json.RawMessage, bool, error) {
	// What the log would refuse anyway is refused before the hook reads
	// it: goja's JSON.parse cannot take a number beyond a double's range.
	if err := domain.CheckNumbers(data); err != nil {
		return nil, false, err
	}
	out, changed, err := e.hook(ctx, c, HookPublish, func(rt *runtime, vm *goja.Runtime) []goja.Value {
		return []goja.Value{clientValue(vm, c), vm.ToValue(channel), rt.fromJSON(vm, data)}
	})
	switch {
	case err != nil:
		return nil, false, err
	case out == outcomeDrop:
		return nil, true, nil
	case out == outcomeValue:
		return changed, false, nil
	}
	return nil, false, nil
}

// OnDisconnect implements domain.Hooks: onDisconnect(client, reason) is
// told; what it returns or throws is only logged.
func (e *Engine) OnDisconnect(ctx context.Context, c domain.Client, reason string, applied func(context.Context)) {
	if applied != nil && e.mayDisconnect(c.App) {
		// Before the run takes a slot: a wait there would hold it, and
		// the slots are the app's connects' and subscribes' too.
		applied(ctx)
	}
	// Every recorded session's end is told: when many end at once, a run
	// waits for a slot while ctx lasts (the server gives it 15 s, less
	// its wait for the end to be applied).
	ctx = context.WithValue(ctx, untilDoneKey{}, true)
	e.hook(ctx, c, HookDisconnect, func(_ *runtime, vm *goja.Runtime) []goja.Value {
		return []goja.Value{clientValue(vm, c), vm.ToValue(reason)}
	})
}

// mayDisconnect reports whether app may have an onDisconnect to run: it
// has a realtime.js, whose last load found one, or that has not been
// loaded yet.
func (e *Engine) mayDisconnect(name string) bool {
	app, err := e.apps.Lookup(name)
	if err != nil {
		return false
	}
	v, _, err := e.current(app, RealtimeFile)
	return err == nil && v != nil && !v.noDisconnect.Load()
}

func isFalse(v goja.Value) bool {
	b, ok := exportFlat(v).(bool)
	return ok && !b
}
