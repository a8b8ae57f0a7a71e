package js_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/js"
)

// benchHandler calls the app's /api/ handler b.N times from many
// goroutines, in process (no sockets: what is measured is the JS engine and
// the event log), and reports calls/s and, for a handler that makes
// broadcasts per call, committed broadcasts/s.
func benchHandler(b *testing.B, mainJS string, body string, broadcasts int) {
	e := newEnv(b, map[string]string{"bench/api/main.js": mainJS}, js.Config{})
	call := func() int {
		req := httptest.NewRequest("POST", "/api/messages", strings.NewReader(body))
		req.Host = "bench.localhost"
		w := httptest.NewRecorder()
		e.eng.ServeHTTP(w, req)
		return w.Code
	}
	if code := call(); code != http.StatusOK { // warm the pool and the log
		b.Fatalf("status %d", code)
	}
	b.ReportAllocs()
	// Group commit batches the appends that are waiting: many concurrent
	// callers are what a busy server has.
	b.SetParallelism(16)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := call(); code != http.StatusOK {
				b.Errorf("status %d", code)
				return
			}
		}
	})
	b.StopTimer()
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/elapsed, "calls/s")
	if broadcasts > 0 {
		head, err := e.log.Channel(context.Background(), "bench", "room")
		if err != nil || head.Head != uint64(b.N*broadcasts+broadcasts) { // +1 call warmed up
			b.Fatalf("channel head %d, want %d (%v)", head.Head, b.N*broadcasts+broadcasts, err)
		}
		b.ReportMetric(float64(b.N*broadcasts)/elapsed, "broadcasts/s")
	}
}

// BenchmarkHandlerBroadcast is a handler that broadcasts each request's
// message and answers its offset: one committed broadcast per call.
func BenchmarkHandlerBroadcast(b *testing.B) {
	benchHandler(b, `
module.exports = function (req) {
  const sent = fazt.realtime.broadcast("room", { text: req.json.text, at: Date.now() });
  return { offset: sent.offset, epoch: sent.epoch };
};`, `{"text":"hello, world"}`, 1)
}

// BenchmarkHandlerEcho is the same call without the broadcast: the cost
// of the JS engine alone (pooled runtime, request object, JSON answer).
func BenchmarkHandlerEcho(b *testing.B) {
	benchHandler(b, `
module.exports = function (req) {
  return { text: req.json.text, at: Date.now() };
};`, `{"text":"hello, world"}`, 0)
}

// BenchmarkHandlerAsyncBroadcast is the broadcast handler written as an
// async function that awaits a timer tick first.
func BenchmarkHandlerAsyncBroadcast(b *testing.B) {
	benchHandler(b, `
module.exports = async function (req) {
  await new Promise(r => setImmediate(r));
  const sent = fazt.realtime.broadcast("room", { text: req.json.text });
  return { offset: sent.offset };
};`, `{"text":"hello, world"}`, 1)
}

// BenchmarkHandlerArrayWork is a handler that goes through a list from
// the request with the array methods the server checks the length of
// before they start (filter, map, join, indexOf, reverse, apply): what
// those checks cost a run that uses them.
func BenchmarkHandlerArrayWork(b *testing.B) {
	items := make([]string, 20)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":%d,"ok":%t}`, i, i%3 != 0)
	}
	benchHandler(b, `
module.exports = function (req) {
  const xs = req.json.items, ids = xs.filter((x) => x.ok).map((x) => x.id);
  return { ids: ids.join(","), at: xs.indexOf(null), last: [...xs].reverse()[0].id, max: Math.max.apply(null, ids) };
};`, `{"items":[`+strings.Join(items, ",")+`]}`, 0)
}

// BenchmarkHandlerAfterChange is the first call after the script changed
// on disk: the version compiled again and a runtime made for it (the
// built-ins' stand-ins put in place), then the call; serial.
func BenchmarkHandlerAfterChange(b *testing.B) {
	const src = `module.exports = function (req) { return { text: req.json.text }; };`
	e := newEnv(b, map[string]string{"bench/api/main.js": src}, js.Config{})
	call := func() int {
		req := httptest.NewRequest("POST", "/api/messages", strings.NewReader(`{"text":"hello, world"}`))
		req.Host = "bench.localhost"
		w := httptest.NewRecorder()
		e.eng.ServeHTTP(w, req)
		return w.Code
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Of another size each time: a change is seen by size and time.
		e.write("bench/api/main.js", src+strings.Repeat(" ", i%2))
		if code := call(); code != http.StatusOK {
			b.Fatalf("status %d", code)
		}
	}
}

// BenchmarkHookOnPublish runs an onPublish hook that trims and rewrites
// each message, as the WebSocket transport calls it for a client publish.
func BenchmarkHookOnPublish(b *testing.B) {
	e := newEnv(b, map[string]string{"bench/api/realtime.js": `
exports.onPublish = function (client, channel, data) {
  return { text: String(data.text).trim().slice(0, 280), by: client.id };
};`}, js.Config{})
	c := domain.Client{ID: "c1", App: "bench", Remote: "127.0.0.1:1", ConnectedAt: 1, Query: map[string]string{"token": "t"}}
	data := json.RawMessage(`{"text":"  hello, world  "}`)
	ctx := context.Background()
	if out, _, err := e.eng.OnPublish(ctx, c, "room", data); err != nil || string(out) != `{"text":"hello, world","by":"c1"}` {
		b.Fatalf("onPublish: %s %v", out, err)
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := e.eng.OnPublish(ctx, c, "room", data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
