package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/internal/uring"
)

// TestBenchScenarios runs every `fazt bench` scenario, small, against a
// real server: each must finish, find every message once and in order, and
// print its JSON line. No figure is asserted but the arrival latency's
// bound by the latency as read (checkArrival), and that the server's
// commits during a run carried its broadcasts.
func TestBenchScenarios(t *testing.T) {
	tn := startTestNode(t, nil)
	for _, args := range [][]string{
		{"fanout", "-s", "5", "-m", "60", "-p", "4", "--arrival"},
		{"fanout", "-s", "3", "--rate", "2", "-m", "10"},
		{"fanout", "-s", "3", "-m", "20", "--io-uring=false"},
		{"channels", "-c", "4", "-k", "2", "-m", "40", "--arrival"},
		{"channels", "-c", "4", "-k", "2", "-m", "43", "--batch", "5"},
		{"fanout", "-s", "3", "-m", "30", "--batch", "7", "--rate", "0.03"},
		{"conns", "-n", "20", "--hold", "0s"},
		{"replay", "-H", "300"},
		// Messages of 50 KB: a fill request stays within the 4 MiB a batch takes.
		{"replay", "-H", "200", "--size", "50000", "--channel", "big"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out, errOut bytes.Buffer
			all := append([]string{"bench"}, args...)
			all = append(all, "--url", tn.srv.URL, "--key", testAdminKey, "--json", "--duration", "20s", "--setup-timeout", "20s")
			if err := run(context.Background(), all, &out, &errOut); err != nil {
				t.Fatalf("%v: %v\n%s%s", args, err, out.String(), errOut.String())
			}
			var line map[string]any
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "{") {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
				}
			}
			if line == nil || line["scenario"] != args[0] {
				t.Fatalf("no JSON line for %s:\n%s", args[0], out.String())
			}
			for _, k := range []string{"lost", "duplicated", "out_of_order", "connection_errors"} {
				if v, ok := line[k]; ok && v != float64(0) {
					t.Errorf("%s: %s = %v\n%s", args[0], k, v, out.String())
				}
			}
			if args[0] == "fanout" || args[0] == "channels" {
				if slices.Contains(args, "--arrival") {
					checkArrival(t, line, out.String())
				} else if _, ok := line["arrival_p99_ms"]; ok {
					t.Errorf("%s: arrival latency reported without --arrival\n%s", args[0], out.String())
				}
				// The server's log committed the run's broadcasts and
				// nothing else (the subscribes were before it, the
				// disconnections after), in no more commits than
				// requests: a batch of broadcasts is one append.
				commits, _ := line["server_commits"].(float64)
				events, _ := line["server_events"].(float64)
				published, _ := line["published"].(float64)
				requests := published
				if b, _ := line["batch"].(float64); b > 1 {
					requests = math.Ceil(published / b)
				}
				if events != published || commits < 1 || commits > requests {
					t.Errorf("%s: %v events in %v commits, for %v broadcasts in %v requests\n%s", args[0], events, commits, published, requests, out.String())
				}
			}
			if runtime.GOOS == "linux" {
				// The subscribers were read by pollers, through io_uring
				// where the kernel allows it.
				want := "read"
				if r, err := uring.New(pollBatch); err == nil && !slices.Contains(args, "--io-uring=false") {
					r.Close()
					want = "io_uring"
				}
				if line["bench_reads"] != want {
					t.Errorf("%s: bench_reads = %v, want %s\n%s", args[0], line["bench_reads"], want, out.String())
				}
			}
			if args[0] == "fanout" {
				// Read from the server's /metrics, with no --server-pid.
				if w, _ := line["server_writes"].(float64); w <= 0 {
					t.Errorf("fanout: server_writes = %v\n%s", line["server_writes"], out.String())
				}
			}
			if m, ok := line["messages"]; ok && line["published"] != m {
				t.Errorf("%s: published %v of %v\n%s", args[0], line["published"], m, out.String())
			}
			// The server has recorded the end of every session of the run
			// before the next one counts its log's events.
			waitFor(t, func() bool {
				return len(tn.audit("", "type=disconnected&limit=1000").Events) == len(tn.audit("", "type=connected&limit=1000").Events)
			})
		})
	}
	// The batches' messages reached the log one event each.
	if n := len(tn.audit("", "type=broadcast&limit=1000").Events); n != 60+10+20+40+43+30+300+200 {
		t.Errorf("%d broadcasts in the log", n)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"bench", "fanout", "--via", "ws", "--batch", "2", "--url", tn.srv.URL}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--batch is for --via api") {
		t.Errorf("--batch with --via ws: %v", err)
	}
}

