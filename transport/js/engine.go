// Package js runs an app's server-side JavaScript with goja: the HTTP
// handler api/main.js behind /api/..., and the hooks of api/realtime.js that
// decide who may connect, subscribe and publish. Scripts reach the server
// only through fazt.realtime, which acts on their own app's channels through
// the same ports (domain.Log, domain.History, domain.Members) as the
// WebSocket and server API paths, and console, which writes to the server
// log. They have no filesystem, process or network access; require() reads
// files of the app's own folder only.
//
// Each script is compiled once per version of its files and re-compiled
// when one of them changes on disk. Runtimes are pooled per version; a
// runtime runs one execution at a time, each under a time limit past which
// it is interrupted and thrown away.
package js

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// Store is what scripts need of the event log.
type Store interface {
	domain.Log
	domain.History
}

// Apps finds an app by name (transport/apps.Registry does).
type Apps interface {
	Lookup(name string) (*apps.App, error)
	LookupHost(host string) (*apps.App, error)
}

// Config configures an Engine. Zero fields take the defaults.
type Config struct {
	// HandlerTimeout bounds one run of api/main.js (default 5s). An app's
	// app.json may lower it (js.handler_timeout_ms). A run that must load
	// the script first has it for the load and again for the run: up to
	// twice it in all, after up to once it waiting for a slot.
	HandlerTimeout time.Duration
	// HookTimeout bounds one hook of api/realtime.js (default 1s), as
	// HandlerTimeout bounds a handler. An app's app.json may lower it
	// (js.hook_timeout_ms).
	HookTimeout time.Duration
	// MaxBodyBytes caps a request body passed to a handler (default 1 MiB).
	MaxBodyBytes int64
	// MaxConcurrent is how many runs of one app's script (its handler, or
	// its hooks) may be under way at once (default 8 per CPU). Others wait
	// their turn, in order, for at most their own time limit; the limit
	// starts when a run starts. More runnable scripts than CPUs only share
	// them more thinly, and a wall-clock limit would then interrupt scripts
	// for the load around them rather than for what they do. Counting per
	// app and file keeps one app's slow handlers from holding up another
	// app, or its own hooks.
	MaxConcurrent int
	// MaxIdle is how many idle runtimes each script version keeps (default
	// 8 per CPU, at least 16). Past it, a runtime freed by a burst of
	// concurrent runs is dropped rather than kept.
	MaxIdle int
	// IdleTimeout is how long a spare runtime may stay idle (default 1
	// minute). A burst of concurrent runs leaves a runtime per run behind
	// (up to MaxIdle), each with the script's module state; while the
	// engine holds any script, a sweep runs every IdleTimeout, and drops
	// all but a script's most recently used runtime once idle for longer,
	// one to two IdleTimeouts after their last run. The same sweep forgets
	// the scripts of app folders that are gone.
	IdleTimeout time.Duration
	// MemoryLimit bounds the process's heap while scripts run, in bytes:
	// past it (after a collection), every run under way is interrupted
	// with a MemoryError (memory.go). 0 is an eighth of the memory the
	// process may have (its cgroups' limit, or the machine's; off where
	// neither is known); a negative value turns the check off.
	MemoryLimit int64
	// VanishGrace is how long a script file that vanished, or was
	// emptied, after a version of it ran keeps that version running
	// (default 10s, as an app.json's settings are kept: fazt serve sets
	// both from --app-grace). A deploy that rewrites the app folder, an
	// editor's or git's write, removes or truncates the file for a
	// moment, in which no hook would run: every connect, subscribe and
	// publish would be allowed. Past it, the file is taken as gone (or
	// empty) for good.
	VanishGrace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = 5 * time.Second
	}
	if c.HookTimeout <= 0 {
		c.HookTimeout = time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 8 * goruntime.GOMAXPROCS(0)
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Minute
	}
	if c.MaxIdle <= 0 {
		c.MaxIdle = max(16, 8*goruntime.GOMAXPROCS(0))
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = defaultMemoryLimit()
	}
	if c.VanishGrace <= 0 {
		c.VanishGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Engine runs apps' scripts. It is the /api/ http.Handler and implements
// domain.Hooks. Safe for concurrent use.
type Engine struct {
	cfg     Config
	store   Store
	members domain.Members
	apps    Apps
	log     *slog.Logger

	mu       sync.Mutex
	scripts  map[string]*script // by app folder and file
	sweeping bool               // a sweep (dropIdle) is due
	closed   bool               // Close was called: no more sweeps
	sweep    *time.Timer        // the next sweep, while sweeping

	memMu    sync.Mutex
	running  map[*runtime]watchedRun // the runs under way
	stopping map[*runtime]struct{}   // the runs the heap's check ended, until they have
	watching bool                    // watchMemory is reading the heap
	memFloor atomic.Int64            // a heap that stayed past MemoryLimit with the runs ended (memory.go)

	gcMu         sync.Mutex
	collecting   bool   // collect's collection is under way
	collectAgain bool   // and another is asked for after it
	collected    uint64 // collect's collections ended
}

// script is what the engine holds of one file of one app folder.
type script struct {
	v *version // the current version; nil while the file is absent
	// absent is when a stat last found no file, while v is nil.
	absent time.Time
	// gone is when a stat first found the file of v missing or empty,
	// while v is kept for VanishGrace; zero otherwise.
	gone time.Time
	// slots has one entry per run under way, of any version of the file.
	// A run takes one after current has returned them: a sweep in
	// between can forget the entry, and a new one for the same file, if
	// its folder came back at once, would count separately for that run.
	slots chan struct{}
}

var (
	_ domain.Hooks = (*Engine)(nil)
	_ http.Handler = (*Engine)(nil)
)

// New returns an engine over the event log, the membership and the apps.
func New(cfg Config, store Store, members domain.Members, registry Apps) *Engine {
	cfg.setDefaults()
	return &Engine{
		cfg: cfg, store: store, members: members, apps: registry, log: cfg.Logger,
		scripts: map[string]*script{},
	}
}

// limit returns the time limit of file for app: the server's, or the app's
// when that is lower.
func (e *Engine) limit(app *apps.App, file string) time.Duration {
	d, ms := e.cfg.HandlerTimeout, app.Settings.JS.HandlerTimeoutMS
	if file == RealtimeFile {
		d, ms = e.cfg.HookTimeout, app.Settings.JS.HookTimeoutMS
	}
	// Compared in milliseconds: a number of them past time.Duration's
	// range would wrap, to a limit of a few microseconds, say.
	if ms > 0 && time.Duration(ms) < d/time.Millisecond {
		return time.Duration(ms) * time.Millisecond
	}
	return d
}

// loadRetry is how long a load that ran past its time limit is answered
// without being tried again.
const loadRetry = 5 * time.Second

// absentRecheck is how long a script file found missing is taken as
// missing: most apps have no api/realtime.js, and a stat for every hook of
// every connection would cost more than the hook. A file that exists is
// checked before each run (version.fresh), so an edit applies at once; a
// new file, within this long, as a new app.json does.
const absentRecheck = time.Second

// current returns the current version of app's file, making a new one when
// a file of the cached one changed (or sharing the one another request
// made meanwhile, see install), and the file's run slots; nil when the app
// has no such file.
func (e *Engine) current(app *apps.App, file string) (*version, chan struct{}, error) {
	if app.Dir == "" {
		return nil, nil, nil
	}
	key := scriptKey(app.Dir, file)
	e.mu.Lock()
	var v *version
	var seen, gone time.Time
	s := e.scripts[key]
	if s != nil {
		v, seen, gone = s.v, s.absent, s.gone
	}
	e.mu.Unlock()
	if v != nil && v.fresh() {
		if !gone.IsZero() { // back as it was: a later vanishing starts a new grace
			e.mu.Lock()
			if s.v == v {
				s.gone = time.Time{}
			}
			e.mu.Unlock()
		}
		return v, s.slots, nil
	}
	now := time.Now()
	if s != nil && v == nil && now.Sub(seen) < absentRecheck {
		return nil, nil, nil
	}
	fi, err := os.Stat(filepath.Join(app.Dir, filepath.FromSlash(file)))
	absent := errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir()
	if v != nil {
		// A file that ran, or one it require()d, now gone or empty: most
		// often a deploy or an editor in the middle of writing it. Its
		// version runs on for the grace, so that the app's hooks do not
		// fall open meanwhile (a rule module read as {}).
		gone := ""
		switch {
		case absent || err == nil && fi.Size() == 0 && (*v.deps.Load())[file].size > 0:
			gone = file
		case err == nil:
			gone = v.depVanished(stampOf(fi))
		}
		if gone != "" {
			if kept, ok := e.keepVanished(app.Name, key, gone, v, now); ok {
				return kept, s.slots, nil
			}
		}
	}
	if absent {
		e.mu.Lock()
		if sc := e.entry(key); sc.v == v {
			sc.v, sc.absent, sc.gone = nil, now, time.Time{}
		}
		e.mu.Unlock()
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	nv, err := newVersion(app.Name, app.Dir, file, stampOf(fi), e.cfg.MaxIdle)
	if err != nil {
		return nil, nil, err
	}
	got, slots := e.install(key, v, nv)
	if got == nv && v != nil {
		e.log.Info("js script changed; reloading", "app", app.Name, "file", file)
	}
	return got, slots, nil
}

// keepVanished decides, for v, the version of key whose file a stat at
// now found missing or empty, which version runs: v for VanishGrace from
// the first such stat, or the version another request installed
// meanwhile (the file back). ok is false once the grace is over, or when
// another request has found the file gone for good.
func (e *Engine) keepVanished(app, key, file string, v *version, now time.Time) (*version, bool) {
	e.mu.Lock()
	sc := e.entry(key)
	if sc.v != v {
		cur := sc.v
		e.mu.Unlock()
		return cur, cur != nil
	}
	first := sc.gone.IsZero()
	if first {
		sc.gone = now
	}
	since := now.Sub(sc.gone)
	e.mu.Unlock()
	if first {
		e.log.Warn("js script gone or empty; the version that ran before is kept meanwhile, as a deploy may be writing it",
			"app", app, "file", file, "grace", e.cfg.VanishGrace)
	}
	if since < e.cfg.VanishGrace {
		return v, true
	}
	e.log.Info("js script gone or empty past its grace; taken as it is now", "app", app, "file", file)
	return nil, false
}

// scriptKey is the key of an app folder's file among the engine's scripts.
func scriptKey(dir, file string) string { return dir + "\x00" + file }

// install makes nv, made by a request that found seen (nil: none) stale,
// the version of key, and returns it with the file's run slots. If
// another request has installed a version since, and it is fresh, that
// one is returned and nv closed: requests that meet a change together
// share one version and its runtimes, where each would otherwise run in
// a version of its own, all but the last one's dropped after that run.
func (e *Engine) install(key string, seen, nv *version) (*version, chan struct{}) {
	e.mu.Lock()
	s := e.entry(key)
	if cur := s.v; cur != nil && cur != seen {
		e.mu.Unlock()
		// fresh stats files: not under the lock that every run takes.
		if cur.fresh() {
			nv.root.Close()
			return cur, s.slots
		}
		e.mu.Lock()
		s = e.entry(key) // the last one to install wins, if another came
	}
	s.v, s.absent, s.gone = nv, time.Time{}, time.Time{}
	e.mu.Unlock()
	return nv, s.slots
}

// entry returns the script entry of key, making it if there is none; e.mu
// is held. While the engine holds any, a sweep is due.
func (e *Engine) entry(key string) *script {
	s := e.scripts[key]
	if s == nil {
		s = &script{slots: make(chan struct{}, e.cfg.MaxConcurrent)}
		e.scripts[key] = s
	}
	if !e.sweeping && !e.closed {
		e.sweeping = true
		e.sweep = time.AfterFunc(e.cfg.IdleTimeout, e.dropIdle)
	}
	return s
}

// Close stops the sweeps. Runs may go on; a closed engine's runtimes are
// dropped with it.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.sweeping {
		e.sweep.Stop()
		e.sweeping = false
	}
}

