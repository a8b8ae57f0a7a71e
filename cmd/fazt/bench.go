package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/internal/promtext"
)

// benchCmd is `fazt bench <scenario>`: a load generator that drives a
// running server over real WebSocket connections and the server API, on
// loopback only. Every load loop is bounded in count and in time.
func benchCmd() *cobra.Command {
	o := &benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench <scenario>",
		Short: "Measure a running server: fanout, conns, replay, channels, js",
		Long: `Measure a running server over loopback WebSocket connections and the server
API. Every scenario checks that each subscriber received every message once
and in offset order (lost / duplicated / out-of-order counts), and reports
the CPU used by the server (--server-pid) and by this tool beside the
throughput, so that a reader knows which side was the limit.

Pin them apart for stable figures, e.g.:

    taskset -c 0 fazt serve --admin-key k ...
    taskset -c 1 fazt bench fanout --key k --server-pid $(pgrep -n fazt)

On Linux the tool takes the timer slack of FAZT_TIMER_SLACK as the server
does (default 500us on one processor): see docs/operators.md, "One
processor".`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server base URL; loopback addresses only")
	keyFlag(pf, &o.key, "key", "server API key (FAZT_ADMIN_KEY)")
	pf.StringVar(&o.app, "app", "default", "app to use (its channels are the run's own)")
	pf.IntVar(&o.serverPID, "server-pid", 0, "pid of the server, to report its CPU and resident memory from /proc")
	pf.BoolVar(&o.json, "json", false, "also print one JSON line with the run's figures")
	pf.DurationVar(&o.duration, "duration", 60*time.Second, "cap on the measured phase")
	pf.DurationVar(&o.setupTimeout, "setup-timeout", 5*time.Minute, "cap on setting up (connecting, filling history)")
	pf.BoolVar(&o.arrival, "arrival", false, "also give the latency to each delivery's arrival for its socket, read by one subscriber in 16 (Linux; fanout, channels, js): it can cost the run some of what it measures")
	pf.BoolVar(&o.ioURing, "io-uring", true, "on Linux, read the subscribers' sockets through io_uring where the kernel allows it, one system call for each batch that epoll finds ready; false: a read(2) each (json: bench_reads)")
	// Without a run of its own, cobra would answer a mistyped scenario with
	// the help and exit status 0, which a script takes for a passing run.
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("no scenario %q: want fanout, conns, replay, channels or js", args[0])
		}
		return cmd.Help()
	}
	cmd.AddCommand(benchFanoutCmd(o), benchConnsCmd(o), benchReplayCmd(o), benchChannelsCmd(o), benchJSCmd(o))
	return cmd
}

// benchOptions are the flags every scenario shares.
type benchOptions struct {
	url, key, app string
	serverPID     int
	json          bool
	duration      time.Duration
	setupTimeout  time.Duration
	arrival       bool // sampled subscribers read the kernel's receive times
	ioURing       bool // the pollers read through io_uring (Linux)

	slack  time.Duration // the tool's timer slack
	base   *url.URL
	host   string // Host header: selects the app
	wsURL  string
	client *http.Client
}

