package js

import (
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/dop251/goja"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/chantoken"
)

// realtimeObject builds fazt.realtime for a runtime. Every function acts on
// the runtime's own app only, records the script's file as the actor, and
// runs under the current execution's deadline. They throw JS Errors whose
// message starts with the protocol code ("invalid_channel: ...") and whose
// code property is that code.
func (rt *runtime) realtimeObject(vm *goja.Runtime) *goja.Object {
	o := vm.NewObject()
	fn := func(name string, f func(goja.FunctionCall) goja.Value) {
		// Counted, as the built-ins are (guardNatives): a toJSON of a
		// broadcast's data that broadcasts it again is a loop in Go.
		o.Set(name, rt.counted(vm, func(c goja.FunctionCall) goja.Value {
			// live is 0 outside a run, and once the run's value has
			// settled: promise jobs queued after it still run (goja
			// drains its job queue), and their broadcasts would come
			// after the answer was decided.
			if rt.live == 0 {
				rt.throw(vm, domain.Errorf(domain.CodeNotAllowed, "fazt.realtime.%s: only while a request or hook runs, before its answer is decided", name))
			}
			return f(c)
		}))
	}
	fn("broadcast", func(c goja.FunctionCall) goja.Value { return rt.broadcast(vm, c) })
	fn("broadcastBatch", func(c goja.FunctionCall) goja.Value { return rt.broadcastBatch(vm, c) })
	fn("broadcastAll", func(c goja.FunctionCall) goja.Value { return rt.broadcastAll(vm, c) })
	fn("subscribers", func(c goja.FunctionCall) goja.Value { return rt.subscribers(vm, c) })
	fn("count", func(c goja.FunctionCall) goja.Value { return rt.count(vm, c) })
	fn("kick", func(c goja.FunctionCall) goja.Value { return rt.kick(vm, c) })
	fn("history", func(c goja.FunctionCall) goja.Value { return rt.history(vm, c) })
	fn("channels", func(c goja.FunctionCall) goja.Value { return rt.channels(vm, c) })
	fn("channelToken", func(c goja.FunctionCall) goja.Value { return rt.channelToken(vm, c) })
	return o
}

func (rt *runtime) actor() domain.Actor { return domain.Actor{Kind: domain.ActorJS, ID: rt.ver.file} }

// throw raises err in JS as an Error with the protocol code.
func (rt *runtime) throw(vm *goja.Runtime, err error) {
	code := domain.CodeOf(err)
	passing := code == domain.CodeUnavailable || code == domain.CodeInternal
	if passing {
		rt.passing = true
	}
	obj, nerr := vm.New(vm.Get("Error"), vm.ToValue(string(code)+": "+err.Error()))
	if nerr != nil {
		panic(vm.NewGoError(err))
	}
	obj.Set("code", string(code))
	if passing {
		if len(rt.passed) == maxPassed { // the oldest goes
			copy(rt.passed, rt.passed[1:])
			rt.passed = rt.passed[:maxPassed-1]
		}
		rt.passed = append(rt.passed, passedError{obj, code})
	}
	panic(obj)
}

// must throws err in JS when it is not nil.
func (rt *runtime) must(vm *goja.Runtime, err error) {
	if err != nil {
		if domain.CodeOf(err) == domain.CodeInternal {
			rt.cur.log.Error("fazt.realtime call failed", "err", err)
		}
		rt.throw(vm, err)
	}
}

// channelArg reads and validates a channel name argument.
func (rt *runtime) channelArg(vm *goja.Runtime, v goja.Value) string {
	ch, err := channelOf(v)
	rt.must(vm, err)
	return ch
}

func channelOf(v goja.Value) (string, error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return "", domain.Errorf(domain.CodeInvalidChannel, "channel name is empty")
	}
	if _, ok := exportFlat(v).(string); !ok {
		return "", domain.Errorf(domain.CodeInvalidChannel, "channel name must be a string")
	}
	ch := v.String()
	return ch, domain.ValidateChannel(ch)
}

// dataArg turns a JS value into the JSON a message carries, within the
// app's message size limit.
func (rt *runtime) dataArg(vm *goja.Runtime, what string, v goja.Value) json.RawMessage {
	data, err := rt.dataOf(vm, what, v)
	rt.must(vm, err)
	return data
}

