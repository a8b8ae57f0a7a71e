package js

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
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
	t.Cleanup(e.Close)
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
	for _, s := range e.scripts {
		if v := s.v; v != nil {
			v.imu.Lock()
			idle = append(idle, v.idle...)
			v.imu.Unlock()
		}
	}
	return idle, e.sweeping
}

// Requests that meet a script's change together share one version:
// without that, each made its own, all but the last one's runtimes were
// dropped after a single run, and a burst left no spares. install is
// where they meet: a version made by a request that saw none loaded
// gives way to the fresh one installed meanwhile, and one made by a
// request that found the installed version stale replaces it.
func TestInstallSharesAFreshVersion(t *testing.T) {
	e, _ := poolEngine(t, Config{IdleTimeout: time.Hour})
	app := lookupA(t, e)
	first, _, err := e.current(app, MainFile)
	if err != nil || first == nil {
		t.Fatalf("current: %v, %v", first, err)
	}
	key := scriptKey(app.Dir, MainFile)
	made := func() *version {
		fi, err := os.Stat(filepath.Join(app.Dir, MainFile))
		if err != nil {
			t.Fatal(err)
		}
		v, err := newVersion(app.Name, app.Dir, MainFile, stampOf(fi), 8)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got, _ := e.install(key, nil, made()); got != first {
		t.Fatalf("a version made meanwhile was installed over the fresh one")
	}
	second := made()
	if got, _ := e.install(key, first, second); got != second {
		t.Fatalf("a version made for a stale one was not installed")
	}
	if v, _, _ := e.current(app, MainFile); v != second {
		t.Fatalf("current is %p, want the version installed last (%p)", v, second)
	}
}

// The same through current, from many requests at once: they get one
// version. On one processor the lookups may not overlap at all, and the
// test could not fail: it skips there, and
// TestInstallSharesAFreshVersion checks the meeting itself.
func TestFirstRequestsShareAVersion(t *testing.T) {
	if goruntime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two processors for the lookups to overlap")
	}
	e, _ := poolEngine(t, Config{IdleTimeout: time.Hour})
	app := lookupA(t, e)
	const n = 32
	got := make([]*version, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, _, err := e.current(app, MainFile)
			if err != nil || v == nil {
				t.Errorf("current: %v, %v", v, err)
			}
			got[i] = v
		}()
	}
	close(start)
	wg.Wait()
	for i, v := range got {
		if v != got[0] {
			t.Fatalf("request %d got a version of its own (%p, request 0 %p)", i, v, got[0])
		}
	}
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
	// The script is still held, so the sweep stays due.
	if idle, sweeping := idleOf(e); len(idle) != 1 || idle[0].rt != top || !sweeping {
		t.Fatalf("sweep after the timeout: %d idle runtimes (the most recent kept: %v), sweeping %v; want 1, true, true",
			len(idle), len(idle) == 1 && idle[0].rt == top, sweeping)
	}
	call("") // the kept runtime serves
	if idle, _ := idleOf(e); len(idle) != 1 || idle[0].rt != top {
		t.Fatalf("after one more call: %d idle runtimes", len(idle))
	}
}

// With a short timeout the engine's own timer drops the spares and says
// so; once the app folder is gone, it forgets the script, and stops.
func TestIdleSweepRunsWhileScriptsAreHeld(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	e, call := poolEngine(t, Config{IdleTimeout: 50 * time.Millisecond, MaxConcurrent: 8, MaxIdle: 8, VanishGrace: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	burst(8, call)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if idle, _ := idleOf(e); len(idle) == 1 {
			break
		}
		if time.Now().After(deadline) {
			idle, sweeping := idleOf(e)
			t.Fatalf("30 s after a burst: %d idle runtimes, sweeping %v", len(idle), sweeping)
		}
	}
	// The burst's runs overlapped, so there were spares to drop.
	if !strings.Contains(logs.String(), "js runtimes dropped after idling") {
		t.Fatalf("no runtime was dropped; log:\n%s", logs.String())
	}
	if err := os.RemoveAll(appDir(t, e)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if held, sweeping := heldOf(e); held == 0 && !sweeping {
			break
		}
		if time.Now().After(deadline) {
			held, sweeping := heldOf(e)
			t.Fatalf("30 s after the app folder was removed: %d scripts held, sweeping %v", held, sweeping)
		}
	}
	if !strings.Contains(logs.String(), "js script forgotten") {
		t.Fatalf("the forgetting was not logged; log:\n%s", logs.String())
	}
}

// lookupA returns poolEngine's app.
func lookupA(t *testing.T, e *Engine) *apps.App {
	t.Helper()
	app, err := e.apps.Lookup("a")
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// heldOf returns how many scripts e holds and whether a sweep is due.
func heldOf(e *Engine) (held int, sweeping bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.scripts), e.sweeping
}

// appDir returns the folder of the one app whose scripts e holds.
func appDir(t *testing.T, e *Engine) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.scripts {
		if s.v != nil {
			return s.v.dir
		}
	}
	t.Fatal("no version of a script is held")
	return ""
}