// prepare validates the options and builds the clients, keeping every
// connection on loopback.
func (o *benchOptions) prepare(concurrency int) error {
	u, err := url.Parse(o.url)
	// Plain HTTP only: the subscribers speak WebSocket over plain TCP, and
	// every request goes to the server's root paths.
	if err != nil || u.Host == "" || u.Scheme != "http" || strings.Trim(u.Path, "/") != "" {
		return fmt.Errorf("--url %q: want http://127.0.0.1:<port>", o.url)
	}
	hostname := u.Hostname()
	if ip := net.ParseIP(hostname); (ip == nil || !ip.IsLoopback()) && hostname != "localhost" {
		return fmt.Errorf("--url %q: bench only drives servers on loopback", o.url)
	}
	if o.duration <= 0 || o.setupTimeout <= 0 {
		return errors.New("--duration and --setup-timeout must be positive")
	}
	if o.serverPID > 0 {
		// A pid that is not the server's (a typo, a server since
		// restarted) would otherwise be reported as no pid given.
		if _, err := procCPU(o.serverPID); err != nil {
			return fmt.Errorf("--server-pid %d: %w", o.serverPID, err)
		}
	}
	// The tool's own timer slack, set before the runtime started
	// (timerslack_linux.go), as the server's is.
	if o.slack, err = timerSlack(); err != nil {
		return err
	}
	usePollerRing(o.ioURing)
	o.base = u
	o.host = u.Host
	if o.app != "" && o.app != "default" {
		o.host = o.app + ".localhost"
		if p := u.Port(); p != "" {
			o.host += ":" + p
		}
	}
	ws := *u
	ws.Scheme = "ws"
	ws.Path = "/_ws"
	o.wsURL = ws.String()
	o.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        concurrency + 4,
			MaxIdleConnsPerHost: concurrency + 4,
			DisableCompression:  true,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	return nil
}

// post sends a JSON body and returns the status and response body,
// appended to into.
func (o *benchOptions) post(ctx context.Context, path string, body []byte, into []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.base.Scheme+"://"+o.base.Host+path, bytes.NewReader(body))
	if err != nil {
		return 0, into, err
	}
	req.Host = o.host
	req.Header.Set("Content-Type", "application/json")
	if o.key != "" {
		req.Header.Set("Authorization", "Bearer "+o.key)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, into, err
	}
	defer resp.Body.Close()
	into, err = readAllInto(resp.Body, into)
	return resp.StatusCode, into, err
}