// run executes app's file: it takes a runtime of the current version from
// the pool (loading the script into a new one if none is idle), calls call
// on it and passes what that settles to to finish. ok is false when the
// app has no such file. A load, when the pool has no idle runtime, and
// the run are each bounded by the file's time limit.
func (e *Engine) run(ctx context.Context, app *apps.App, file string, logger func() *slog.Logger,
	call func(rt *runtime, vm *goja.Runtime) (goja.Value, error),
	finish func(rt *runtime, vm *goja.Runtime, v goja.Value) error,
) (ok bool, err error) {
	v, slots, err := e.current(app, file)
	if err != nil || v == nil {
		return false, err
	}
	if err := v.failedForGood(); err != nil {
		return true, &LoadError{err}
	}
	// Built only once the file exists: most apps have no realtime.js, and
	// a logger with attributes costs more than the check.
	log := logger()
	limit := e.limit(app, file)
	wait := limit
	if untilDone(ctx) {
		// A run that must not be dropped (onDisconnect) waits for a slot
		// for as long as its caller allows, not just the time limit.
		if d, ok := ctx.Deadline(); ok {
			wait = max(wait, time.Until(d))
		}
	}
	if err := acquire(ctx, slots, wait); err != nil {
		return true, err
	}
	defer func() { <-slots }()
	if detached(ctx) {
		// Once started, it runs to its end (within its limit) whatever
		// its caller does.
		ctx = context.WithoutCancel(ctx)
	}
	ex := &execution{ctx: ctx, app: app, log: log}
	rt := v.get()
	if rt == nil {
		// No idle runtime: a load. A load that ran past the limit lately
		// is answered instead (one run at a time tries again, once each
		// loadRetry); the runtimes the pool already has serve on.
		claim, err := v.mayLoad(limit)
		if err != nil {
			return true, &LoadError{err}
		}
		if rt, err = e.newRuntime(v, ex, limit); err != nil {
			// err is described already (run's settle), within the limit.
			var passing passingError
			transient := errors.As(err, &passing)
			var se *ScriptError
			var te *TimeoutError
			switch {
			case errors.As(err, &se) && !transient:
				// A syntax error or a throw while loading would fail
				// the same way next time; until a file changes, say so
				// without running it again. One that a fazt.realtime
				// call's passing failure (the log unavailable, say) may
				// have failed is tried again at the next run.
				v.fail(err)
			case errors.As(err, &te) && ctx.Err() == nil:
				// A busy machine may have been the cause, or a loop at
				// load: tried again after loadRetry, and answered
				// unavailable meanwhile without running. (One its
				// caller's deadline cut short says nothing of the load.)
				v.failFor(err, loadRetry)
			default:
				v.unclaim(claim)
			}
			if errors.Is(err, context.Canceled) {
				// Its caller went (a client that left): not a failure.
				log.Debug("js script's load cut short: its caller went", "err", err)
			} else {
				log.Error("js script failed to load", "err", err)
			}
			return true, &LoadError{err}
		}
		v.loaded()
	}
	// The run has its whole limit, after a load of its own: a slow load
	// (a busy machine) then leaves the script's answer its time, and a
	// run past its limit is always the script's own.
	reusable, err := rt.run(ex, limit,
		func(vm *goja.Runtime) (goja.Value, error) { return call(rt, vm) },
		func(vm *goja.Runtime, val goja.Value) error { return finish(rt, vm, val) })
	if reusable {
		v.put(rt)
	}
	return true, err
}

