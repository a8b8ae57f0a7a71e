package js

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// A burst of concurrent runs leaves a runtime per run in the pool. Calls
// one at a time then keep taking the most recently used one, so the spares
// age and are dropped while the calls go on; at rest the last one stays,
// and nothing is scheduled any more.
func TestSpareRuntimesAreDropped(t *testing.T) {
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
	defer log.Close()
	members := projections.NewMembership(ws.Encoder{}, func(ctx context.Context, app, channel string) (uint64, string, error) {
		return 0, "", nil
	}, 0)
	const timeout = 100 * time.Millisecond
	e := New(Config{IdleTimeout: timeout, MaxConcurrent: 8, MaxIdle: 8}, log, members, apps.NewRegistry(dir))
	call := func(wait string) {
		req := httptest.NewRequest("GET", "/api/x?wait="+wait, nil)
		req.Host = "a.localhost"
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("status %d: %s", w.Code, w.Body)
		}
	}
	idle := func() (n int, sweeping bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, v := range e.versions {
			v.imu.Lock()
			n += len(v.idle)
			v.imu.Unlock()
		}
		return n, e.sweeping
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); call("1000") }()
	}
	wg.Wait()
	// Runs that overlapped each had a runtime of their own: on a slow
	// machine not all 8 may have.
	if n, sweeping := idle(); n < 2 || !sweeping {
		t.Fatalf("after a burst of 8: %d idle runtimes, sweeping %v; want spares, and a sweep due", n, sweeping)
	}
	calls := 0
	for deadline := time.Now().Add(30 * time.Second); ; calls++ {
		if n, _ := idle(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			n, _ := idle()
			t.Fatalf("%d calls one at a time over 30 s: still %d idle runtimes", calls, n)
		}
		call("")
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(3 * timeout)
	if n, sweeping := idle(); n != 1 || sweeping {
		t.Fatalf("at rest: %d idle runtimes, sweeping %v; want 1, false", n, sweeping)
	}
	call("") // the kept runtime serves
	if n, _ := idle(); n != 1 {
		t.Fatalf("after one more call: %d idle runtimes", n)
	}
}