func (o *benchOptions) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.base.Scheme+"://"+o.base.Host+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Host = o.host
	if o.key != "" {
		req.Header.Set("Authorization", "Bearer "+o.key)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func readAllInto(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publishBody is the body of /_api/publish: the data carries the send time
// as "ft:<unix nanos>", which receivers find by scanning, not decoding.
func publishBody(b []byte, channel string, sent int64, pad string) []byte {
	return publishFields(append(b, '{'), channel, sent, pad)
}

// publishFields appends publishBody's fields and its closing brace.
func publishFields(b []byte, channel string, sent int64, pad string) []byte {
	b = append(b, `"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":{"m":"ft:`...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, '"')
	if pad != "" {
		b = append(b, `,"pad":"`...)
		b = append(b, pad...)
		b = append(b, '"')
	}
	return append(b, `}}`...)
}

// scanUint finds key in b and parses the unsigned decimal that follows it.
func scanUint(b []byte, key string) (uint64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	return parseDigits(b[i+len(key):])
}

// sendTime finds a message frame's "ft:<unix nanos>" in its data, which
// comes after the channel's name: a name may hold "ft:" itself (js
// --channel draft:7).
func sendTime(frame []byte) (uint64, bool) {
	i := bytes.Index(frame, []byte(`"data":`))
	if i < 0 {
		return 0, false
	}
	return scanUint(frame[i:], `ft:`)
}

func parseDigits(b []byte) (uint64, bool) {
	var v uint64
	n := 0
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + uint64(b[n]-'0')
	}
	return v, n > 0
}

// --- the subscriber side ---

// benchConn is one subscribed connection and what its reader saw.
type benchConn struct {
	ws      *benchWS
	channel int    // index of its channel in the scenario
	head    uint64 // the channel's head in `subscribed`
	first   uint64 // its first_offset: the oldest it retains
	replay  int    // `replay` in `subscribed`

	recv atomic.Int64 // message frames received, duplicates included
	last atomic.Int64 // unix nanos of the last message frame
	// done, when set, is closed by the reader once it sees offset doneAt.
	done   chan struct{}
	doneAt uint64

	// Read by others only after the reader has stopped.
	seen      []uint64 // bitmap of offsets seen
	distinct  int64
	dup, ooo  int64
	maxOff    uint64
	err       error
	closing   atomic.Bool
	reading   bool // startReader ran
	readerEnd chan struct{}
}

// dialSubscribe connects with a read buffer of readBuf bytes, waits for
// `connected`, subscribes with the given extra fields (e.g. `,"offset":0`)
// and waits for `subscribed`. With stamp, the connection reads the
// kernel's receive times too (see arrivalSample).
func (o *benchOptions) dialSubscribe(ctx context.Context, readBuf int, channel, extra string, stamp bool) (*benchConn, error) {
	c, err := dialBenchWS(ctx, o.wsURL, o.host, readBuf, stamp)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.conn.SetReadDeadline(deadline)
	bc := &benchConn{ws: c, readerEnd: make(chan struct{})}
	fail := func(err error) (*benchConn, error) { c.conn.Close(); return nil, err }
	if msg, err := c.next(); err != nil {
		return fail(fmt.Errorf("read connected: %w", err))
	} else if !bytes.HasPrefix(msg, []byte(`{"type":"connected"`)) {
		return fail(fmt.Errorf("first frame: %.200s", msg))
	}
	if err := c.writeText(`{"type":"subscribe","channel":"` + channel + `"` + extra + `}`); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	for {
		msg, err := c.next()
		if err != nil {
			return fail(fmt.Errorf("read subscribed: %w", err))
		}
		if bytes.HasPrefix(msg, []byte(`{"type":"subscribed"`)) {
			bc.head, _ = scanUint(msg, `"offset":`)
			bc.first, _ = scanUint(msg, `"first_offset":`)
			r, _ := scanUint(msg, `"replay":`)
			bc.replay = int(r)
			break
		}
		if bytes.HasPrefix(msg, []byte(`{"type":"error"`)) || bytes.HasPrefix(msg, []byte(`{"type":"disconnect"`)) {
			return fail(fmt.Errorf("subscribe refused: %.200s", msg))
		}
	}
	c.conn.SetReadDeadline(time.Time{})
	return bc, nil
}

// arrivalEvery: about one subscriber in arrivalEvery reads the kernel's
// receive times, which give the arrival latency (arrivalSample says
// which). recvmsg(2) with a time costs the tool more than read(2): with
// every subscriber reading them, its CPU at 50,000 deliveries/s went from
// 36% of its core to 42.5%, and with one in 8, at 200,000/s, from 62% to
// 66% (6 December 2026), which made it slower to read what the server
// sent.
const arrivalEvery = 16

// pollBatch is how many ready sockets a poller (benchpoll_linux.go)
// takes from one epoll_wait, and so the size of its io_uring ring: it
// reads them in one call.
const pollBatch = 256

// arrivalSample picks the n subscribers, perChan to a channel, that read
// receive times. With arrivalEvery channels or more, it takes all the
// subscribers of one channel in arrivalEvery, so that each place in a
// channel's order is sampled as often as the others: the server writes a
// channel of up to 8 subscribers in the order they came. Otherwise
// (fanout's and js's one channel, or a few large ones, whose order the
// server changes every round) one subscriber in arrivalEvery, the first
// among them.
func arrivalSample(n, perChan int) func(i int) bool {
	perChan = max(perChan, 1)
	if n/perChan >= arrivalEvery {
		return func(i int) bool { return (i/perChan)%arrivalEvery == 0 }
	}
	return func(i int) bool { return i%arrivalEvery == 0 }
}

// arrivalSample is arrivalSample with --arrival, and no subscriber
// without it: asking for receive times makes the kernel stamp every
// packet it receives (on loopback, in the sender's pass through the
// receiving side), and the sampled reads cost the tool more, so the
// sampling costs a run some of what it measures (BENCHMARKS.md, stop
// 26).
func (o *benchOptions) arrivalSample(n, perChan int) func(i int) bool {
	if !o.arrival {
		return nil
	}
	return arrivalSample(n, perChan)
}

// deliveryLatency holds the latencies of the deliveries, from the publish
// to each subscriber: to the tool's reading of the frame (read), and,
// for the subscribers that read the kernel's receive times, to the
// frame's arrival for the socket (arrival) and from that to its reading
// (delay: the tool's own waking, reading and parsing, for the same
// deliveries). unstamped counts the deliveries of those subscribers that
// came with no receive time.
type deliveryLatency struct {
	read, arrival, delay histogram
	unstamped            atomic.Int64
}

// startReader starts reading the connection; l, if not nil, takes the
// latencies. Where the system allows, a poller reads it with many others
// (benchpoll_linux.go); otherwise it has a goroutine of its own.
func (bc *benchConn) startReader(l *deliveryLatency) {
	bc.reading = true
	if usePollers && startPolled(bc, l) {
		return
	}
	go bc.read(l)
}

// usePollers is false only in tests that try the goroutine readers on a
// system that has pollers.
var usePollers = true

// read runs the connection's reader until the connection ends: it checks
// every message frame's offset and records its latencies into l.
func (bc *benchConn) read(l *deliveryLatency) {
	for {
		buf, err := bc.ws.next()
		if err != nil {
			bc.end(err)
			return
		}
		at := int64(-1)
		if bc.ws.stamp != nil {
			at = bc.ws.stamp.arrival()
		}
		bc.handle(buf, l, at)
	}
}

// ended reports whether the connection's reader has ended, or never
// started: what it counted may be read then, and not before (a reader
// closeAll gave up waiting for may still be writing it).
func (bc *benchConn) ended() bool {
	if !bc.reading {
		return true
	}
	select {
	case <-bc.readerEnd:
		return true
	default:
		return false
	}
}

// errReaderStuck stands for a connection whose reader had not ended when
// the run's counts were read: what it counted is left out.
var errReaderStuck = errors.New("the connection's reader did not end within 5 s of its close")

// endErr is why the connection ended early, errReaderStuck when its
// reader has not ended.
func (bc *benchConn) endErr() error {
	if !bc.ended() {
		return errReaderStuck
	}
	return bc.err
}

// end records why the connection's reading ended, unless the tool was
// closing it or a reason is recorded already, and tells closeAll that it
// has.
func (bc *benchConn) end(err error) {
	if !bc.closing.Load() && bc.err == nil { // a disconnect frame's reason comes first
		bc.err = err
	}
	close(bc.readerEnd)
}

// handle takes one text message from the server. at is the kernel's
// receive time for it (see arrivalReader): -1 for a connection that does
// not read receive times, 0 when the kernel gave none.
func (bc *benchConn) handle(buf []byte, l *deliveryLatency, at int64) {
	switch {
	case bytes.HasPrefix(buf, []byte(`{"type":"message"`)):
		bc.message(buf, l, at)
	case bytes.HasPrefix(buf, []byte(`{"type":"ping"`)):
		bc.ws.writeText(`{"type":"pong"}`)
	case bytes.HasPrefix(buf, []byte(`{"type":"disconnect"`)):
		if !bc.closing.Load() {
			bc.err = fmt.Errorf("server disconnected: %.200s", buf)
		}
	}
}

func (bc *benchConn) message(b []byte, l *deliveryLatency, at int64) {
	now := time.Now().UnixNano()
	off, ok := scanUint(b, `"offset":`)
	if !ok {
		return
	}
	bc.recv.Add(1)
	bc.last.Store(now)
	w := off / 64
	if w >= uint64(len(bc.seen)) {
		bc.seen = append(bc.seen, make([]uint64, int(w)+1-len(bc.seen)+len(bc.seen)/2)...)
	}
	bit := uint64(1) << (off % 64)
	switch {
	case bc.seen[w]&bit != 0:
		bc.dup++
	default:
		bc.seen[w] |= bit
		bc.distinct++
		if off < bc.maxOff {
			bc.ooo++
		}
	}
	bc.maxOff = max(bc.maxOff, off)
	if sent, ok := sendTime(b); ok && l != nil {
		l.read.record((now - int64(sent)) / 1000)
		switch {
		case at > 0:
			l.arrival.record((at - int64(sent)) / 1000)
			l.delay.record((now - at) / 1000)
		case at == 0:
			l.unstamped.Add(1)
		}
	}
	if bc.done != nil && off == bc.doneAt {
		close(bc.done)
		bc.done = nil
	}
}

// missing counts the offsets in from..upto that the reader never saw.
func (bc *benchConn) missing(from, upto uint64) int64 {
	var n int64
	for off := max(from, 1); off <= upto; off++ {
		w := off / 64
		if w >= uint64(len(bc.seen)) || bc.seen[w]&(1<<(off%64)) == 0 {
			n++
		}
	}
	return n
}

// close ends the connection politely; the reader stops.
func (bc *benchConn) close() {
	bc.closing.Store(true)
	bc.ws.close()
}

// connectAll opens n subscribed connections with up to conc dials at once;
// channelOf names connection i's channel. It stops at the first error.
func (o *benchOptions) connectAll(ctx context.Context, readBuf int, n, conc int, channelOf func(i int) (string, int), extra string, stamp func(i int) bool) ([]*benchConn, error) {
	conns := make([]*benchConn, n)
	var next atomic.Int64
	var firstErr error
	var emu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				name, idx := channelOf(i)
				bc, err := o.dialSubscribe(ctx, readBuf, name, extra, stamp != nil && stamp(i))
				if err != nil {
					emu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					emu.Unlock()
					cancel()
					return
				}
				bc.channel = idx
				conns[i] = bc
			}
		}()
	}
	wg.Wait()
	if missing := countNil(conns); firstErr == nil && missing > 0 {
		// Ended (the set-up's time, an interrupt) between two dials:
		// the connections not opened are nil.
		firstErr = fmt.Errorf("%d of %d connections opened: %w", n-missing, n, ctx.Err())
	}
	if firstErr != nil {
		closeAll(conns)
		if errors.Is(firstErr, context.DeadlineExceeded) {
			firstErr = fmt.Errorf("%w (--setup-timeout)", firstErr)
		}
		return nil, firstErr
	}
	return conns, nil
}

