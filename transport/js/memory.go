package js

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path"
	goruntime "runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Memory is not counted per script: goja has no such count, and Go none
// per goroutine. What a runaway script makes itself (a loop that keeps
// every value it makes, or doubles a string) grows the process's heap
// until the allocation that fails ends the whole server, which no
// recover catches. While any run is under way, the engine reads the heap
// every memoryCheckEvery; past Config.MemoryLimit it starts a collection,
// and once the heap is still past the limit after it, or at once past
// tripFactor times the limit, it interrupts every run under way (it
// cannot tell which one grew it), each failing with a MemoryError, so
// that the collector can take back what they held before the next step
// takes the rest. A heap that stays past the limit with the runs ended is
// not the scripts' alone: from then on only growth past it counts, until
// the heap is back under the limit. A single call that asks for too much
// at once is not stopped this way: the built-ins' own bounds (sizes.go)
// are for those.

// memoryCheckEvery is how often the heap is read while runs are under
// way. A loop that keeps what it makes is stopped a few steps past the
// limit; one that doubles a string is not reliably: a collection (this
// one's, or Go's own) waits for a copy of gigabytes to end, and stops the
// check with everything else meanwhile, while the loop takes its next
// step.
const memoryCheckEvery = 10 * time.Millisecond

// tripFactor: past the limit this many times over, the runs are
// interrupted without waiting for a collection, which waits for a
// goroutine in a copy of gigabytes (a step of a doubling loop: no safe
// point for seconds) while the loop takes more steps. Garbage alone
// takes the heap this far only when what is live is past the limit too:
// the collector starts when the heap is twice what it found live.
const tripFactor = 2

// MemoryError is returned by a run interrupted because the process's heap
// passed Config.MemoryLimit.
type MemoryError struct {
	File  string
	Limit int64
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("%s was interrupted: the server's heap passed its limit for scripts (%d MiB) while it ran", e.File, (e.Limit+(1<<20)-1)>>20)
}

// heapBytes is the memory the heap's objects take, garbage not yet swept
// included.
func heapBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// defaultMemoryLimit is an eighth of the memory the process may have:
// the least of its cgroups' limits and the machine's memory; 0 (no limit)
// when neither is known (outside Linux). An eighth: the server has its
// own heap besides, and what a run makes past the limit before the next
// check, or its collection, ends.
func defaultMemoryLimit() int64 {
	total := machineMemory("/proc/meminfo")
	if c := cgroupMemory("/proc/self/cgroup", "/sys/fs/cgroup"); c > 0 && (total == 0 || c < total) {
		total = c
	}
	return total / 8
}

