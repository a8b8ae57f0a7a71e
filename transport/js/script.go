package js

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja_nodejs/require"
)

// Script files, relative to the app folder. They are also the ids the audit
// log records for what a script did (domain.ActorJS).
const (
	MainFile     = "api/main.js"
	RealtimeFile = "api/realtime.js"
)

// outside marks a require() path that climbs out of the app folder. The
// path resolver returns it instead of a path, and the source loader refuses
// it with a message that names what was asked for.
const outside = "\x00outside:"

// version is one state of a script and of every file it required: the
// registry that compiled them (each file is compiled once per version and
// the programs are shared by every runtime of the version) and the pool of
// runtimes that ran it. A change to any of its files on disk makes a new
// version; runtimes of the old one finish what they run and are dropped.
// Safe for concurrent use.
type version struct {
	app  string
	dir  string // the app folder
	file string // MainFile or RealtimeFile
	root *os.Root
	// folder is the app folder the root opened, as it was then.
	folder fs.FileInfo
	made   time.Time
	reg    *require.Registry

	// deps are the files loaded, relative to dir, as they were when
	// loaded. The map is never changed once published: every request
	// checks it without a lock, and a load copies it.
	mu   sync.Mutex // serializes writers of deps
	deps atomic.Pointer[map[string]stamp]
	// loadErr, once set, is answered for every execution until a file
	// changes: a script that does not compile or throws while loading would
	// fail the same way each time. One whose until is set is answered
	// until then only (a load past the time limit).
	loadErr atomic.Pointer[loadFailure]
	// absentChecked is when (unix ns) a working version last looked for
	// the files require() did not find: at most once a second.
	absentChecked atomic.Int64
	// noDisconnect is set when a load of realtime.js found no
	// onDisconnect function among its exports (mayDisconnect).
	noDisconnect atomic.Bool

	// idle are the runtimes waiting for an execution, the most recently
	// used last: the next execution takes that one, so that runtimes a
	// burst left behind stay unused and age until dropIdle drops them.
	imu     sync.Mutex
	idle    []idleRuntime
	maxIdle int
}

// idleRuntime is a runtime in the pool and when it went there.
type idleRuntime struct {
	rt    *runtime
	since time.Time
}

// stamp is what tells a file changed: its modification time and size
// and, where the system gives them (Linux), its status change time and
// inode. A deploy that keeps modification times (rsync -a, cp -p, an
// archive, a build with SOURCE_DATE_EPOCH) and writes a file of the same
// size, or renames a new file over it, changes only those: no tool can
// set the change time.
type stamp struct {
	mod    time.Time
	size   int64
	change int64 // unix ns; 0 where unknown
	ino    uint64
}

func stampOf(fi fs.FileInfo) stamp {
	st := stamp{mod: fi.ModTime(), size: fi.Size()}
	st.change, st.ino = changeOf(fi)
	return st
}

// missing is the stamp of a file that require() looked for and did not
// find. A version whose load failed watches for it to appear: the file
// its script asked for may be what it lacked.
var missing = stamp{size: -1}

// unreadable is the stamp of a file that require() found but could not
// read: a symlink out of the app folder, a file without read permission.
// Fixing that need not change the file's size or time, so a version whose
// load failed on one is tried again once it is retryUnreadable old.
var unreadable = stamp{size: -2}

const retryUnreadable = time.Second

// maxAbsent bounds the files a version watches for that require() did
// not find or could not read. A script that requires by a name from its
// request (require("./routes/" + name), in a try) would otherwise note
// every name a scanner tries: the map, copied at each note, and the
// stats of the once-a-second look for them, grew without bound.
const maxAbsent = 256

// newVersion opens the app folder for a script whose file currently has
// stamp st.
func newVersion(app, dir, file string, st stamp, maxIdle int) (*version, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open app folder: %w", err)
	}
	folder, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("open app folder: %w", err)
	}
	v := &version{
		app: app, dir: dir, file: file, root: root, folder: folder,
		made: time.Now(), maxIdle: maxIdle,
	}
	v.deps.Store(&map[string]stamp{file: st})
	v.reg = require.NewRegistry(require.WithLoader(v.load), require.WithPathResolver(resolve))
	// Registry-local modules win over the globally registered ones: these
	// names never reach a host's process, whatever else the binary links.
	for _, name := range []string{"process", "node:process", "fs", "node:fs", "child_process", "node:child_process", "net", "node:net", "http", "node:http"} {
		v.reg.RegisterNativeModule(name, refuseModule(name))
	}
	// require("console") is the console that writes to the server log, not
	// goja_nodejs's, which writes to the process's stdout.
	for _, name := range []string{"console", "node:console"} {
		v.reg.RegisterNativeModule(name, func(vm *goja.Runtime, m *goja.Object) { m.Set("exports", vm.Get("console")) })
	}
	return v, nil
}