func (rt *runtime) dataOf(vm *goja.Runtime, what string, v goja.Value) (json.RawMessage, error) {
	if v == nil || goja.IsUndefined(v) {
		return nil, domain.Errorf(domain.CodeBadRequest, "%s needs data", what)
	}
	// Data sits one level inside a publish's body or frame, where the
	// app's depth limit applies.
	max := rt.cur.app.Settings.Limits.MaxJSONDepth - 1
	data, err := rt.toJSON(vm, v, min(max, maxJSONNesting))
	if err != nil {
		var ex *goja.Exception
		if errors.As(err, &ex) && rt.deepJSON != nil && ex.Value() == rt.deepJSON {
			return nil, &domain.DepthError{Max: min(max, maxJSONNesting)}
		}
		panic(err) // a throwing toJSON: let its exception through
	}
	if data == nil {
		return nil, domain.Errorf(domain.CodeBadRequest, "%s: data is not representable as JSON", what)
	}
	if !domain.HasData(data) {
		return nil, domain.Errorf(domain.CodeBadRequest, "%s needs data", what)
	}
	if limit := rt.cur.app.Settings.Limits.MaxMessageBytes; len(data) > limit {
		return nil, domain.Errorf(domain.CodeTooLarge, "data is %d bytes; the limit is %d", len(data), limit)
	}
	return data, nil
}

// toJSON is JSON.stringify of v, nil when it has no JSON form; nested
// more than max objects and arrays deep, it fails with rt.deepJSON.
func (rt *runtime) toJSON(vm *goja.Runtime, v goja.Value, max int) (json.RawMessage, error) {
	rt.deepJSON = nil // one of an earlier call's, which a script may throw again
	s, err := rt.stringify(goja.Undefined(), v, vm.ToValue(max))
	if err != nil {
		return nil, err
	}
	if goja.IsUndefined(s) {
		return nil, nil
	}
	return json.RawMessage(s.String()), nil
}

// fromJSON is JSON.parse of data the server holds, which is valid JSON.
func (rt *runtime) fromJSON(vm *goja.Runtime, data []byte) goja.Value {
	if len(data) == 0 {
		return goja.Null()
	}
	v, err := rt.parse(goja.Undefined(), vm.ToValue(string(data)))
	if err != nil {
		panic(err)
	}
	return v
}

func (rt *runtime) broadcast(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	channel := rt.channelArg(vm, c.Argument(0))
	data := rt.dataArg(vm, "broadcast", c.Argument(1))
	mb := &domain.MessageBroadcast{App: rt.cur.app.Name, Channel: channel, Data: data, Publisher: rt.actor()}
	evs, err := rt.eng.store.Append(rt.cur.ctx, mb)
	rt.must(vm, err)
	return object(vm, "channel", channel, "offset", mb.Offset, "epoch", mb.Epoch, "seq", evs[0].Seq)
}

// broadcastBatch commits an array of {channel, data} in one transaction,
// as POST /_api/publish-batch does: all of them, in order, or none. A
// message that fails a check throws with its index.
func (rt *runtime) broadcastBatch(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	arr, ok := c.Argument(0).(*goja.Object)
	if !ok || arr.ClassName() != "Array" {
		rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "broadcastBatch takes an array of {channel, data}"))
	}
	n := arr.Get("length").ToInteger()
	rt.must(vm, domain.CheckBatchSize("broadcastBatch", int(min(n, math.MaxInt32))))
	facts := make([]domain.Fact, n)
	mbs := make([]*domain.MessageBroadcast, n)
	size := 0
	for i := range int(n) {
		m, ok := arr.Get(strconv.Itoa(i)).(*goja.Object)
		if !ok {
			rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "messages[%d]: want {channel, data}", i))
		}
		channel, err := channelOf(m.Get("channel"))
		var data json.RawMessage
		if err == nil {
			data, err = rt.dataOf(vm, "broadcastBatch", m.Get("data"))
		}
		if err != nil {
			rt.throw(vm, domain.Errorf(domain.CodeOf(err), "messages[%d]: %v", i, err))
		}
		if size += len(data); size > domain.MaxBatchBytes {
			rt.throw(vm, domain.Errorf(domain.CodeTooLarge, "messages[%d]: the batch's data is over %d bytes", i, domain.MaxBatchBytes))
		}
		mbs[i] = &domain.MessageBroadcast{App: rt.cur.app.Name, Channel: channel, Data: data, Publisher: rt.actor()}
		facts[i] = mbs[i]
	}
	evs, err := rt.eng.store.Append(rt.cur.ctx, facts...)
	rt.must(vm, domain.BatchError(err))
	out := make([]any, n)
	for i, mb := range mbs {
		out[i] = object(vm, "channel", mb.Channel, "offset", mb.Offset, "epoch", mb.Epoch, "seq", evs[i].Seq)
	}
	return vm.NewArray(out...)
}