// machineMemory is MemTotal from meminfo (/proc/meminfo), in bytes; 0
// where there is none.
func machineMemory(meminfo string) int64 {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupMemory is the least memory limit of the process's cgroups, in
// bytes, from /proc/self/cgroup: cgroup v2's memory.max of its cgroup and
// each one above it, or v1's memory.limit_in_bytes and
// hierarchical_memory_limit (its parents'); 0 when none is set or known.
//
// cgroups is /proc/self/cgroup, and root where the hierarchies are
// mounted (/sys/fs/cgroup).
func cgroupMemory(cgroups, root string) int64 {
	b, err := os.ReadFile(cgroups)
	if err != nil {
		return 0
	}
	least := int64(0)
	takeValue := func(v string) {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 { // "max", or v1's unlimited
			return
		}
		if least == 0 || n < least {
			least = n
		}
	}
	take := func(file string) {
		if b, err := os.ReadFile(file); err == nil {
			takeValue(string(b))
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		dir := path.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "": // v2
			for {
				take(path.Join(root, dir, "memory.max"))
				if dir == "/" {
					break
				}
				dir = path.Dir(dir)
			}
		case slices.Contains(strings.Split(parts[1], ","), "memory"): // v1
			for _, base := range []string{path.Join(root, "memory", dir), path.Join(root, "memory")} { // the second: a container's own view
				take(path.Join(base, "memory.limit_in_bytes"))
				// The least of its and its parents' limits.
				if b, err := os.ReadFile(path.Join(base, "memory.stat")); err == nil {
					for _, l := range strings.Split(string(b), "\n") {
						if v, ok := strings.CutPrefix(l, "hierarchical_memory_limit "); ok {
							takeValue(v)
						}
					}
				}
			}
		}
	}
	return least
}

// watch counts rt's run, of context ctx, among the runs under way, with
// stop to end it for the heap; unwatch takes it out. The first run starts
// the watcher, which ends once no run is under way.
func (e *Engine) watch(rt *runtime, ctx context.Context, stop context.CancelFunc) {
	if e.cfg.MemoryLimit <= 0 {
		return
	}
	e.memMu.Lock()
	defer e.memMu.Unlock()
	if e.running == nil {
		e.running = map[*runtime]watchedRun{}
		e.stopping = map[*runtime]struct{}{}
	}
	e.running[rt] = watchedRun{ctx, stop}
	if !e.watching {
		e.watching = true
		go e.watchMemory()
	}
}

// watchedRun is a run under way, as the heap's check sees it.
type watchedRun struct {
	ctx  context.Context
	stop context.CancelFunc
}

func (e *Engine) unwatch(rt *runtime) {
	if e.cfg.MemoryLimit <= 0 {
		return
	}
	e.memMu.Lock()
	delete(e.running, rt)
	delete(e.stopping, rt)
	e.memMu.Unlock()
}

// collect starts a collection, and gives the count of collections ended
// that tells it has: one started now, or the one after the collection
// under way (which may have marked before the heap grew).
func (e *Engine) collect() uint64 {
	e.gcMu.Lock()
	defer e.gcMu.Unlock()
	if e.collecting {
		e.collectAgain = true
		return e.collected + 2
	}
	e.collecting = true
	go func() {
		for {
			goruntime.GC() // to its end, sweeping included
			e.gcMu.Lock()
			e.collected++
			if !e.collectAgain {
				e.collecting = false
				e.gcMu.Unlock()
				return
			}
			e.collectAgain = false
			e.gcMu.Unlock()
		}
	}()
	return e.collected + 1
}

// collections is how many collections collect has seen to their end.
func (e *Engine) collections() uint64 {
	e.gcMu.Lock()
	defer e.gcMu.Unlock()
	return e.collected
}

// settleWait is how long the check waits for the runs it interrupted to
// end before it collects and looks again.
const settleWait = time.Second

// floorMargin is the least growth past a heap that stayed past the limit
// that counts: a run's own garbage (a boxed number a step) is more than an
// eighth of a small limit.
const floorMargin = 64 << 20

// watchMemory reads the heap every memoryCheckEvery while any run is
// under way; see the top of this file.
func (e *Engine) watchMemory() {
	t := time.NewTicker(memoryCheckEvery)
	defer t.Stop()
	limit := e.cfg.MemoryLimit
	var (
		over     bool      // past the threshold, a collection asked for
		overAt   uint64    // the count of collections that says it has ended
		settling bool      // runs were interrupted: waiting for them to end, then for a collection
		settleAt uint64    // that collection's count; 0 until the runs have ended
		since    time.Time // when they were interrupted
	)
	for range t.C {
		e.memMu.Lock()
		if len(e.running) == 0 && !settling {
			e.watching = false
			e.memMu.Unlock()
			return
		}
		stopping := len(e.stopping)
		e.memMu.Unlock()
		collections := e.collections() // before the heap: a reading after the collection it counts
		bytes := heapBytes()
		if settling {
			switch {
			case stopping > 0 && time.Since(since) < settleWait:
				continue // the interrupted runs still hold what they made
			case settleAt == 0:
				settleAt = e.collect()
				continue
			case collections < settleAt:
				continue
			}
			settling, settleAt = false, 0
			// A run still not ended (in a built-in the interrupt does
			// not reach) may hold it: not the server's own, then.
			if bytes > limit && bytes > e.memFloor.Load() && stopping == 0 {
				e.memFloor.Store(bytes)
				e.log.Warn("the heap stays past the limit for scripts with their runs ended: only growth past it counts until it is back under; raise fazt serve --js-memory if this is the server's own", "heap_mib", bytes>>20, "limit_mib", limit>>20)
			}
			continue
		}
		threshold := limit
		if floor := e.memFloor.Load(); floor > 0 {
			switch {
			case bytes <= limit:
				e.memFloor.Store(0) // back under
			case bytes < floor:
				e.memFloor.Store(bytes) // the server's own heap shrank
				threshold = bytes + max(limit/8, floorMargin)
			default:
				threshold = floor + max(limit/8, floorMargin)
			}
		}
		grown := bytes > tripFactor*threshold
		switch {
		case bytes <= threshold:
			over = false
			continue
		case !over:
			over, overAt = true, e.collect()
			if !grown {
				continue
			}
		case collections < overAt && !grown:
			continue // no collection has ended since: it may be garbage
		}
		e.memMu.Lock()
		n := 0
		for rt, r := range e.running {
			if r.ctx.Err() != nil {
				continue // its limit passed, or its request went, first
			}
			rt.shortOfMemory.Store(true)
			r.stop()
			delete(e.running, rt)
			e.stopping[rt] = struct{}{}
			n++
		}
		e.memMu.Unlock()
		if n == 0 {
			// Each run under way is ending for its limit or its request
			// already: over stays, so no collection more is started
			// while they do (the watcher ends with them, and its state).
			continue
		}
		over = false
		e.log.Warn("js runs interrupted: the heap passed the limit for scripts", "heap_mib", bytes>>20, "limit_mib", limit>>20, "runs", n)
		settling, since = true, time.Now()
	}
}