// checkArrival: where the system gives receive times, a run reports its
// deliveries' arrival latency too. It comes from a sample of the
// subscribers, so its quantiles are not bound by those of every
// delivery's reading; its maximum is: a frame is read after its socket
// received it.
func checkArrival(t *testing.T, line map[string]any, out string) {
	t.Helper()
	if !receiveTimesWork() {
		if _, ok := line["arrival_p99_ms"]; ok {
			t.Errorf("arrival latency reported where no receive times are read\n%s", out)
		}
		return
	}
	readMax, _ := line["max_ms"].(float64)
	arrivalMax, _ := line["arrival_max_ms"].(float64)
	if arrivalMax <= 0 || arrivalMax > readMax {
		t.Errorf("arrival_max_ms = %v, max_ms = %v: want 0 < arrival <= read\n%s", line["arrival_max_ms"], readMax, out)
	}
	for _, q := range []string{"p50_ms", "p90_ms", "p99_ms"} {
		if v, ok := line["arrival_"+q].(float64); !ok || v <= 0 || v > arrivalMax {
			t.Errorf("arrival_%s = %v: want 0 < it <= arrival_max_ms (%v)\n%s", q, line["arrival_"+q], arrivalMax, out)
		}
	}
	// The tool's delay is the same deliveries' reading less their arrival.
	if d, ok := line["tool_delay_max_ms"].(float64); !ok || d < 0 || d > readMax {
		t.Errorf("tool_delay_max_ms = %v: want 0 <= it <= max_ms (%v)\n%s", line["tool_delay_max_ms"], readMax, out)
	}
	if n, _ := line["arrival_samples"].(float64); n <= 0 {
		t.Errorf("arrival_samples = %v\n%s", line["arrival_samples"], out)
	}
}

func TestBenchRefusesNonLoopback(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"bench", "fanout", "--url", "http://192.0.2.1:8080"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("got %v", err)
	}
}

// TestPerConnection: conns reports memory per connection only when the
// server's resident memory grew; a server that gave back memory from
// earlier work meanwhile gets a note instead of a negative figure.
func TestPerConnection(t *testing.T) {
	for _, c := range []struct {
		before, after int64
		n             int
		want          float64
		ok            bool
	}{
		{100 << 20, 110 << 20, 1024, 10 << 10, true},
		{100 << 20, 100 << 20, 1024, 0, false},
		{150 << 20, 140 << 20, 1024, 0, false},
		{100 << 20, 110 << 20, 0, 0, false},
	} {
		if got, ok := perConnection(c.before, c.after, c.n); got != c.want || ok != c.ok {
			t.Errorf("perConnection(%d, %d, %d) = %v, %v; want %v, %v", c.before, c.after, c.n, got, ok, c.want, c.ok)
		}
	}
}

func TestHistogram(t *testing.T) {
	h := &histogram{}
	for us := int64(1); us <= 10000; us++ {
		h.record(us)
	}
	l := h.summary()
	if l.N != 10000 || l.Max != 10 {
		t.Fatalf("n %d max %v", l.N, l.Max)
	}
	for _, c := range []struct{ got, want float64 }{{l.P50, 5}, {l.P90, 9}, {l.P99, 9.9}} {
		if c.got < c.want*0.96 || c.got > c.want*1.04 {
			t.Errorf("percentile %v ms, want about %v", c.got, c.want)
		}
	}
	// Percentiles by the nearest rank, in the exact buckets under 64 us:
	// of 1 to 50 us, p99 is the 50th (the largest) only as the 49.5th
	// rounded up, and p50 the 25th; of 1 and 2 us, p50 is 1.
	small := &histogram{}
	for us := int64(1); us <= 50; us++ {
		small.record(us)
	}
	if l := small.summary(); l.P50 != 0.025 || l.P90 != 0.045 || l.P99 != 0.050 {
		t.Errorf("1 to 50 us: p50 %v p90 %v p99 %v ms, want 0.025 0.045 0.05", l.P50, l.P90, l.P99)
	}
	two := &histogram{}
	two.record(1)
	two.record(2)
	if l := two.summary(); l.P50 != 0.001 || l.Max != 0.002 {
		t.Errorf("1 and 2 us: p50 %v max %v ms, want 0.001 and 0.002", l.P50, l.Max)
	}
	for us := int64(0); us < 1<<30; us = us*2 + 1 {
		if v := histValue(histBucket(us)); us >= 64 && (v < float64(us)*0.96 || v > float64(us)*1.04) {
			t.Errorf("%d us lands in a bucket worth %v", us, v)
		}
	}
}

