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

// slackSetup is what the timer slack tests share: the slack this process
// has, which a child keeps unless it sets its own; how many processors
// it may use, and one of them; taskset, to start a child on that one
// (tasksetErr if there is none). FAZT_TIMER_SLACK is unset for the test.
type slackSetup struct {
	inherited  time.Duration
	cpus, cpu  int
	taskset    string
	tasksetErr error
}

func newSlackSetup(t *testing.T) slackSetup {
	t.Helper()
	inherited, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	ss := slackSetup{inherited: time.Duration(inherited), cpus: set.Count(), cpu: -1}
	for i := 0; i < 1024 && ss.cpu < 0; i++ {
		if set.IsSet(i) {
			ss.cpu = i
		}
	}
	ss.taskset, ss.tasksetErr = exec.LookPath("taskset")
	t.Setenv("FAZT_TIMER_SLACK", "") // restored when the test ends
	os.Unsetenv("FAZT_TIMER_SLACK")
	return ss
}

// Where a case runs fazt: anywhere, pinned to one processor, or on more.
const (
	anyCPUs = iota
	oneCPU
	moreCPUs
)

// skip skips a case that cannot run where it must, or whose slack could
// not be told from the one fazt would have inherited.
func (ss slackSetup) skip(t *testing.T, where int, want time.Duration) {
	t.Helper()
	switch {
	case where == oneCPU && ss.cpus > 1 && ss.tasksetErr != nil:
		t.Skip("no taskset to start fazt on one processor:", ss.tasksetErr)
	case where == moreCPUs && ss.cpus < 2:
		t.Skip("this test runs on one processor")
	case want == ss.inherited && ss.inherited == 500*time.Microsecond:
		t.Skip("this test inherited the slack fazt sets on one processor")
	}
}

// pin makes args, a command line, run on one processor: through taskset
// where the process may use more.
func (ss slackSetup) pin(args []string) []string {
	if ss.cpus == 1 {
		return args
	}
	return append([]string{ss.taskset, "-c", strconv.Itoa(ss.cpu)}, args...)
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
	ss := newSlackSetup(t)
	inherited := ss.inherited
	for _, tc := range []struct {
		name  string
		where int
		env   []string
		want  time.Duration
	}{
		{"one processor", oneCPU, nil, 500 * time.Microsecond},
		{"one processor, empty", oneCPU, []string{"FAZT_TIMER_SLACK="}, 500 * time.Microsecond},
		{"more processors", moreCPUs, nil, inherited},
		{"set", anyCPUs, []string{"FAZT_TIMER_SLACK=2ms"}, 2 * time.Millisecond},
		{"one processor, 0", oneCPU, []string{"FAZT_TIMER_SLACK=0"}, inherited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss.skip(t, tc.where, tc.want)
			dir := t.TempDir()
			cmd := serveCommand(t, filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps"), tc.env...)
			if tc.where == oneCPU && ss.cpus > 1 {
				// taskset execs the server with the same arguments, in
				// the same process: `serve` stays its first.
				cmd.Args = ss.pin(cmd.Args)
				cmd.Path = ss.taskset
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
	ss := newSlackSetup(t)
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	tn := startTestNode(t, nil)
	for _, tc := range []struct {
		name    string
		where   int
		env     []string
		want    time.Duration
		refused bool
	}{
		{"one processor", oneCPU, nil, 500 * time.Microsecond, false},
		{"one processor, 0", oneCPU, []string{"FAZT_TIMER_SLACK=0"}, ss.inherited, false},
		{"more processors", moreCPUs, nil, ss.inherited, false},
		{"set", anyCPUs, []string{"FAZT_TIMER_SLACK=2ms"}, 2 * time.Millisecond, false},
		{"one processor, set", oneCPU, []string{"FAZT_TIMER_SLACK=2ms"}, 2 * time.Millisecond, false},
		{"bad", anyCPUs, []string{"FAZT_TIMER_SLACK=2"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss.skip(t, tc.where, tc.want)
			args := []string{bin, "bench", "fanout", "-s", "2", "-m", "5", "--url", tn.srv.URL, "--key", testAdminKey, "--json"}
			if tc.where == oneCPU {
				args = ss.pin(args)
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if tc.refused {
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
