package js

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/dop251/goja"

	"github.com/fazt-realtime/fazt/domain"
)

// response is what a handler's settled value becomes.
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxHeaderValues bounds the values of one header in a handler's answer.
const maxHeaderValues = 1000

// responseKeys are the keys of a response object; an object with only
// these keys (and a numeric status, if any) is a response, anything else is
// data answered as 200 JSON.
var responseKeys = map[string]bool{"status": true, "headers": true, "json": true, "body": true}

// ServeHTTP answers /api/... with the app's api/main.js: the request's app
// is the first label of its Host, as everywhere else. Every answer carries
// X-Request-Id, the id the handler's console output is tagged with.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	w.Header().Set("X-Request-Id", reqID)
	app, err := e.apps.LookupHost(r.Host)
	if err != nil {
		code := domain.CodeOf(err)
		writeError(w, err.Error(), code, "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, e.cfg.MaxBodyBytes+1))
	if err != nil {
		writeError(w, "read body: "+err.Error(), domain.CodeBadRequest, "")
		return
	}
	if int64(len(body)) > e.cfg.MaxBodyBytes {
		writeError(w, fmt.Sprintf("body is over %d bytes", e.cfg.MaxBodyBytes), domain.CodeTooLarge, "")
		return
	}
	var lg *slog.Logger // built only if the app has api/main.js
	log := func() *slog.Logger {
		if lg == nil {
			lg = e.log.With("app", app.Name, "file", MainFile, "request", reqID)
		}
		return lg
	}
	var resp response
	// A client that hangs up does not interrupt the handler: what it
	// does would be left half done (the first of two broadcasts made),
	// and its runtime thrown away. Its time limit still bounds it. One
	// still waiting for a run slot is dropped.
	found, err := e.run(context.WithValue(r.Context(), detachedKey{}, true), app, MainFile, log,
		func(rt *runtime, vm *goja.Runtime) (goja.Value, error) {
			handler, ok := goja.AssertFunction(rt.exports)
			if !ok {
				if o, isObj := rt.exports.(*goja.Object); isObj {
					handler, ok = goja.AssertFunction(o.Get("handler"))
				}
			}
			if !ok {
				return nil, &ScriptError{Message: MainFile + " must export a function: module.exports = function (req) { ... }"}
			}
			return handler(goja.Undefined(), rt.request(vm, r, body, reqID))
		},
		func(rt *runtime, vm *goja.Runtime, v goja.Value) (err error) {
			resp, err = rt.response(vm, v)
			return err
		})
	switch {
	case !found && err == nil:
		writeError(w, fmt.Sprintf("app %s has no %s", app.Name, MainFile), domain.CodeNotFound, "")
		return
	case err != nil:
		var se *ScriptError
		var te *TimeoutError
		var me *MemoryError
		var le *LoadError
		switch {
		case errors.As(err, &se):
			log().Warn("js handler failed", "method", r.Method, "path", r.URL.Path, "err", se.Error())
			// A fazt.realtime call's unavailable error that the handler
			// let through is the server's state: 503, which a client may
			// try again.
			code := domain.CodeInternal
			if se.Code == domain.CodeUnavailable {
				code = se.Code
			}
			writeError(w, se.Message, code, se.At)
		case errors.As(err, &le) && errors.As(le.Err, &te):
			// Tried again after loadRetry: so may the client.
			log().Debug("js handler not run: its script's load ran past the time limit", "method", r.Method, "path", r.URL.Path, "err", le.Err)
			writeError(w, le.Err.Error(), domain.CodeUnavailable, "")
		case errors.As(err, &te):
			log().Warn("js handler interrupted", "method", r.Method, "path", r.URL.Path, "limit", te.Limit)
			writeError(w, te.Error(), domain.CodeInternal, "")
		case errors.As(err, &me):
			// The server's state, not (only) the script's: it may be
			// tried again.
			log().Warn("js handler interrupted", "method", r.Method, "path", r.URL.Path, "err", me.Error())
			writeError(w, me.Error(), domain.CodeUnavailable, "")
		case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
			// The client left while the request waited for a run slot:
			// it was not run, and no one reads an answer.
			log().Debug("js handler not run: the client left while it waited for a run slot", "method", r.Method, "path", r.URL.Path)
		case domain.CodeOf(err) == domain.CodeUnavailable:
			log().Warn("js handler not run", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, err.Error(), domain.CodeUnavailable, "")
		default:
			// The server's own failure (the app folder unreadable, the
			// engine's crash): its text names the server's paths and
			// internals, for the log, not for a client.
			log().Error("js handler failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, "internal error (the server's log has it, under request "+reqID+")", domain.CodeInternal, "")
		}
		return
	}
	for k, vs := range resp.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body)
}

// request builds the handler's req: method, path, query (first value of
// each parameter), headers (lower-case names, values joined with ", "),
// body (text), bytes (an ArrayBuffer over the body), json (the body parsed, or null),
// remote, id and app.
func (rt *runtime) request(vm *goja.Runtime, r *http.Request, body []byte, reqID string) *goja.Object {
	query := vm.NewObject()
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			query.Set(k, vs[0])
		}
	}
	headers := vm.NewObject()
	for k, vs := range r.Header {
		headers.Set(strings.ToLower(k), strings.Join(vs, ", "))
	}
	// net/http takes Host out of the headers; a handler looks for it there.
	headers.Set("host", r.Host)
	// null for a body that is not JSON, or that JS cannot parse (a
	// number beyond a double's range).
	var parsed goja.Value = goja.Null()
	if len(body) > 0 && json.Valid(body) && domain.CheckNumbers(body) == nil {
		parsed = rt.fromJSON(vm, body)
	}
	req := vm.NewObject()
	req.Set("method", r.Method)
	req.Set("path", r.URL.Path)
	req.Set("query", query)
	req.Set("headers", headers)
	req.Set("body", string(body))
	// bytes: the body as it came, an ArrayBuffer over it (not a copy).
	// body, as text, has U+FFFD for each byte that is not UTF-8: a PNG or
	// a msgpack body is lost there.
	req.Set("bytes", vm.NewArrayBuffer(body))
	req.Set("json", parsed)
	req.Set("remote", r.RemoteAddr)
	req.Set("id", reqID)
	req.Set("app", rt.cur.app.Name)
	return req
}