func (rt *runtime) broadcastAll(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	data := rt.dataArg(vm, "broadcastAll", c.Argument(0))
	evs, err := rt.eng.store.Append(rt.cur.ctx, &domain.BroadcastAll{App: rt.cur.app.Name, Data: data, Publisher: rt.actor()})
	rt.must(vm, err)
	return object(vm, "seq", evs[0].Seq, "connections", rt.eng.members.Count(rt.cur.app.Name, ""))
}

func (rt *runtime) subscribers(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	channel := rt.channelArg(vm, c.Argument(0))
	ids := rt.eng.members.Subscribers(rt.cur.app.Name, channel)
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return vm.NewArray(out...)
}

func (rt *runtime) count(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	channel := ""
	if a := c.Argument(0); !goja.IsUndefined(a) && !goja.IsNull(a) {
		channel = rt.channelArg(vm, a)
	}
	return vm.ToValue(rt.eng.members.Count(rt.cur.app.Name, channel))
}

func (rt *runtime) kick(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	id := ""
	if a := c.Argument(0); !goja.IsUndefined(a) && !goja.IsNull(a) {
		id = a.String()
	}
	if id == "" {
		rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "kick needs a client id"))
	}
	reason := ""
	if a := c.Argument(1); !goja.IsUndefined(a) && !goja.IsNull(a) {
		reason = a.String()
	}
	// It returns once the kick is applied (domain.Kick), within the run's
	// time (KickTook); the membership never waits for a request, so a hook
	// may wait for the kick of its own client. Its fence waits for the
	// client's append under way, if any, which waits for no hook (nor for
	// the run's context: the run may so end one append late).
	seq, err := domain.Kick(rt.cur.ctx, rt.eng.store, rt.eng.members, rt.cur.app.Name, id, reason, rt.actor())
	rt.must(vm, err)
	return object(vm, "client", id, "kicked", true, "seq", seq)
}

// channelToken signs, with the app's secret, a token that admits a client
// to one of the app's private-* channels, as a backend of the app's would
// (docs/protocol.md): bound to the app, to options.client when given, and
// expiring options.expiresIn seconds from now (300 by default, at most a
// day). The app's own handler can so hand its pages tokens after its own
// checks, with no backend outside the server.
func (rt *runtime) channelToken(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	channel := rt.channelArg(vm, c.Argument(0))
	if !domain.IsPrivate(channel) {
		rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "channelToken: %s is not a private-* channel, which is all a token admits to", channel))
	}
	secret := rt.cur.app.Settings.Secret
	if secret == "" {
		rt.throw(vm, domain.Errorf(domain.CodeNotAllowed, "channelToken: app %s has no secret in its app.json: its private channels are closed", rt.cur.app.Name))
	}
	claims := chantoken.Claims{Channel: channel, App: rt.cur.app.Name}
	ttl := defaultTokenTTL
	if o, ok := c.Argument(1).(*goja.Object); ok {
		if v := o.Get("client"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			s, ok := exportFlat(v).(string) // an object is not copied to be refused
			if !ok || s == "" {
				rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "channelToken: client must be a client id (a string)"))
			}
			claims.Client = s
		}
		if v := o.Get("expiresIn"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			// A whole number of seconds, as a token's exp is: a
			// fraction would be cut off, and 1.5 s give less than 1.
			f, ok := flatNumber(v)
			if !ok || f != math.Trunc(f) || !(f >= 1 && f <= maxTokenTTL.Seconds()) {
				rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "channelToken: expiresIn must be a whole number of seconds from 1 to %d", int(maxTokenTTL.Seconds())))
			}
			ttl = time.Duration(f) * time.Second
		}
	} else if a := c.Argument(1); !goja.IsUndefined(a) && !goja.IsNull(a) {
		rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "channelToken options must be an object"))
	}
	now := time.Now()
	token, err := chantoken.Sign(secret, claims, now, now.Add(ttl))
	if err != nil {
		rt.throw(vm, domain.Errorf(domain.CodeInternal, "channelToken: %v", err))
	}
	return vm.ToValue(token)
}