func TestScanFrame(t *testing.T) {
	body := publishBody(nil, "room", 1700000000123456789, "xx")
	var pub struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &pub); err != nil || pub.Channel != "room" {
		t.Fatalf("%s: %v", body, err)
	}
	frame := []byte(`{"type":"message","channel":"room","offset":42,"data":` + string(pub.Data) + `,"timestamp":1700000000123}`)
	if off, ok := scanUint(frame, `"offset":`); !ok || off != 42 {
		t.Fatalf("offset %d %v", off, ok)
	}
	if sent, ok := sendTime(frame); !ok || sent != 1700000000123456789 {
		t.Fatalf("sent %d %v", sent, ok)
	}
	// A channel's name may hold "ft:": the send time is the data's.
	frame = []byte(`{"type":"message","channel":"draft:7","offset":42,"data":{"text":"ft:1700000000123456789"}}`)
	if sent, ok := sendTime(frame); !ok || sent != 1700000000123456789 {
		t.Fatalf("channel draft:7: sent %d %v", sent, ok)
	}
}

// A scenario that the server refuses midway stops with the server's
// reason and closes what it had opened. (It also used to wait five seconds
// for each open connection's reader, which had not started; that wait is
// not timed here: tests assert no durations.)
func TestBenchStopsAtARefusal(t *testing.T) {
	tn := startTestNode(t, map[string]string{"small": `{"limits":{"max_connections":3}}`})
	var out bytes.Buffer
	err := run(context.Background(), []string{"bench", "conns", "--app", "small", "-n", "10", "--connect-concurrency", "1",
		"--url", tn.srv.URL, "--key", testAdminKey, "--hold", "0s"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "app small has its maximum of 3 connections") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
	// The three it had opened are closed: each connection is recorded
	// as gone.
	waitFor(t, func() bool {
		types := tn.audit("small", "type=connected,disconnected").types()
		return len(types) == 6 && strings.Count(strings.Join(types, " "), "client.disconnected.v1") == 3
	})
}

// TestBenchPublishesViaWS runs fanout and channels with client publish
// frames: every message is delivered once and in order, and in an app
// that does not let clients publish each refusal is counted, with the
// server's reason.
func TestBenchPublishesViaWS(t *testing.T) {
	tn := startTestNode(t, map[string]string{"pub": `{"client_publish":true}`, "closed": `{}`})
	for _, args := range [][]string{
		{"fanout", "-s", "5", "-m", "60", "-p", "3"},
		{"channels", "-c", "4", "-k", "2", "-m", "40", "-p", "3"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out bytes.Buffer
			all := append([]string{"bench"}, args...)
			all = append(all, "--via", "ws", "--app", "pub", "--url", tn.srv.URL, "--key", testAdminKey, "--json", "--duration", "20s", "--setup-timeout", "20s")
			if err := run(context.Background(), all, &out, &out); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out.String())
			}
			var line map[string]any
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "{") {
					if err := json.Unmarshal([]byte(l), &line); err != nil {
						t.Fatal(err)
					}
				}
			}
			if line["via"] != "ws" || line["published"] != line["messages"] || line["publish_errors"] != float64(0) {
				t.Fatalf("%s", out.String())
			}
			for _, k := range []string{"lost", "duplicated", "out_of_order"} {
				if line[k] != float64(0) {
					t.Errorf("%s = %v\n%s", k, line[k], out.String())
				}
			}
		})
	}
	// The server's own record agrees: the publishes came from clients.
	evs := tn.audit("pub", "type=broadcast&limit=1000").Events
	if len(evs) != 100 {
		t.Fatalf("%d broadcasts in the audit log, want 100", len(evs))
	}
	for _, e := range evs {
		if p, _ := e.Event["publisher"].(map[string]any); p["kind"] != "client" {
			t.Fatalf("publisher %v", e.Event["publisher"])
		}
	}

	// Refused publishes are counted, like refused API publishes, and the
	// first reason is shown. The run did not measure the load it was
	// asked for, so the command fails, after its report.
	var out bytes.Buffer
	err := run(context.Background(), []string{"bench", "fanout", "-s", "2", "-m", "5", "--via", "ws", "--app", "closed",
		"--url", tn.srv.URL, "--key", testAdminKey, "--json", "--duration", "20s", "--setup-timeout", "20s"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "5 of 5 publishes failed") || !strings.Contains(err.Error(), "clients may not publish in app closed") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "(5 refused)") || !strings.Contains(out.String(), `"publish_errors":5`) {
		t.Fatalf("no report before the error:\n%s", out.String())
	}
}

