package js

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// poolEngine is an engine over a real log, with one app "a" whose handler
// waits ?wait= ms before it answers.
func poolEngine(t *testing.T, cfg Config) (e *Engine, call func(wait string)) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(t.TempDir(), "apps")
	if err := os.MkdirAll(filepath.Join(dir, "a", "api"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := `module.exports = async function (req) {
  if (req.query.wait) await new Promise(r => setTimeout(r, Number(req.query.wait)));
  return { ok: true };
};`
	if err := os.WriteFile(filepath.Join(dir, "a", MainFile), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := events.Open(context.Background(), events.Config{Path: filepath.Join(t.TempDir(), "fazt.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	members := projections.NewMembership(ws.Encoder{}, func(ctx context.Context, app, channel string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	e = New(cfg, log, members, apps.NewRegistry(dir))
	return e, func(wait string) {
		req := httptest.NewRequest("GET", "/api/x?wait="+wait, nil)
		req.Host = "a.localhost"
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	}
}

// burst runs n calls at once, each waiting a while so that they overlap.
func burst(n int, call func(string)) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); call("500") }()
	}
	wg.Wait()
}

// idleOf returns the idle runtimes of every version, oldest first, and
// whether a sweep is due.
func idleOf(e *Engine) (idle []idleRuntime, sweeping bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range e.versions {
		v.imu.Lock()
		idle = append(idle, v.idle...)
		v.imu.Unlock()
	}
	return idle, e.sweeping
}

// A burst of concurrent runs leaves a runtime per run in the pool. Calls
// one at a time then keep taking the most recently used one, so the others
// stay as they were, and a sweep drops them, keeping that one.
func TestSpareRuntimesAreDropped(t *testing.T) {
	// The sweep's own timer is an hour away: the test sweeps by hand.
	e, call := poolEngine(t, Config{IdleTimeout: time.Hour, MaxConcurrent: 8, MaxIdle: 8})
	burst(8, call)
	// Runs that overlapped each had a runtime of their own: on a slow
	// machine not all 8 may have.
	spares, sweeping := idleOf(e)
	if len(spares) < 2 || !sweeping {
		t.Fatalf("after a burst of 8: %d idle runtimes, sweeping %v; want spares, and a sweep due", len(spares), sweeping)
	}
	for range 20 {
		call("")
	}
	idle, _ := idleOf(e)
	if len(idle) != len(spares) || !slices.Equal(idle[:len(idle)-1], spares[:len(spares)-1]) {
		t.Fatalf("20 calls one at a time used the runtimes under the top of the pool")
	}
	e.dropIdleAt(time.Now().Add(30 * time.Minute)) // none idle for an hour yet
	if idle, sweeping := idleOf(e); len(idle) != len(spares) || !sweeping {
		t.Fatalf("sweep before the timeout: %d idle runtimes, sweeping %v", len(idle), sweeping)
	}
	top := idle[len(idle)-1].rt
	e.dropIdleAt(time.Now().Add(2 * time.Hour))
	if idle, sweeping := idleOf(e); len(idle) != 1 || idle[0].rt != top || sweeping {
		t.Fatalf("sweep after the timeout: %d idle runtimes (the most recent kept: %v), sweeping %v; want 1, true, false",
			len(idle), len(idle) == 1 && idle[0].rt == top, sweeping)
	}
	call("") // the kept runtime serves
	if idle, _ := idleOf(e); len(idle) != 1 || idle[0].rt != top {
		t.Fatalf("after one more call: %d idle runtimes", len(idle))
	}
}

// With a short timeout the engine's own timer drops the spares, says so,
// then stops.
func TestIdleSweepRunsUntilNoSpares(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	e, call := poolEngine(t, Config{IdleTimeout: 50 * time.Millisecond, MaxConcurrent: 8, MaxIdle: 8,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	burst(8, call)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		idle, sweeping := idleOf(e)
		if len(idle) == 1 && !sweeping {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after a burst: %d idle runtimes, sweeping %v", len(idle), sweeping)
		}
	}
	// The burst's runs overlapped, so there were spares to drop.
	if !strings.Contains(logs.String(), "js runtimes dropped after idling") {
		t.Fatalf("no runtime was dropped; log:\n%s", logs.String())
	}
}