func countNil(conns []*benchConn) int {
	n := 0
	for _, bc := range conns {
		if bc == nil {
			n++
		}
	}
	return n
}

// closeAll ends the connections and waits for the readers that were
// started, five seconds at most in all.
func closeAll(conns []*benchConn) {
	for _, bc := range conns {
		if bc != nil {
			bc.close()
		}
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for _, bc := range conns {
		if bc != nil && bc.reading {
			select {
			case <-bc.readerEnd:
			case <-deadline.C:
				return
			}
		}
	}
}

// --- latency histogram ---

// histogram counts latencies in microseconds in log-linear buckets (32 per
// power of two: about 3% resolution), sharded so that readers rarely share
// a lock. max is exact.
type histogram struct {
	shards [64]histShard
}

type histShard struct {
	mu     sync.Mutex
	counts [histBuckets]uint64
	n      uint64
	max    int64
	_      [40]byte
}

const histBuckets = 64 + 40*32

var histNext atomic.Uint32

func histBucket(us int64) int {
	if us < 64 {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 6
	i := 64 + (shift-1)*32 + int(uint64(us)>>shift) - 32
	return min(i, histBuckets-1)
}

// histValue is the middle of bucket i, in microseconds.
func histValue(i int) float64 {
	if i < 64 {
		return float64(i)
	}
	shift := (i-64)/32 + 1
	low := uint64((i-64)%32+32) << shift
	return float64(low) + float64(uint64(1)<<shift)/2
}

func (h *histogram) record(us int64) {
	s := &h.shards[histNext.Add(1)%uint32(len(h.shards))]
	s.mu.Lock()
	s.counts[histBucket(us)]++
	s.n++
	s.max = max(s.max, us)
	s.mu.Unlock()
}

// latency is a summary in milliseconds.
type latency struct {
	N                  uint64
	P50, P90, P99, Max float64
}

func (h *histogram) summary() latency {
	var all [histBuckets]uint64
	var l latency
	var mx int64
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for j, c := range s.counts {
			all[j] += c
		}
		l.N += s.n
		mx = max(mx, s.max)
		s.mu.Unlock()
	}
	if l.N == 0 {
		return l
	}
	// The nearest rank: the least value at least a fraction p of the
	// samples are at or under (of 100, the 99th, not the largest).
	q := func(p float64) float64 {
		rank := max(uint64(math.Ceil(p*float64(l.N))), 1)
		var acc uint64
		for i, c := range all {
			acc += c
			if acc >= rank {
				return min(histValue(i), float64(mx)) / 1000
			}
		}
		return float64(mx) / 1000
	}
	l.P50, l.P90, l.P99, l.Max = q(0.50), q(0.90), q(0.99), float64(mx)/1000
	return l
}

// --- CPU and memory from /proc ---

// clockTicks is USER_HZ, 100 on every Linux build that matters.
const clockTicks = 100

// procCPU returns the CPU time (user+system) a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procRSS returns a process's resident memory in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// serverCounts are counters the server keeps in /metrics that a run
// reads before and after it: its socket writes to clients
// (fazt_ws_writes_total; deliveries per write is the fan-out's lever),
// and its log's commits and the events they carried
// (fazt_log_commit_seconds_count, fazt_log_events_total). A count the
// server does not give is -1.
type serverCounts struct {
	writes, commits, events int64
	why                     string // when a count is -1: why it could not be read
}

func (o *benchOptions) serverCounts(ctx context.Context) serverCounts {
	c := serverCounts{-1, -1, -1, ""}
	status, b, err := o.get(ctx, "/metrics")
	switch {
	case err != nil:
		c.why = err.Error()
		return c
	case status == http.StatusUnauthorized:
		c.why = "401: /metrics takes the admin key, and --key (FAZT_ADMIN_KEY) is not it"
		if o.key == "" {
			c.why = "401: /metrics takes the admin key, and no --key (FAZT_ADMIN_KEY) was given"
		}
		return c
	case status != http.StatusOK:
		c.why = fmt.Sprintf("status %d", status)
		return c
	}
	for _, m := range []struct {
		name string
		n    *int64
	}{{"fazt_ws_writes_total", &c.writes}, {"fazt_log_commit_seconds_count", &c.commits}, {"fazt_log_events_total", &c.events}} {
		if v, ok := promtext.Value(string(b), m.name); ok {
			*m.n = int64(v)
		}
	}
	return c
}

// since returns the counts from before to c, each -1 where either read
// lacks it.
func (c serverCounts) since(before serverCounts) serverCounts {
	d := func(a, b int64) int64 {
		if a < 0 || b < 0 {
			return -1
		}
		return a - b
	}
	why := c.why
	if why == "" {
		why = before.why
	}
	return serverCounts{d(c.writes, before.writes), d(c.commits, before.commits), d(c.events, before.events), why}
}

// because is " (why)" for a reason given, "" otherwise.
func because(why string) string {
	if why == "" {
		return ""
	}
	return " (" + why + ")"
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU share of this tool and of the server over a
// window of wall time.
type cpuMeter struct {
	pid             int
	wall            time.Time
	self, server    time.Duration
	serverAvailable bool
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, wall: time.Now(), self: selfCPU()}
	if pid > 0 {
		if c, err := procCPU(pid); err == nil {
			m.server, m.serverAvailable = c, true
		}
	}
	return m
}

// stop returns the CPU used as a percentage of one core: this tool's, and
// the server's (-1 when unknown).
func (m *cpuMeter) stop() (self, server float64) {
	return m.stopAt(time.Now())
}

// stopAt is stop for a run whose work ended at end, before now: the CPU
// used until now is shared over the wall time until end. A run that waits
// for deliveries that never come ends with seconds of idling, which would
// otherwise dilute both shares (and flatter the deliveries per CPU-second
// worked out from them).
func (m *cpuMeter) stopAt(end time.Time) (self, server float64) {
	wall := end.Sub(m.wall)
	if wall <= 0 {
		wall = time.Since(m.wall)
	}
	self = 100 * float64(selfCPU()-m.self) / float64(wall)
	server = -1
	if m.serverAvailable {
		if c, err := procCPU(m.pid); err == nil {
			server = 100 * float64(c-m.server) / float64(wall)
		}
	}
	return self, server
}

// raiseNoFile raises this process's open-file limit to at least need and
// returns a note when it cannot.
func raiseNoFile(need uint64) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("cannot read the open-file limit: %v", err)
	}
	if lim.Cur >= need {
		return ""
	}
	want := lim
	want.Cur = need
	if want.Max < need {
		want.Max = need // works only with CAP_SYS_RESOURCE
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want = lim
		want.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
		return fmt.Sprintf("open-file limit is %d, below the %d this run needs, and could not be raised (%v); raise it with ulimit -n", lim.Max, need, err)
	}
	return ""
}

