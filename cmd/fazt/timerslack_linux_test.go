//go:build linux && cgo

package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
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

// `fazt serve` runs with the timer slack of FAZT_TIMER_SLACK; unset or
// empty, 500 us when its CPU affinity allows one processor and the one it
// inherited otherwise; "0" keeps the inherited one. The server says so
// in its log, reading its own. Where this test may read another
// process's threads (root, or CAP_SYS_NICE), it also checks that every
// thread has it: the slack is set before the Go runtime starts, so the
// threads it made first, its monitor among them, have it too. Without
// that, only the log's figure is checked, which one thread reads.
func TestServeSetsItsTimerSlack(t *testing.T) {
	inherited, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := 0; i < 1024 && cpu < 0; i++ {
		if cpus.IsSet(i) {
			cpu = i
		}
	}
	taskset, tasksetErr := exec.LookPath("taskset")
	t.Setenv("FAZT_TIMER_SLACK", "") // restored when the test ends
	os.Unsetenv("FAZT_TIMER_SLACK")
	for _, tc := range []struct {
		name   string
		pinned bool // to one processor
		env    []string
		want   time.Duration
	}{
		{"one processor", true, nil, 500 * time.Microsecond},
		{"one processor, empty", true, []string{"FAZT_TIMER_SLACK="}, 500 * time.Microsecond},
		{"more processors", false, nil, time.Duration(inherited)},
		{"set", false, []string{"FAZT_TIMER_SLACK=2ms"}, 2 * time.Millisecond},
		{"one processor, 0", true, []string{"FAZT_TIMER_SLACK=0"}, time.Duration(inherited)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.pinned && tasksetErr != nil:
				t.Skip("no taskset to start the server on one processor:", tasksetErr)
			case !tc.pinned && cpus.Count() < 2:
				t.Skip("this test runs on one processor")
			}
			dir := t.TempDir()
			cmd := serveCommand(t, filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps"), tc.env...)
			if tc.pinned {
				// taskset execs the server with the same arguments, in
				// the same process: `serve` stays its first.
				cmd.Args = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, cmd.Args...)
				cmd.Path = taskset
			}
			p := startServe(t, cmd)
			if want := "timer_slack=" + tc.want.String(); !strings.Contains(p.serving, want) {
				t.Errorf("the server logged %q; want %s", p.serving, want)
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
					t.Errorf("thread %s has a timer slack of %d ns; want %d", task.Name(), got, tc.want)
				}
				checked++
			}
			if checked == 0 {
				t.Log("no thread's timer slack could be read (another process's needs CAP_SYS_NICE)")
			}
		})
	}
}

// `fazt bench` takes the timer slack as `fazt serve` does, for its own
// readers, and gives it in its JSON line; a bad FAZT_TIMER_SLACK stops
// it before it connects.
func TestBenchSetsItsTimerSlack(t *testing.T) {
	inherited, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := 0; i < 1024 && cpu < 0; i++ {
		if cpus.IsSet(i) {
			cpu = i
		}
	}
	taskset, tasksetErr := exec.LookPath("taskset")
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	tn := startTestNode(t, nil)
	t.Setenv("FAZT_TIMER_SLACK", "") // restored when the test ends
	os.Unsetenv("FAZT_TIMER_SLACK")
	for _, tc := range []struct {
		name   string
		pinned bool
		env    []string
		want   time.Duration // 0: refused
	}{
		{"one processor", true, nil, 500 * time.Microsecond},
		{"more processors", false, nil, time.Duration(inherited)},
		{"set", true, []string{"FAZT_TIMER_SLACK=2ms"}, 2 * time.Millisecond},
		{"bad", false, []string{"FAZT_TIMER_SLACK=2"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.pinned && tasksetErr != nil:
				t.Skip("no taskset to start the tool on one processor:", tasksetErr)
			case !tc.pinned && tc.want != 0 && cpus.Count() < 2:
				t.Skip("this test runs on one processor")
			}
			args := []string{bin, "bench", "fanout", "-s", "2", "-m", "5", "--url", tn.srv.URL, "--key", testAdminKey, "--json"}
			if tc.pinned {
				args = append([]string{taskset, "-c", strconv.Itoa(cpu)}, args...)
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if tc.want == 0 {
				if err == nil || !strings.Contains(string(out), "FAZT_TIMER_SLACK") {
					t.Fatalf("a bad FAZT_TIMER_SLACK: %v\n%s", err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var line struct {
				Slack int64 `json:"bench_timer_slack_us"` // 0 if missing
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "{") {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
				}
			}
			if line.Slack != tc.want.Microseconds() {
				t.Errorf("the tool's JSON line: bench_timer_slack_us %v; want %d\n%s", line.Slack, tc.want.Microseconds(), out)
			}
		})
	}
}