// dropIdle is the sweep, every IdleTimeout while the engine holds any
// script, until Close. See dropIdleAt.
func (e *Engine) dropIdle() {
	e.dropIdleAt(time.Now())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sweeping = len(e.scripts) > 0 && !e.closed; e.sweeping {
		e.sweep = time.AfterFunc(e.cfg.IdleTimeout, e.dropIdle)
	}
}

// dropIdleAt drops the runtimes idle for longer than the IdleTimeout as of
// now, all but the most recently used of each version, and forgets what
// the engine holds of app folders that are gone, and of files found
// missing absentRecheck or more before now, once none of their runs is
// under way. An app folder that is deleted is never asked for again:
// without this, its last runtime would stay for the life of the process,
// and its folder open until the collector finalized the version.
func (e *Engine) dropIdleAt(now time.Time) {
	e.forget(foldersGone(e.sweepAt(now)), now)
}

// sweepAt is dropIdleAt's first part, under the lock: it drops idle
// runtimes and forgotten findings of missing files, and returns the
// current versions, whose folders may be gone.
func (e *Engine) sweepAt(now time.Time) map[string]*version {
	before := now.Add(-e.cfg.IdleTimeout)
	e.mu.Lock()
	defer e.mu.Unlock()
	held := map[string]*version{}
	for key, s := range e.scripts {
		if s.v == nil {
			if now.Sub(s.absent) >= absentRecheck && len(s.slots) == 0 {
				delete(e.scripts, key)
			}
			continue
		}
		if dropped := s.v.dropIdle(before); dropped > 0 {
			e.log.Debug("js runtimes dropped after idling", "app", s.v.app, "file", s.v.file, "dropped", dropped)
		}
		held[key] = s.v
	}
	return held
}

