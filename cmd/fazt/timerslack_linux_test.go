//go:build linux && cgo

package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseTimerSlack(t *testing.T) {
	good := map[string]time.Duration{
		"500us": 500 * time.Microsecond, "500µs": 500 * time.Microsecond, "1ms": time.Millisecond,
		"250000ns": 250 * time.Microsecond, "500μs": 500 * time.Microsecond, "10ms": 10 * time.Millisecond, "0": 0, "0us": 0,
	}
	for s, want := range good {
		if got, ok := parseTimerSlack(s); !ok || got != want {
			t.Errorf("%q: %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "2", "-1us", "+1us", " 1us", "1.5ms", "1s", "11ms", "1 ms", "1msx", "us", "18446744073709551616ns"} {
		if got, ok := parseTimerSlack(s); ok {
			t.Errorf("%q: took it as %v; want it refused", s, got)
		}
	}
}

// `fazt serve` runs with the timer slack of FAZT_TIMER_SLACK, 500 us
// when unset or empty; "0" leaves the one it inherited. The server says
// so in its log, reading its own; and, where this test may read another
// process's (root, or CAP_SYS_NICE), every thread has it: the slack is
// set before the Go runtime starts, so the threads it made first, its
// monitor among them, have it too.
func TestServeSetsItsTimerSlack(t *testing.T) {
	inherited, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAZT_TIMER_SLACK", "") // restored when the test ends
	os.Unsetenv("FAZT_TIMER_SLACK")
	for _, tc := range []struct {
		env  []string
		want time.Duration
	}{
		{nil, 500 * time.Microsecond},
		{[]string{"FAZT_TIMER_SLACK="}, 500 * time.Microsecond},
		{[]string{"FAZT_TIMER_SLACK=2ms"}, 2 * time.Millisecond},
		{[]string{"FAZT_TIMER_SLACK=0"}, time.Duration(inherited)},
	} {
		dir := t.TempDir()
		p := startBinary(t, filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps"), tc.env...)
		if want := "timer_slack=" + tc.want.String(); !strings.Contains(p.serving, want) {
			t.Errorf("%v: the server logged %q; want %s", tc.env, p.serving, want)
		}
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task")
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, task := range tasks {
			b, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue // not ours to read, or the thread has ended
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if time.Duration(got) != tc.want {
				t.Errorf("%v: thread %s has a timer slack of %d ns; want %d", tc.env, task.Name(), got, tc.want)
			}
			checked++
		}
		if checked == 0 {
			t.Logf("%v: no thread's timer slack could be read (another process's needs CAP_SYS_NICE)", tc.env)
		}
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}