// --- reporting ---

// benchReport is the figures of one run, printed for humans and, with
// --json, as one JSON line.
type benchReport struct {
	fields map[string]any
	lines  []string
	// failed says why the run did not measure the load it was asked for
	// (publishes refused, connections lost); the command prints the
	// report, then exits with it.
	failed error
}

func (o *benchOptions) newReport(scenario string) *benchReport {
	r := &benchReport{fields: map[string]any{"scenario": scenario, "time": time.Now().UTC().Format(time.RFC3339)}}
	if o.slack > 0 {
		r.set("bench_timer_slack_us", o.slack.Microseconds())
	}
	return r
}

func (r *benchReport) set(k string, v any) { r.fields[k] = v }
func (r *benchReport) linef(format string, a ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
}

func round(v float64, digits int) float64 {
	p, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', digits, 64), 64)
	return p
}

func (r *benchReport) latency(prefix string, l latency) {
	r.set(prefix+"p50_ms", round(l.P50, 3))
	r.set(prefix+"p90_ms", round(l.P90, 3))
	r.set(prefix+"p99_ms", round(l.P99, 3))
	r.set(prefix+"max_ms", round(l.Max, 3))
	label := "latency"
	if prefix != "" {
		label = strings.TrimSuffix(prefix, "_")
	}
	r.linef("  %-12s p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)", label, l.P50, l.P90, l.P99, l.Max, l.N)
}