// TestArrivalSample: which subscribers read receive times. With many
// small channels, whole channels, so that every place in a channel's
// order is sampled alike; otherwise one subscriber in arrivalEvery; in
// every case about one in arrivalEvery, and at least one.
func TestArrivalSample(t *testing.T) {
	count := func(n, perChan int) (picked int, byPlace map[int]int) {
		byPlace = map[int]int{}
		s := arrivalSample(n, perChan)
		for i := range n {
			if s(i) {
				picked++
				byPlace[i%perChan]++
			}
		}
		return picked, byPlace
	}
	for _, c := range []struct{ n, perChan, want int }{
		{8, 2, 1},           // a test's run: its first subscriber
		{100, 100, 7},       // js's one channel
		{1000, 1000, 63},    // fanout's
		{10000, 5000, 625},  // two large channels
		{10000, 5, 625},     // 2000 channels of 5: 125 whole channels
		{10000, 2, 313 * 2}, // 5000 channels of 2: 313 whole channels
	} {
		picked, byPlace := count(c.n, c.perChan)
		if picked != c.want {
			t.Errorf("%d subscribers, %d to a channel: %d sampled, want %d", c.n, c.perChan, picked, c.want)
		}
		if c.n/c.perChan >= arrivalEvery {
			for place := 1; place < c.perChan; place++ {
				if byPlace[place] != byPlace[0] {
					t.Errorf("%d subscribers, %d to a channel: by place in the channel %v; want as many at each", c.n, c.perChan, byPlace)
					break
				}
			}
		}
	}
}

