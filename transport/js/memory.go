package js

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Memory is not counted per script: goja has no such count, and Go none
// per goroutine. What a runaway script makes itself (a loop that doubles
// a string, or keeps every value it makes) grows the process's heap until
// the allocation that fails ends the whole server, which no recover
// catches. While any run is under way, the engine reads the heap every
// memoryCheckEvery; past Config.MemoryLimit it collects, and if the heap
// is still past the limit it interrupts every run under way (it cannot
// tell which one grew it), each failing with a MemoryError, so that the
// collector can take back what they held before the next step takes the
// rest. A single call that asks for too much at once is not stopped this
// way: the built-ins' own bounds (sizes.go) are for those.

// memoryCheckEvery is how often the heap is read while runs are under
// way: a doubling loop's steps take longer than this from about 64 MiB on
// (a copy of that much), so the check falls between steps.
const memoryCheckEvery = 10 * time.Millisecond

// errShortOfMemory is the cause of a run interrupted for the heap.
var errShortOfMemory = errors.New("the server's memory for scripts ran out")

// MemoryError is returned by a run interrupted because the process's heap
// passed Config.MemoryLimit.
type MemoryError struct {
	File  string
	Limit int64
}

func (e *MemoryError) Error() string {
	return fmt.Sprintf("%s was interrupted: the server's heap passed its limit for scripts (%d MiB) while it ran", e.File, e.Limit>>20)
}

// heap is the memory the heap's objects take, garbage not yet collected
// included, and how many collections have ended.
func heap() (bytes int64, collections uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		bytes = int64(s[0].Value.Uint64())
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		collections = s[1].Value.Uint64()
	}
	return bytes, collections
}

// defaultMemoryLimit is half of the memory the process may have: its
// cgroup's limit, or the machine's; 0 (no limit) when neither is known.
func defaultMemoryLimit() int64 {
	total := machineMemory()
	if c := cgroupMemory(); c > 0 && (total == 0 || c < total) {
		total = c
	}
	return total / 2
}

// machineMemory is MemTotal from /proc/meminfo, in bytes; 0 elsewhere.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
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

// cgroupMemory is the cgroup v2 memory.max of the process's cgroup, in
// bytes; 0 when unlimited or unknown.
func cgroupMemory() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0 // "max"
	}
	return n
}

// watch counts run among the runs under way, with stop to interrupt it
// for the heap; the returned func takes it out. The first run starts the
// watcher, which ends once no run is under way.
func (e *Engine) watch(rt *runtime, stop context.CancelCauseFunc) func() {
	if e.cfg.MemoryLimit <= 0 {
		return func() {}
	}
	e.memMu.Lock()
	defer e.memMu.Unlock()
	if e.running == nil {
		e.running = map[*runtime]context.CancelCauseFunc{}
	}
	e.running[rt] = stop
	if !e.watching {
		e.watching = true
		go e.watchMemory()
	}
	return func() {
		e.memMu.Lock()
		delete(e.running, rt)
		e.memMu.Unlock()
	}
}

// watchMemory reads the heap every memoryCheckEvery while any run is
// under way. Past the limit it starts a collection, without waiting for
// it: a collection waits for the goroutine it would stop to reach a safe
// point, and a copy of gigabytes (a step of a doubling loop) is none for
// seconds, in which the loop took two more steps. It interrupts every run
// under way once the heap is still past the limit after a collection
// ended, or at once past twice the limit.
func (e *Engine) watchMemory() {
	t := time.NewTicker(memoryCheckEvery)
	defer t.Stop()
	over, overAt := false, uint64(0) // past the limit since collection overAt
	for range t.C {
		e.memMu.Lock()
		if len(e.running) == 0 {
			e.watching = false
			e.memMu.Unlock()
			return
		}
		e.memMu.Unlock()
		bytes, collections := heap()
		switch {
		case bytes <= e.cfg.MemoryLimit:
			over = false
			continue
		case !over:
			over, overAt = true, collections
			go goruntime.GC() // garbage counts until it is collected
			if bytes <= 2*e.cfg.MemoryLimit {
				continue
			}
		case collections == overAt && bytes <= 2*e.cfg.MemoryLimit:
			continue // no collection has ended since: it may be garbage
		}
		over = false
		e.memMu.Lock()
		n := len(e.running)
		for rt, stop := range e.running {
			stop(errShortOfMemory)
			delete(e.running, rt)
		}
		e.memMu.Unlock()
		e.log.Warn("js runs interrupted: the heap passed the limit for scripts", "heap_mib", bytes>>20, "limit_mib", e.cfg.MemoryLimit>>20, "runs", n)
	}
}