// A deleted app is never asked for again: the sweep forgets what the
// engine holds of it (its last runtime and its folder's open descriptor),
// but not while one of its runs is under way. A file found missing is
// forgotten once the finding is older than absentRecheck.
func TestScriptsOfARemovedAppAreForgotten(t *testing.T) {
	// The sweep's own timer is an hour away: the test sweeps by hand.
	e, call := poolEngine(t, Config{IdleTimeout: time.Hour})
	call("")
	app := lookupA(t, e)
	if v, _, err := e.current(app, RealtimeFile); v != nil || err != nil {
		t.Fatalf("a missing realtime.js: version %v, %v", v, err)
	}
	if held, sweeping := heldOf(e); held != 2 || !sweeping {
		t.Fatalf("after a call and a hook's lookup: %d scripts held, sweeping %v; want 2, true", held, sweeping)
	}
	e.dropIdleAt(time.Now()) // less than absentRecheck after the finding
	if held, _ := heldOf(e); held != 2 {
		t.Fatalf("a sweep before absentRecheck: %d scripts held, want 2", held)
	}
	e.dropIdleAt(time.Now().Add(2 * time.Hour))
	if held, sweeping := heldOf(e); held != 1 || !sweeping {
		t.Fatalf("a sweep with the app in place: %d scripts held, sweeping %v; want 1 (main.js), true", held, sweeping)
	}

	// A run under way keeps the script through a sweep. (It waits 2 s,
	// for the test's sweep to come first.)
	done := make(chan struct{})
	go func() { defer close(done); call("2000") }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		e.mu.Lock()
		running := 0
		for _, s := range e.scripts {
			running += len(s.slots)
		}
		e.mu.Unlock()
		if running == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never started")
		}
	}
	if err := os.RemoveAll(app.Dir); err != nil {
		t.Fatal(err)
	}
	e.dropIdleAt(time.Now().Add(2 * time.Hour))
	if held, _ := heldOf(e); held != 1 {
		t.Fatalf("a sweep during a run of a removed app: %d scripts held, want 1", held)
	}
	<-done
	// The first sweep to find the folder gone starts its grace (a deploy
	// may be writing it again); a sweep past it forgets the script.
	e.dropIdleAt(time.Now().Add(2 * time.Hour))
	if held, _ := heldOf(e); held != 1 {
		t.Fatalf("a sweep after the app folder was removed, within its grace: %d scripts held, want 1", held)
	}
	e.dropIdleAt(time.Now().Add(3 * time.Hour))
	if held, _ := heldOf(e); held != 0 {
		t.Fatalf("a sweep past the grace after the app folder was removed: %d scripts held, want 0", held)
	}
	// Once closed, the engine sweeps no more, even for a script it makes.
	e.Close()
	if err := os.MkdirAll(filepath.Join(app.Dir, "api"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app.Dir, MainFile), []byte(`module.exports = () => ({})`), 0o644); err != nil {
		t.Fatal(err)
	}
	call("")
	if held, sweeping := heldOf(e); held != 1 || sweeping {
		t.Fatalf("a call after Close: %d scripts held, sweeping %v; want 1, false", held, sweeping)
	}
}

// A run that finds the file missing while a sweep looks at the folders
// changes the entry the sweep found: the sweep leaves it for the next one.
func TestSweepLeavesAnEntryARunChanged(t *testing.T) {
	e, call := poolEngine(t, Config{IdleTimeout: time.Hour, VanishGrace: time.Nanosecond})
	call("")
	app := lookupA(t, e)
	if err := os.RemoveAll(app.Dir); err != nil {
		t.Fatal(err)
	}
	gone := foldersGone(e.sweepAt(time.Now()))
	if len(gone) != 1 {
		t.Fatalf("%d versions of a removed folder found, want 1", len(gone))
	}
	// The first run to find the file gone keeps its version for the
	// grace (which that run is within); the next finds the grace over.
	if v, _, err := e.current(app, MainFile); v == nil || err != nil {
		t.Fatalf("the script just removed: version %v, %v", v, err)
	}
	if v, _, err := e.current(app, MainFile); v != nil || err != nil {
		t.Fatalf("the removed script: version %v, %v", v, err)
	}
	e.forget(gone, time.Now())
	if held, _ := heldOf(e); held != 1 {
		t.Fatalf("%d scripts held after the sweep, want 1 (the missing file's finding)", held)
	}
}