// response turns a handler's settled value into an HTTP answer. A response
// object ({status, headers, json | body}) is answered as it says;
// undefined is 204; any other value is 200 JSON.
func (rt *runtime) response(vm *goja.Runtime, v goja.Value) (response, error) {
	resp := response{status: http.StatusOK, header: http.Header{}}
	if v == nil || goja.IsUndefined(v) {
		resp.status = http.StatusNoContent
		return resp, nil
	}
	obj, isObj := v.(*goja.Object)
	if !isObj || !isResponse(obj) {
		data, err := rt.toJSON(vm, v, maxJSONNesting)
		if err != nil {
			return resp, err
		}
		if data == nil {
			return resp, &ScriptError{Message: MainFile + " returned a value that is not JSON (" + clip(valueString(v), maxThrown) + ")"}
		}
		resp.header.Set("Content-Type", "application/json")
		resp.body = append(data, '\n')
		return resp, nil
	}
	if s := obj.Get("status"); s != nil && !goja.IsUndefined(s) {
		n := s.ToInteger()
		if n < 200 || n > 599 {
			return resp, &ScriptError{Message: fmt.Sprintf("%s returned status %d; want 200 to 599", MainFile, n)}
		}
		resp.status = int(n)
	}
	if h, ok := obj.Get("headers").(*goja.Object); ok {
		for _, k := range h.Keys() {
			if serverOwned[http.CanonicalHeaderKey(k)] {
				continue
			}
			// An array is a header given once per value: Set-Cookie
			// joined with commas would be one broken cookie.
			if a, ok := h.Get(k).(*goja.Object); ok && a.ClassName() == "Array" {
				n := a.Get("length").ToInteger()
				if n > maxHeaderValues {
					// new Array(2**32-1) is all holes, made at once: a
					// header line for each would exhaust the memory.
					return resp, &ScriptError{Message: fmt.Sprintf("%s returned %d values for header %s; at most %d", MainFile, n, k, maxHeaderValues)}
				}
				for i := int64(0); i < n; i++ {
					v := a.Get(strconv.FormatInt(i, 10))
					if v == nil { // a hole: as an undefined element
						v = goja.Undefined()
					}
					resp.header.Add(k, v.String())
				}
				continue
			}
			resp.header.Set(k, h.Get(k).String())
		}
	}
	if j := obj.Get("json"); j != nil && !goja.IsUndefined(j) {
		data, err := rt.toJSON(vm, j, maxJSONNesting)
		if err != nil {
			return resp, err
		}
		if data == nil {
			return resp, &ScriptError{Message: MainFile + " returned json that is not JSON"}
		}
		if resp.header.Get("Content-Type") == "" {
			resp.header.Set("Content-Type", "application/json")
		}
		resp.body = append(data, '\n')
		return resp, nil
	}
	b := obj.Get("body")
	switch {
	case b == nil || goja.IsUndefined(b) || goja.IsNull(b):
	default:
		switch x := exportFlat(b).(type) {
		case string:
			resp.body = []byte(x)
			if resp.header.Get("Content-Type") == "" {
				resp.header.Set("Content-Type", "text/plain; charset=utf-8")
			}
		case goja.ArrayBuffer:
			resp.body = append([]byte(nil), x.Bytes()...)
		case []byte:
			resp.body = append([]byte(nil), x...)
		default:
			return resp, &ScriptError{Message: fmt.Sprintf("%s returned a body that is %s; want a string, an ArrayBuffer or a Uint8Array (or json for a value)", MainFile, describeType(b))}
		}
		if resp.header.Get("Content-Type") == "" {
			resp.header.Set("Content-Type", "application/octet-stream")
		}
	}
	return resp, nil
}

// serverOwned are the headers a handler's answer may not set: the length
// and the connection's own, which net/http writes (a handler's
// Transfer-Encoding came out twice).
var serverOwned = map[string]bool{
	"Content-Length": true, "Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Transfer-Encoding": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// describeType names a value's kind for an error: "a number", "an object
// (Uint16Array)".
func describeType(v goja.Value) string {
	if o, ok := v.(*goja.Object); ok {
		return "an object (" + o.ClassName() + ")"
	}
	switch v.ExportType().Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int64, reflect.Float64:
		return "a number"
	}
	return "a " + v.ExportType().String()
}

func isResponse(obj *goja.Object) bool {
	if obj.ClassName() != "Object" {
		return false
	}
	keys := obj.Keys()
	if len(keys) == 0 {
		return false
	}
	for _, k := range keys {
		if !responseKeys[k] {
			return false
		}
	}
	if s := obj.Get("status"); s != nil && !goja.IsUndefined(s) {
		switch exportFlat(s).(type) {
		case int64, float64:
		default:
			return false
		}
	}
	return true
}

// writeError answers {"error", "code"} with the status of code and, for a
// script's exception, "at": where it was thrown.
func writeError(w http.ResponseWriter, msg string, code domain.Code, at string) {
	body := map[string]any{"error": msg, "code": code}
	if at != "" {
		body["at"] = at
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code.HTTPStatus())
	w.Write(append(b, '\n'))
}