// foldersGone keeps, of versions, those whose app folder is gone. It runs
// without the engine's lock, which every run takes.
func foldersGone(versions map[string]*version) map[string]*version {
	for key, v := range versions {
		if _, err := os.Stat(v.dir); !errors.Is(err, fs.ErrNotExist) {
			delete(versions, key)
		}
	}
	return versions
}

// forget drops the entries of gone, found at now, unless a run has
// changed one since (found its file missing, made a new version: the next
// sweep looks again), one of its runs is under way, or its folder has not
// been gone for VanishGrace: a deploy may be writing it again, and until
// then its version runs (current), as it would not once forgotten. A
// folder first found gone here starts that grace.
func (e *Engine) forget(gone map[string]*version, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key, v := range gone {
		if s := e.scripts[key]; s != nil && s.v == v && len(s.slots) == 0 {
			if s.gone.IsZero() {
				s.gone = now
			}
			if now.Sub(s.gone) < e.cfg.VanishGrace {
				continue
			}
			delete(e.scripts, key)
			e.log.Debug("js script forgotten: its app folder is gone", "app", v.app, "file", v.file)
		}
	}
}

// detachedKey marks a context whose run, once it has a slot, is not
// cancelled with the context: an HTTP handler whose client hangs up. One
// still waiting for a slot then is dropped.
type detachedKey struct{}

func detached(ctx context.Context) bool { return ctx.Value(detachedKey{}) != nil }

// untilDoneKey marks a context whose hook run waits for a run slot until
// the context ends.
type untilDoneKey struct{}

func untilDone(ctx context.Context) bool { return ctx.Value(untilDoneKey{}) != nil }

// acquire takes one of slots, waiting at most limit. Blocked senders on a
// channel are served in order, so waiting runs start first come, first
// served.
func acquire(ctx context.Context, slots chan struct{}, limit time.Duration) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-t.C:
		return domain.Errorf(domain.CodeUnavailable, "server busy: %d runs of the script were under way for all of %s", cap(slots), limit)
	case <-ctx.Done():
		return fmt.Errorf("%w (%w)", errNotRun, ctx.Err())
	}
}

// errNotRun is a run given up while it waited for a run slot: its caller
// stopped waiting (a client that left, onDisconnect's wait ended).
var errNotRun = errors.New("not run: its caller stopped waiting for a run slot")

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
