//go:build linux && cgo

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTimerSlack(t *testing.T) {
	good := map[string]time.Duration{
		"500us": 500 * time.Microsecond, "500µs": 500 * time.Microsecond, "1ms": time.Millisecond,
		"250000ns": 250 * time.Microsecond, "10ms": 10 * time.Millisecond, "0": 0, "0us": 0,
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

// `fazt serve` gives every thread of its process the timer slack of
// FAZT_TIMER_SLACK, 500 us when unset; "0" leaves the one it inherited.
// The slack is set before the Go runtime starts, so the threads it made
// first, its monitor among them, have it too.
func TestServeSetsItsTimerSlack(t *testing.T) {
	inherited := readSlack(t, "/proc/self/timerslack_ns")
	t.Setenv("FAZT_TIMER_SLACK", "") // restored when the test ends
	os.Unsetenv("FAZT_TIMER_SLACK")
	for _, tc := range []struct {
		env  []string
		want int64
	}{
		{nil, 500000},
		{[]string{"FAZT_TIMER_SLACK=2ms"}, 2000000},
		{[]string{"FAZT_TIMER_SLACK=0"}, inherited},
	} {
		dir := t.TempDir()
		p := startBinary(t, filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps"), tc.env...)
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task")
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) < 2 {
			t.Fatalf("%v: %d threads; want the runtime's too", tc.env, len(tasks))
		}
		for _, task := range tasks {
			if got := readSlack(t, "/proc/"+task.Name()+"/timerslack_ns"); got != tc.want {
				t.Errorf("%v: thread %s has a timer slack of %d ns; want %d", tc.env, task.Name(), got, tc.want)
			}
		}
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func readSlack(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
