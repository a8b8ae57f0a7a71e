package js_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/transport/js"
)

// TestARunawayScriptIsInterruptedForMemory: a handler that keeps all it
// makes grew the heap until an allocation failed, which ends the whole
// server. Past the engine's memory limit for scripts it is interrupted,
// its request answered 500 with why, and the next run goes on.
func TestARunawayScriptIsInterruptedForMemory(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/main.js": `
module.exports = function (req) {
  if (req.path === "/api/ok") return "ok";
  const keep = [];
  for (;;) keep.push("x".repeat(1 << 20) + keep.length);
};`}, js.Config{MemoryLimit: 256 << 20, HandlerTimeout: time.Minute})
	code, body := e.get("a", "/api/grow")
	want := "api/main.js was interrupted: the server's heap passed its limit for scripts (256 MiB) while it ran"
	if code != 500 || decodeErr(t, body).Error != want {
		t.Fatalf("grow: %d %.300s, want 500 %s", code, body, want)
	}
	if code, body := e.get("a", "/api/ok"); code != 200 || strings.TrimSpace(body) != `"ok"` {
		t.Errorf("after: %d %.300s", code, body)
	}
	if !strings.Contains(e.logs.String(), "the heap passed the limit for scripts") {
		t.Errorf("not logged:\n%.2000s", e.logs.String())
	}
}