// flatNumber is v as a number, when it is one (exportFlat: an object is
// not copied to be refused).
func flatNumber(v goja.Value) (float64, bool) {
	switch n := exportFlat(v).(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// A channel token's life: 5 minutes unless asked, a day at most (a
// subscription ends when its token expires, and fazt.js asks a token
// function for a new one then).
const (
	defaultTokenTTL = 5 * time.Minute
	maxTokenTTL     = 24 * time.Hour
)

// history reads retained messages as GET /_api/channels/{channel}/history
// does, with the same options as an object, which filter together:
// offset, last (0: none), since, until, limit (default 100, or last; at
// most 1000), reverse.
func (rt *runtime) history(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	channel := rt.channelArg(vm, c.Argument(0))
	var hq domain.HistoryQuery
	none := false // last: 0, the newest none, as on subscribe
	if o, ok := c.Argument(1).(*goja.Object); ok {
		num := func(name string) int64 {
			v := o.Get(name)
			if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
				return 0
			}
			f := v.ToFloat()
			if f < 0 || f != f || f > 1<<53 {
				rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "history: %s must be a number, 0 or more", name))
			}
			return int64(f)
		}
		hq.After = uint64(num("offset"))
		hq.Last = int(num("last"))
		if v := o.Get("last"); hq.Last == 0 && v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			none = true
		}
		hq.Since = num("since")
		hq.Until = num("until")
		if err := cmp.Or(domain.CheckUnixMillis("since", hq.Since), domain.CheckUnixMillis("until", hq.Until)); err != nil {
			rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "history: %v", err))
		}
		hq.Limit = int(num("limit"))
		if v := o.Get("reverse"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			// As the API reads it: true or false, 1 or 0, or their text
			// (a query's value passed on); "false" was taken as true.
			switch exportFlat(v) { // an object is not copied to be refused
			case true, int64(1), float64(1), "true", "1":
				hq.Reverse = true
			case false, int64(0), float64(0), "false", "0", "":
			default:
				rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "history: reverse must be true or false"))
			}
		}
	} else if a := c.Argument(1); !goja.IsUndefined(a) && !goja.IsNull(a) {
		rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "history options must be an object"))
	}
	hq.Limit = domain.HistoryPageSize(uint64(hq.Limit), hq.Last)
	ctx, app := rt.cur.ctx, rt.cur.app.Name
	info, msgs, err := rt.eng.store.ChannelHistory(ctx, app, channel, hq, none)
	rt.must(vm, err)
	list := make([]any, len(msgs))
	for i, m := range msgs {
		mo := vm.NewObject()
		mo.Set("offset", m.Offset)
		mo.Set("timestamp", m.Time)
		mo.Set("seq", m.Seq)
		mo.Set("data", rt.fromJSON(vm, m.Data))
		list[i] = mo
	}
	out := vm.NewObject()
	out.Set("channel", channel)
	out.Set("epoch", info.Epoch)
	out.Set("head", info.Head)
	out.Set("first_offset", info.First)
	out.Set("messages", vm.NewArray(list...))
	if hq.Last == 0 && !hq.Reverse && domain.HistoryPageFull(msgs, hq.Limit) {
		out.Set("next_offset", msgs[len(msgs)-1].Offset)
	}
	return out
}

// channels lists a page of the app's channels as GET /_api/channels does:
// those with history or subscribers, by name, after options.after, at most
// options.limit (domain.PageSize). It returns the page as an
// array; a full one may have more after it.
func (rt *runtime) channels(vm *goja.Runtime, c goja.FunctionCall) goja.Value {
	after, limit := "", domain.DefaultPageSize
	if o, ok := c.Argument(0).(*goja.Object); ok {
		if v := o.Get("after"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			after = v.String()
		}
		if v := o.Get("limit"); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
			f, ok := flatNumber(v)
			if !ok {
				f = -1 // not a number
			}
			if f < 0 || f != math.Trunc(f) { // NaN too
				rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "channels: limit must be a whole number, 0 or more"))
			}
			limit = domain.PageSize(uint64(min(f, domain.MaxPageSize)))
		}
	} else if a := c.Argument(0); !goja.IsUndefined(a) && !goja.IsNull(a) {
		rt.throw(vm, domain.Errorf(domain.CodeBadRequest, "channels options must be an object"))
	}
	page, err := domain.ListChannels(rt.cur.ctx, rt.eng.store, rt.eng.members, rt.cur.app.Name, after, limit)
	rt.must(vm, err)
	list := make([]any, len(page))
	for i, ch := range page {
		o := vm.NewObject()
		o.Set("channel", ch.Channel)
		o.Set("subscribers", ch.Subscribers)
		o.Set("head", ch.Head)
		o.Set("epoch", ch.Epoch)
		o.Set("first_offset", ch.First)
		list[i] = o
	}
	return vm.NewArray(list...)
}

// object makes a plain JS object from name, value pairs.
func object(vm *goja.Runtime, pairs ...any) *goja.Object {
	o := vm.NewObject()
	for i := 0; i+1 < len(pairs); i += 2 {
		o.Set(pairs[i].(string), pairs[i+1])
	}
	return o
}