func refuseModule(name string) require.ModuleLoader {
	return func(vm *goja.Runtime, _ *goja.Object) {
		panic(vm.NewGoError(fmt.Errorf("require(%q): not available to app scripts", name)))
	}
}

// resolve is the require() path resolver. Module paths are relative to the
// app folder ("api/main.js"); an absolute path starts at the app folder
// too, and a relative one that climbs above it is marked as outside.
func resolve(base, p string) string {
	if strings.HasPrefix(base, outside) {
		return base
	}
	var joined string
	if strings.HasPrefix(p, "/") {
		joined = strings.TrimPrefix(path.Clean(p), "/")
		if joined == "" {
			joined = "."
		}
	} else {
		joined = path.Join(base, p)
	}
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return outside + p
	}
	return joined
}

// load is the require() source loader: it reads files of the app folder
// only (os.Root refuses symlinks and paths that lead out of it) and notes
// each file it read, so that a change to any of them is seen.
func (v *version) load(p string) ([]byte, error) {
	if asked, ok := strings.CutPrefix(p, outside); ok {
		return nil, fmt.Errorf("require(%q): outside the app folder", asked)
	}
	name := filepath.FromSlash(p)
	fi, err := v.root.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist), err == nil && fi.IsDir():
		v.note(p, missing)
		return nil, require.ModuleFileDoesNotExistError
	case err != nil:
		v.note(p, unreadable)
		return nil, fmt.Errorf("require(%q): outside the app folder or unreadable", p)
	}
	src, err := v.root.ReadFile(name)
	if err != nil {
		v.note(p, unreadable)
		return nil, fmt.Errorf("require(%q): %v", p, err)
	}
	// The stamp was taken before the read: a change racing the read shows
	// up as stale on the next check, never as a missed edit.
	v.note(p, stampOf(fi))
	return src, nil
}

// note records the stamp of a file the version looked at, the first time
// it read it: a file found missing or unreadable before, then read (a
// require() that failed, tried again once the file was there), takes the
// stamp it was read with, so that its edits are seen.
func (v *version) note(p string, st stamp) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.deps.Load()
	absent := func(st stamp) bool { return st == missing || st == unreadable }
	if was, seen := old[p]; seen && (!absent(was) || absent(st)) {
		return
	}
	if absent(st) {
		n := 0 // absent files noted
		for _, s := range old {
			if absent(s) {
				n++
			}
		}
		if n >= maxAbsent {
			return
		}
	}
	deps := make(map[string]stamp, len(old)+1)
	for k, s := range old {
		deps[k] = s
	}
	deps[p] = st
	v.deps.Store(&deps)
}

// fresh reports whether no file of the version changed since it was read.
// The files require() did not find, or found and could not read, count on
// every run for a version that failed to load; a working script looks for
// the missing ones once a second (an optional require() at load, such as
// a local config file, sees the file appear), not on every run.
func (v *version) fresh() bool {
	// Each file is looked up by its path, with a plain stat: one system
	// call, where the root's opens and closes each folder on the way (five
	// calls for api/lib/x.js; the check took 4.9% of a busy handler's CPU
	// that way). This only decides whether to load again: a load reads
	// through the root. But the root stays on the folder it opened, and
	// the path names whatever folder is there now: one swapped in under
	// the same name (a deploy's rename or symlink flip) is a change, even
	// where its files' stamps match.
	if fi, err := os.Stat(v.dir); err != nil || !os.SameFile(fi, v.folder) {
		return false
	}
	failed := v.failedForGood() != nil
	absent := failed
	if !failed {
		now := time.Now().UnixNano()
		if last := v.absentChecked.Load(); now-last >= int64(absentRecheck) && v.absentChecked.CompareAndSwap(last, now) {
			absent = true
		}
	}
	for p, st := range *v.deps.Load() {
		if st == unreadable && !failed || st == missing && !absent {
			continue
		}
		if st == unreadable {
			if time.Since(v.made) >= retryUnreadable {
				return false
			}
			continue
		}
		fi, err := os.Stat(filepath.Join(v.dir, filepath.FromSlash(p)))
		if st == missing {
			if err == nil && !fi.IsDir() || err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false // it appeared
			}
			continue
		}
		if err != nil || stampOf(fi) != st {
			return false
		}
	}
	return true
}

// depVanished returns a file the version require()d that is empty now
// where it was not (a deploy or an editor in the middle of writing it),
// or gone while the version's own file, at stamp main, is as it was read;
// "" when none is. A module gone while the own file changed too is taken
// as a deploy that moved or dropped it on purpose: its new version loads
// at once. It stats each file, and is asked only of a version found
// stale.
func (v *version) depVanished(main stamp) string {
	deps := *v.deps.Load()
	mainAsRead := deps[v.file] == main
	for p, st := range deps {
		if p == v.file || st == missing || st == unreadable {
			continue
		}
		fi, err := os.Stat(filepath.Join(v.dir, filepath.FromSlash(p)))
		switch {
		case err == nil && !fi.IsDir() && fi.Size() == 0 && st.size > 0:
			return p
		case mainAsRead && (errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir()):
			return p
		}
	}
	return ""
}

