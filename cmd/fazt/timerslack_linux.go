//go:build linux && cgo

package main

/*
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // CPU_COUNT
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

// fazt_parse_slack reads a timer slack: a whole number of ns, us (or µs)
// or ms ("500us"), at most 10 ms, or "0". It returns 0 and sets *ns, or
// -1.
static int fazt_parse_slack(const char *s, unsigned long *ns) {
	if (s[0] < '0' || s[0] > '9') {
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0) {
		return -1;
	}
	unsigned long long unit;
	if (strcmp(end, "ns") == 0) {
		unit = 1;
	} else if (strcmp(end, "us") == 0 || strcmp(end, "\xc2\xb5s") == 0 || strcmp(end, "\xce\xbcs") == 0) {
		unit = 1000;
	} else if (strcmp(end, "ms") == 0) {
		unit = 1000000;
	} else if (*end == 0 && v == 0) {
		unit = 1;
	} else {
		return -1;
	}
	if (v > 10000000ULL / unit) {
		return -1;
	}
	*ns = (unsigned long)(v * unit);
	return 0;
}

// fazt_slack_command reports whether the command line is `fazt serve
// ...` or `fazt bench ...`: argv[1], read from /proc, since constructors
// are not all given argv.
static int fazt_slack_command(void) {
	char buf[4096 + 8]; // argv[0], a path, then "serve" or "bench"
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return 0;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) {
		return 0;
	}
	buf[n] = 0;
	size_t first = strlen(buf);
	if ((ssize_t)first + 1 >= n) {
		return 0;
	}
	return strcmp(buf + first + 1, "serve") == 0 || strcmp(buf + first + 1, "bench") == 0;
}

// fazt_one_cpu reports whether the process may run on one processor
// only (its affinity), where the Go runtime's monitor shares it.
static int fazt_one_cpu(void) {
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1;
}

// fazt_set_timer_slack runs before the Go runtime starts, so that every
// thread it makes, its monitor (sysmon) first, inherits the slack: 500 us
// by default on one processor, where it was measured; FAZT_TIMER_SLACK
// anywhere. A bad FAZT_TIMER_SLACK changes nothing here; `fazt serve`
// and `fazt bench` refuse it.
__attribute__((constructor)) static void fazt_set_timer_slack(void) {
	if (!fazt_slack_command()) {
		return;
	}
	unsigned long ns = fazt_one_cpu() ? 500000 : 0;
	const char *v = getenv("FAZT_TIMER_SLACK");
	if (v != NULL && v[0] != 0 && fazt_parse_slack(v, &ns) != 0) {
		return;
	}
	if (ns > 0) {
		prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0);
	}
}
*/
import "C"

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On a server of one processor, `fazt serve` runs with a timer slack of
// 500 us (FAZT_TIMER_SLACK, which also applies with more), set before
// the Go runtime starts. The runtime's monitor thread (sysmon) shares
// that processor. After the process wakes, and after a cgo call (every
// SQLite commit) has held the processor, it sleeps 20 us at a time,
// fifty times over, and 50 us of slack makes each sleep about 100 us:
// about 5 ms, when the round of a publish's fan-out runs. At 50
// publishes a second it was switched in about 46 times per publish, and
// a median round had 45 socket writes that took over 20 us, against 2
// in the floor benchmark.
// With 500 us each sleep is about 520 us: about 9 times per publish, and
// 5 slow writes. `fazt bench fanout --rate 50` on one core: p99 7.9 ms
// instead of 9.9, and 24% of the core instead of 29% (BENCHMARKS.md,
// stop 24). The costs: a timer due while the process is idle, such as
// the end of a write delay, may fire up to the slack late; and the
// monitor, which hands the processor of a goroutine stuck in a system
// call or cgo call to the others once it has seen the call last a tick,
// sees that later (docs/operators.md, "One processor").
//
// `fazt bench` does the same, for its own readers: pinned to one core,
// the monitor interrupted them as it did the server's round, and at
// `fanout --rate 50` the tool read the last subscribers of a round later
// (its delay after their arrival at p99: 3.3 ms with the slack, 4.2
// without; BENCHMARKS.md, stop 25).

// timerSlack returns the timer slack of the process's threads, once
// FAZT_TIMER_SLACK, if set (empty is unset, as for the other variables),
// is checked the way it was read before the runtime started.
func timerSlack() (time.Duration, error) {
	if v := os.Getenv("FAZT_TIMER_SLACK"); v != "" {
		if _, ok := parseTimerSlack(v); !ok {
			return 0, fmt.Errorf("FAZT_TIMER_SLACK=%q: want a whole number of ns, us or ms up to 10ms, such as 500us, or 0 to keep the system's", v)
		}
	}
	ns, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("read the timer slack: %w", err)
	}
	return time.Duration(ns), nil
}

// parseTimerSlack reads a FAZT_TIMER_SLACK value with the parser that
// ran before the runtime did.
func parseTimerSlack(s string) (time.Duration, bool) {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	var ns C.ulong
	if C.fazt_parse_slack(cs, &ns) != 0 {
		return 0, false
	}
	return time.Duration(ns), true
}