// TestBenchRefusesBadCounts: a mistyped scenario, counts that make no run
// and a js body without {t} are errors before anything connects (a
// negative -s or --size panicked; a mistyped scenario printed the help
// and exited 0; a body without {t} had the time appended after its
// JSON).
func TestBenchRefusesBadCounts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fanuot"}, `no scenario "fanuot"`},
		{[]string{"fanout", "-s", "-1"}, "-s must be positive"}, {[]string{"fanout", "-s", "0"}, "-s must be positive"},
		{[]string{"js", "-s", "-1"}, "-s must be positive"},
		{[]string{"replay", "--size", "-1"}, "--size -1: want 0 or more"}, {[]string{"replay", "--size", "-128"}, "--size -128: want 0 or more"},
		{[]string{"js", "--body", `{"channel":"{channel}"}`}, "want {t} once"},
		// A pid with no process (past any pid_max) is not taken as none.
		{[]string{"conns", "--server-pid", "999999999"}, "--server-pid 999999999: open /proc/999999999/stat"},
	} {
		// Nothing listens at the URL: a run that started would fail there
		// instead, with another message.
		_, _, err := cli(t, append(append([]string{"bench"}, tc.args...), "--url", "http://127.0.0.1:1")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// An https URL (the subscribers speak plain WebSocket) or one with a
	// path (the tool asks the server's root paths) is refused too.
	for _, u := range []string{"https://127.0.0.1:1", "http://127.0.0.1:1/fazt"} {
		if _, _, err := cli(t, "bench", "fanout", "--url", u); err == nil || !strings.Contains(err.Error(), "want http://127.0.0.1:<port>") {
			t.Errorf("bench --url %s: %v, want a refusal", u, err)
		}
	}
}

// TestBenchOnChannelsInUse runs `js` twice on one --channel, and `replay`
// on a channel whose oldest messages retention has trimmed: each checks
// what it could get, and finds nothing lost. (The second `js` counted the
// channel's first run as lost, being joined at its head; `replay` counted
// the trimmed messages as lost.) A replay stopped by --duration, checked
// up to what it read and failed for the rest, unread, is not tested: a
// small one ends first.
func TestBenchOnChannelsInUse(t *testing.T) {
	tn := startTestNode(t, map[string]string{"bj": "", "trim": `{"retention": {"max_messages": 100}}`}, func(c *nodeConfig) {
		c.RetentionInterval = 20 * time.Millisecond
	})
	tn.writeFiles(map[string]string{"bj/api/main.js": `module.exports = (req) => { fazt.realtime.broadcast(req.json.channel, { text: req.json.text }); };`})
	bench := func(args ...string) map[string]any {
		t.Helper()
		var out, errOut bytes.Buffer
		all := append([]string{"bench"}, args...)
		all = append(all, "--url", tn.srv.URL, "--key", testAdminKey, "--json", "--setup-timeout", "20s")
		err := run(context.Background(), all, &out, &errOut)
		var line map[string]any
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "{") {
				json.Unmarshal([]byte(l), &line)
			}
		}
		if err != nil || line == nil || line["lost"] != float64(0) {
			t.Fatalf("bench %v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return line
	}
	waitFor(t, func() bool { // the handler is loaded
		code, _ := tn.jsCall("bj", "POST", "/api/x", map[string]any{"channel": "warm", "text": "x"}, nil)
		return code == 204
	})
	for range 2 {
		bench("js", "--app", "bj", "--channel", "reused", "-s", "2", "-m", "20", "--duration", "20s")
	}
	// Messages others publish during the run are due to every subscriber
	// as well: here the handler sends one of its own after each.
	tn.writeFiles(map[string]string{"bj/api/main.js": `module.exports = (req) => {
		fazt.realtime.broadcast(req.json.channel, { text: req.json.text });
		fazt.realtime.broadcast(req.json.channel, { other: true });
	};`})
	probe := 0
	waitFor(t, func() bool { // the new handler is loaded: one call, two messages
		probe++
		ch := "probe-" + strconv.Itoa(probe)
		code, _ := tn.jsCall("bj", "POST", "/api/x", map[string]any{"channel": ch, "text": "x"}, nil)
		return code == 204 && tn.history("bj", ch, "").Head == 2
	})
	if line := bench("js", "--app", "bj", "--channel", "reused", "-s", "2", "-m", "20", "--duration", "20s"); line["other_messages"] != float64(20) || line["deliveries_expected"] != float64(80) || line["deliveries"] != float64(80) {
		t.Errorf("js on a channel others publish to: %v", line)
	}
	bench("replay", "--app", "trim", "-H", "300", "--channel", "long", "--duration", "20s")
	waitFor(t, func() bool { return tn.history("trim", "long", "").FirstOffset == 201 })
	if line := bench("replay", "--app", "trim", "-H", "300", "--channel", "long", "--duration", "20s"); line["first_offset"] != float64(201) || line["replayed"] != float64(100) {
		t.Errorf("replay of a trimmed channel: %v", line)
	}
}

// TestStoppedBy: a run cut short by an interrupt says so, not that
// --duration stopped it.
func TestStoppedBy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if got := stoppedBy(ctx, time.Minute); got != "stopped by --duration 1m0s" {
		t.Errorf("running: %q", got)
	}
	cancel()
	if got := stoppedBy(ctx, time.Minute); got != "interrupted" {
		t.Errorf("interrupted: %q", got)
	}
}