// loadFailure is a load's failure, answered for every run until a file
// changes, or, when until is set, until then.
type loadFailure struct {
	err   error
	until time.Time
}

func (v *version) failed() error {
	if p := v.loadErr.Load(); p != nil && (p.until.IsZero() || time.Now().Before(p.until)) {
		return p.err
	}
	return nil
}

// failedForGood is the load's failure that holds until a file changes.
func (v *version) failedForGood() error {
	if p := v.loadErr.Load(); p != nil && p.until.IsZero() {
		return p.err
	}
	return nil
}

// mayLoad says whether a run may load the script now: not while a load
// that ran past its limit is answered (failFor: a HeldError), and, once
// that time is over, for one run only, whose load (of at most limit)
// holds the others back meanwhile: claim is what it holds them with, for
// unclaim, nil when nothing did. A load that works clears it (loaded).
func (v *version) mayLoad(limit time.Duration) (claim *loadFailure, err error) {
	for {
		p := v.loadErr.Load()
		if p == nil {
			return nil, nil
		}
		if p.until.IsZero() {
			return nil, p.err
		}
		if until := p.until; time.Now().Before(until) {
			return nil, &HeldError{Err: p.err, Until: until}
		}
		claim = &loadFailure{err: p.err, until: time.Now().Add(limit + loadRetry)}
		if v.loadErr.CompareAndSwap(p, claim) {
			return claim, nil
		}
	}
}

// unclaim lets go of claim, a load's hold that its load did not end with
// one of its own (its caller went, a passing failure): the next run
// claims the retry, one at a time still.
func (v *version) unclaim(claim *loadFailure) {
	if claim != nil {
		v.loadErr.CompareAndSwap(claim, &loadFailure{err: claim.err, until: time.Now()})
	}
}

// noteHooks notes, from a load's exports, whether the script has an
// onDisconnect: one without costs a disconnect no wait for the
// membership (Engine.OnDisconnect). A script that sets it later, outside
// its load, runs it all the same, without that wait.
func (v *version) noteHooks(exports goja.Value) {
	obj, ok := exports.(*goja.Object)
	has := false
	if ok {
		_, has = goja.AssertFunction(obj.Get(HookDisconnect))
	}
	v.noDisconnect.Store(!has)
}

// loaded clears a load's failure that held for a time: a load worked.
func (v *version) loaded() {
	if p := v.loadErr.Load(); p != nil && !p.until.IsZero() {
		v.loadErr.CompareAndSwap(p, nil)
	}
}

// HeldError answers a run that would load a script whose last load ran
// past its time limit (Err), until Until: the load is tried again then.
type HeldError struct {
	Err   error
	Until time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("not run: its last load ran past the time limit (%v); it is tried again in %s", e.Err, max(0, time.Until(e.Until)).Round(time.Millisecond))
}

func (e *HeldError) Unwrap() error { return e.Err }

func (v *version) fail(err error) { v.loadErr.Store(&loadFailure{err: err}) }

// failFor answers err for d: a load past the time limit, which a busy
// machine may have caused and may not cause again, is tried again after
// d, whatever the number of runs asking meanwhile (a loop at load costs
// its limit once each d, not once per run).
func (v *version) failFor(err error, d time.Duration) {
	for {
		p := v.loadErr.Load()
		if p != nil && p.until.IsZero() {
			return // a failure until a file changes stays
		}
		if v.loadErr.CompareAndSwap(p, &loadFailure{err: err, until: time.Now().Add(d)}) {
			return
		}
	}
}

// get returns the most recently used idle runtime of the version, or nil.
func (v *version) get() *runtime {
	v.imu.Lock()
	defer v.imu.Unlock()
	n := len(v.idle)
	if n == 0 {
		return nil
	}
	rt := v.idle[n-1].rt
	v.idle[n-1] = idleRuntime{}
	v.idle = v.idle[:n-1]
	return rt
}

// put keeps rt for the next execution, unless enough are idle already.
func (v *version) put(rt *runtime) {
	v.imu.Lock()
	defer v.imu.Unlock()
	if len(v.idle) < v.maxIdle {
		v.idle = append(v.idle, idleRuntime{rt, time.Now()})
	}
}

// dropIdle drops the runtimes idle since before, but not the most recently
// used one, which keeps the next execution from loading the script again.
// It returns how many it dropped.
func (v *version) dropIdle(before time.Time) (dropped int) {
	v.imu.Lock()
	defer v.imu.Unlock()
	n := 0
	for n < len(v.idle)-1 && v.idle[n].since.Before(before) {
		n++
	}
	if n > 0 {
		// Copy down, so that the dropped runtimes are not kept alive by
		// the slice's array.
		k := copy(v.idle, v.idle[n:])
		clear(v.idle[k:])
		v.idle = v.idle[:k]
	}
	return n
}