func (r *benchReport) cpu(self, server float64, pid int) {
	r.set("bench_cpu_pct", round(self, 1))
	if reads := benchReads(); reads != "" {
		r.set("bench_reads", reads)
	}
	if server >= 0 {
		r.set("server_cpu_pct", round(server, 1))
		r.linef("  cpu          server %.0f%% of a core (pid %d), bench %.0f%%", server, pid, self)
	} else if pid > 0 {
		r.linef("  cpu          bench %.0f%% of a core; server: /proc/%d could not be read (has it ended?)", self, pid)
	} else {
		r.linef("  cpu          bench %.0f%% of a core; server: pass --server-pid to see it", self)
	}
}

func (r *benchReport) check(lost, dup, ooo int64) {
	r.set("lost", lost)
	r.set("duplicated", dup)
	r.set("out_of_order", ooo)
	verdict := "ok"
	if lost+dup+ooo != 0 {
		verdict = "FAILED"
	}
	r.linef("  check        lost %d  duplicated %d  out-of-order %d  %s", lost, dup, ooo, verdict)
}

func (r *benchReport) print(w io.Writer, asJSON bool) error {
	for _, l := range r.lines {
		fmt.Fprintln(w, l)
	}
	if asJSON {
		b, err := json.Marshal(r.fields)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n", b)
	}
	var check error
	if n, _ := r.fields["lost"].(int64); n != 0 {
		check = errors.New("messages were lost")
	} else if n, _ := r.fields["duplicated"].(int64); n != 0 {
		check = errors.New("messages were duplicated")
	} else if n, _ := r.fields["out_of_order"].(int64); n != 0 {
		check = errors.New("messages arrived out of order")
	}
	return joinErrs(check, r.failed)
}

// joinErrs is a and b on one line, or whichever is not nil.
func joinErrs(a, b error) error {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return fmt.Errorf("%w; %w", a, b)
}

// commas formats n with thousands separators.
func commas(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