// TestCPUShareIsOverTheWorksWindow: a run that idles after its work (it
// waited for deliveries that never came) shares its CPU over the work's
// window, not over the idling too. The meter here "started" 10 s ago and
// its work ended 100 ms after that; the CPU burnt since is the work's.
func TestCPUShareIsOverTheWorksWindow(t *testing.T) {
	m := startCPU(os.Getpid())
	if !m.serverAvailable {
		t.Skip("no /proc here")
	}
	m.wall = m.wall.Add(-10 * time.Second)
	x := uint64(1)
	for i := 0; i < 1e9 && selfCPU()-m.self < 200*time.Millisecond; i++ {
		for j := 0; j < 1000; j++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	window := 100 * time.Millisecond
	before := selfCPU() - m.self
	self, server := m.stopAt(m.wall.Add(window))
	after := selfCPU() - m.self
	lo, hi := 100*float64(before)/float64(window), 100*float64(after)/float64(window)
	if self < lo || self > hi {
		t.Errorf("this process's share %.1f%%, want %.1f%% to %.1f%% (%d)", self, lo, hi, x&1)
	}
	// The server's figure (this process, from /proc in clock ticks) is
	// shared over the same window.
	if server < lo/2 || server > 2*hi {
		t.Errorf("the server's share %.1f%%, want about %.1f%%", server, lo)
	}
}

// A run given an app's key, which /metrics does not take, says why the
// server's counts are unknown, rather than only that they are.
func TestBenchSaysWhyTheServersCountsAreUnknown(t *testing.T) {
	tn := startTestNode(t, map[string]string{"default": `{"api_keys":{"ci":"app-key"}}`})
	var out, errOut bytes.Buffer
	args := []string{"bench", "fanout", "-s", "2", "-m", "10", "--url", tn.srv.URL, "--key", "app-key", "--duration", "20s", "--setup-timeout", "20s"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "(401: /metrics takes the admin key, and --key (FAZT_ADMIN_KEY) is not it)") {
		t.Fatalf("no reason given:\n%s", out.String())
	}
	// With no key at all (a js run needs none), it says that.
	tn.writeFiles(map[string]string{"default/api/main.js": `module.exports = (req) => { fazt.realtime.broadcast(req.json.channel, { text: req.json.text }); };`})
	waitFor(t, func() bool {
		code, _ := tn.jsCall("default", "POST", "/api/x", map[string]any{"channel": "warm", "text": "x"}, nil)
		return code == 204
	})
	out.Reset()
	args = []string{"bench", "js", "--app", "default", "-s", "2", "-m", "10", "--url", tn.srv.URL, "--duration", "20s", "--setup-timeout", "20s"}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "(401: /metrics takes the admin key, and no --key (FAZT_ADMIN_KEY) was given)") {
		t.Fatalf("no reason given for a run without a key:\n%s", out.String())
	}
}

// Under --rate, a request held back by a stall (every worker busy) counts
// its latency from when it was due, not from when it went out: the stall
// is in the figures of every request behind it (coordinated omission). A
// first request that takes 200 ms holds the one worker while all 59
// behind it fall due, one a millisecond.
func TestARateCountsLatencyFromTheSchedule(t *testing.T) {
	const m, rate = 60, 1000.0
	var stamps []int64
	send := func(_ context.Context, buf []byte, _ []int, sent int64) ([]byte, bool, error) {
		stamps = append(stamps, sent)
		if len(stamps) == 1 {
			time.Sleep(200 * time.Millisecond)
		}
		return buf, true, nil
	}
	ctx := context.Background()
	res := publishLoad(ctx, ctx, m, 1, 1, rate, 1, func(*rand.Rand) int { return 0 }, send)
	if res.ok != m || len(stamps) != m {
		t.Fatalf("%d published, %d sent", res.ok, len(stamps))
	}
	onSchedule := 0
	for n, s := range stamps {
		due := res.start.Add(time.Duration(n) * time.Millisecond).UnixNano()
		if s < due {
			t.Fatalf("request %d stamped %d ns before its time", n, due-s)
		}
		if s == due {
			onSchedule++
		}
	}
	// (The first, due at the start, may be too.)
	if onSchedule < m-1 {
		t.Errorf("%d of %d requests stamped with their due time, want the %d the stall held back", onSchedule, m, m-1)
	}
	// (The first may be a millisecond late too, on a busy machine.)
	if late := res.late.Load(); late < m-1 || late > m {
		t.Errorf("%d requests counted late, want %d or %d", late, m-1, m)
	}
	// The request latency of the last late ones includes their wait.
	if l := res.reqLatency.summary(); l.P90 < 100 {
		t.Errorf("request p90 %.2f ms: the stall is missing from it", l.P90)
	}
}

// Once every delivery expected has come, a run reads on for afterAll
// before it closes its connections, so that a frame sent twice behind
// the last is read and counted as duplicated. (A lower bound only.)
func TestARunReadsOnAfterItsLastDelivery(t *testing.T) {
	bc := &benchConn{}
	bc.recv.Store(10)
	start := time.Now()
	waitDeliveries(context.Background(), []*benchConn{bc}, 10, 5*time.Second)
	if took := time.Since(start); took < afterAll {
		t.Fatalf("returned after %v, before reading on for %v", took, afterAll)
	}
}