// TestHookFailuresTheClientGets maps each way a hook can fail to what the
// client is told: the hook's own answers (a throw, its time limit) are
// not_allowed; a run that found no slot in time, or that the heap's
// check ended, the server's state, is unavailable, which fazt.js tries
// again (it gives a not_allowed subscription up for good); a fazt.realtime
// error the hook let through keeps its code; a script that does not load
// is unavailable, and the engine's own failure internal, which fazt.js
// tries again too.
func TestHookFailuresTheClientGets(t *testing.T) {
	e := &Engine{}
	log := slog.New(slog.DiscardHandler)
	full := make(chan struct{}, 1) // one run slot, taken
	full <- struct{}{}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		err  error
		want domain.Code
	}{
		{&ScriptError{Message: "Error: token required"}, domain.CodeNotAllowed},
		{&TimeoutError{Limit: time.Second}, domain.CodeNotAllowed},
		{acquire(context.Background(), full, time.Millisecond), domain.CodeUnavailable},
		{&MemoryError{File: RealtimeFile, Limit: 1 << 30}, domain.CodeUnavailable},
		{&ScriptError{Message: "Error: unavailable: event log cannot commit", Code: domain.CodeUnavailable}, domain.CodeUnavailable},
		{&ScriptError{Message: "Error: internal: boom", Code: domain.CodeInternal}, domain.CodeInternal},
		{&LoadError{&ScriptError{Message: "SyntaxError: Unexpected token"}}, domain.CodeUnavailable}, // not run again until a file changes
		{&LoadError{passingError{&ScriptError{Message: "Error: unavailable: x", Code: domain.CodeUnavailable}}}, domain.CodeUnavailable},
		{&LoadError{&TimeoutError{Limit: time.Second}}, domain.CodeUnavailable}, // tried again once each loadRetry
		{errors.New("something else"), domain.CodeInternal},
		{acquire(cancelled, full, time.Hour), domain.CodeUnavailable},                  // not run: the connection ended first
		{fmt.Errorf("%s: %w", RealtimeFile, context.Canceled), domain.CodeUnavailable}, // cut short by the connection's end
	} {
		if got := domain.CodeOf(e.refusal(log, "onSubscribe", tc.err)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}

// An app's time limit is the lower of its own and the server's; none of
// 0 or less, or one past time.Duration's range in milliseconds, which
// converted would wrap to a few microseconds.
func TestAnAppsTimeLimit(t *testing.T) {
	e := &Engine{cfg: Config{HandlerTimeout: 5 * time.Second, HookTimeout: time.Second}}
	for ms, want := range map[int]time.Duration{
		0: 5 * time.Second, -1: 5 * time.Second, 300: 300 * time.Millisecond, 9000: 5 * time.Second,
		-18446744073709: 5 * time.Second, 18446744073709: 5 * time.Second, 9223372036855: 5 * time.Second,
	} {
		app := &apps.App{Name: "a", Settings: apps.Settings{JS: apps.JSLimits{HandlerTimeoutMS: ms}}}
		if got := e.limit(app, "main.js"); got != want {
			t.Errorf("handler_timeout_ms %d: limit %s, want %s", ms, got, want)
		}
	}
}

// A load that ran past its limit is answered for loadRetry without a new
// load, but a run that finds an idle runtime of the version runs on it;
// once that time is over, one run loads again and the others are
// answered meanwhile (not each its own load of the whole limit); a load
// that works clears it.
func TestALoadPastItsLimitHoldsBackLoadsOnly(t *testing.T) {
	e, call := poolEngine(t, Config{IdleTimeout: time.Hour})
	call("") // a runtime in the pool
	v, _, err := e.current(lookupA(t, e), MainFile)
	if err != nil || v == nil {
		t.Fatalf("version: %v", err)
	}
	past := &TimeoutError{File: MainFile, Limit: time.Second}
	v.failFor(past, time.Hour)
	call("") // fails the test unless 200: the idle runtime serves it
	var held *HeldError
	if _, err := v.mayLoad(time.Second); !errors.As(err, &held) || !errors.Is(err, past) || !strings.Contains(err.Error(), "tried again in") {
		t.Fatalf("a load within the time: %v, want it held back", err)
	}
	v.failFor(past, -time.Second) // the time is over
	claim, err := v.mayLoad(time.Second)
	if err != nil || claim == nil {
		t.Fatalf("the first load after the time: %v", err)
	}
	if _, err := v.mayLoad(time.Second); !errors.Is(err, past) {
		t.Fatalf("a second load while the first tries again: %v, want it held back", err)
	}
	// A load that ends otherwise (its caller went) lets the next one
	// claim the retry, one run still.
	v.unclaim(claim)
	if claim, err := v.mayLoad(time.Second); err != nil || claim == nil {
		t.Fatalf("after the claim was let go: %v, %v", claim, err)
	}
	if _, err := v.mayLoad(time.Second); !errors.Is(err, past) {
		t.Fatalf("a second load after the claim was let go: %v, want it held back", err)
	}
	// A failure until a file changes is not made one for a time.
	v.fail(errors.New("SyntaxError"))
	v.failFor(past, time.Hour)
	if v.failedForGood() == nil {
		t.Fatal("a load past its limit replaced a failure until a file changes")
	}
	v.loadErr.Store(nil)
	v.failFor(past, -time.Second)
	if claim, err := v.mayLoad(time.Second); err != nil || claim == nil {
		t.Fatalf("a claim: %v, %v", claim, err)
	}
	v.loaded() // the claimant's load worked
	if claim, err := v.mayLoad(time.Second); err != nil || claim != nil || v.failed() != nil {
		t.Fatalf("after a load that worked: %v, %v, %v", claim, err, v.failed())
	}
}
