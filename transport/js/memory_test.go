package js_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/js"
)

// TestARunawayScriptIsInterruptedForMemory: a handler that keeps all it
// makes grew the heap until an allocation failed, which ends the whole
// server. Past the engine's memory limit for scripts it is interrupted,
// its request answered 503 (the server's state: it may be tried again)
// with why, and the next run goes on.
func TestARunawayScriptIsInterruptedForMemory(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function (req) {
  if (req.path === "/api/ok") return "ok";
  const keep = [];
  for (;;) keep.push("x".repeat(1 << 20) + keep.length);
};`}, js.Config{MemoryLimit: 256 << 20, HandlerTimeout: time.Minute})
	code, body := e.get("a", "/api/grow")
	want := "api/main.js was interrupted: the server's heap passed its limit for scripts (256 MiB) while it ran"
	if b := decodeErr(t, body); code != 503 || b.Error != want || b.Code != "unavailable" {
		t.Fatalf("grow: %d %.300s, want 503 %s", code, body, want)
	}
	if code, body := e.get("a", "/api/ok"); code != 200 || strings.TrimSpace(body) != `"ok"` {
		t.Errorf("after: %d %.300s", code, body)
	}
	if !strings.Contains(e.logs.String(), "the heap passed the limit for scripts") {
		t.Errorf("not logged:\n%.2000s", e.logs.String())
	}
}

// TestARunawayHookIsInterruptedForMemory: the same for a hook, whose
// client is told unavailable (the server's state, not the hook's
// answer), with why.
func TestARunawayHookIsInterruptedForMemory(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/realtime.js": `
exports.onPublish = function (client, channel, data) {
  const keep = [];
  for (;;) keep.push("x".repeat(1 << 20) + keep.length);
};`}, js.Config{MemoryLimit: 256 << 20, HookTimeout: time.Minute})
	c := domain.Client{ID: "c1", App: "a", Remote: "127.0.0.1:1", ConnectedAt: 1}
	_, _, err := e.eng.OnPublish(context.Background(), c, "room", json.RawMessage(`{"text":"hi"}`))
	if domain.CodeOf(err) != domain.CodeUnavailable || err == nil || !strings.Contains(err.Error(), "api/realtime.js was interrupted: the server's heap passed its limit for scripts (256 MiB)") {
		t.Fatalf("onPublish: %v (%s)", err, domain.CodeOf(err))
	}
}

// TestAHeapThatStaysPastTheLimitIsNotTheScripts: a limit below what the
// server holds of its own interrupts the run under way, but once the
// heap stays past it with that run ended, only growth past that counts:
// the runs that follow are not interrupted in turn.
func TestAHeapThatStaysPastTheLimitIsNotTheScripts(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function (req) {
  if (req.path === "/api/spin") for (;;);
  const end = Date.now() + 100; while (Date.now() < end);
  return "ok";
};`}, js.Config{MemoryLimit: 1 << 20, HandlerTimeout: 30 * time.Second})
	// The heap is past 1 MiB before any script runs: the check stops the
	// spin once a collection has shown it stays so, whatever the load.
	code, body := e.get("a", "/api/spin")
	if code != 503 || !strings.Contains(decodeErr(t, body).Error, "heap passed its limit") {
		t.Fatalf("spin: %d %.300s", code, body)
	}
	// Once it has ended, and a collection has run, what stays is the
	// server's: runs of 100 ms (ten checks each) go on. Bounded.
	for i := 0; i < 10; i++ {
		if code, body := e.get("a", "/api/"); code != 200 {
			t.Fatalf("run %d after: %d %.300s", i, code, body)
		}
	}
	if !strings.Contains(e.logs.String(), "the heap stays past the limit for scripts") {
		t.Errorf("the heap that stayed not logged:\n%.2000s", e.logs.String())
	}
}
