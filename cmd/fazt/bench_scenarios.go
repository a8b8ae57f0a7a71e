package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
)

// loadFlags are the publishing flags of the delivery scenarios.
type loadFlags struct {
	messages    int
	concurrency int
	rate        float64 // thousands of deliveries per second; 0: as fast as it goes
	size        int     // padding bytes in each message's data
	connConc    int
	via         string // fanout, channels: "api" or "ws"
	batch       int    // fanout, channels: publishes per API request
}

func (f *loadFlags) register(cmd *cobra.Command, messages, concurrency int, what string) {
	fl := cmd.Flags()
	fl.IntVarP(&f.messages, "messages", "m", messages, what+" to send (with --rate and no -m: 20 seconds' worth)")
	fl.IntVarP(&f.concurrency, "concurrency", "p", concurrency, "requests in flight at once")
	fl.Float64Var(&f.rate, "rate", 0, "fixed rate in thousands of deliveries per second (0: unthrottled)")
	fl.IntVar(&f.size, "size", 0, "extra bytes of padding in each message's data")
	fl.IntVar(&f.connConc, "connect-concurrency", 64, "connections being opened at once")
}

// messagesFor applies the --rate default for -m and returns the publish
// rate per second (0 for unthrottled).
func (f *loadFlags) messagesFor(cmd *cobra.Command, perPublish int) float64 {
	if f.rate <= 0 {
		return 0
	}
	pubRate := f.rate * 1000 / float64(max(perPublish, 1))
	if !cmd.Flags().Changed("messages") {
		f.messages = max(1, int(pubRate*20))
	}
	return pubRate
}

// registerVia adds --via and --batch, for the scenarios that publish.
func (f *loadFlags) registerVia(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.via, "via", "api", `how to publish: "api" (POST /_api/publish) or "ws" (client publish frames on -p connections of their own; the app must allow client_publish)`)
	cmd.Flags().IntVar(&f.batch, "batch", 1, "publishes per request: over 1, each request is a POST /_api/publish-batch of that many (--via api only)")
}

// perRequest describes --batch for a scenario's first line.
func (f *loadFlags) perRequest() string {
	if f.batch > 1 {
		return fmt.Sprintf(" (%d per request)", f.batch)
	}
	return ""
}

func (f *loadFlags) validate() error {
	if f.messages <= 0 || f.concurrency <= 0 || f.connConc <= 0 {
		return fmt.Errorf("-m, -p and --connect-concurrency must be positive")
	}
	if f.size < 0 {
		return fmt.Errorf("--size %d: want 0 or more", f.size)
	}
	if f.via != "" && f.via != "api" && f.via != "ws" {
		return fmt.Errorf("--via %q: want api or ws", f.via)
	}
	if f.via != "" && (f.batch < 1 || f.batch > 1000) { // via: the scenario has --batch
		return fmt.Errorf("--batch %d: want 1 to 1000", f.batch)
	}
	if f.batch > 1 && f.via == "ws" {
		return fmt.Errorf("--batch is for --via api: a client publishes one message per frame")
	}
	return nil
}

// publisher returns the publishing function --via chose for the
// channels names, and what closes its connections.
func (o *benchOptions) publisher(ctx context.Context, lf *loadFlags, names []string, pad string) (sendFunc, func(), error) {
	if lf.via == "ws" {
		return o.wsPublish(ctx, names, pad, lf.concurrency)
	}
	return o.apiPublish(names, pad), func() {}, nil
}

// sendFunc sends one publish to each channel of chs, in one request,
// stamped with the send time, and reports whether the server accepted them.
type sendFunc func(ctx context.Context, buf []byte, chs []int, sent int64) ([]byte, bool, error)

// loadResult is what the publishers did.
type loadResult struct {
	sent, ok, failed int64
	firstErr         error
	start, end       time.Time
	perChannel       []atomic.Int64 // accepted publishes by channel
	reqLatency       *histogram     // request round trips
	// Under a rate, how late requests went out against their schedule
	// (0 for those on time), and how many were a millisecond or more late.
	lag  *histogram
	late atomic.Int64
}

// publishLoad runs m publishes with conc workers, batch publishes per
// request, at pubRate publishes per second when it is positive, each to the
// channel pick chooses. It starts no new request once stop ends; requests
// run under ctx, so that those in flight at the cap finish and are counted
// (a cancelled request may still have been committed).
//
// Under a rate, a request that goes out after its time because every
// worker was busy (the server stalled) counts its latencies from its time,
// not from when it went: stamped with the time it went, the stall would be
// missing from every latency but its own requests' (coordinated omission).
func publishLoad(ctx, stop context.Context, m, conc, batch int, pubRate float64, channels int, pick func(r *rand.Rand) int, send sendFunc) *loadResult {
	batch = max(batch, 1)
	res := &loadResult{perChannel: make([]atomic.Int64, channels), reqLatency: &histogram{}}
	var next atomic.Int64
	var interval time.Duration
	if pubRate > 0 {
		interval = time.Duration(float64(time.Second) / pubRate)
		res.lag = &histogram{}
	}
	var emu sync.Mutex
	var wg sync.WaitGroup
	res.start = time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
			var buf []byte
			var chs []int
			for {
				n := next.Add(int64(batch)) - int64(batch)
				if n >= int64(m) || stop.Err() != nil {
					return
				}
				k := min(int64(batch), int64(m)-n)
				var due time.Time // when a request behind its schedule was due
				if interval > 0 {
					at := res.start.Add(time.Duration(n) * interval)
					if d := time.Until(at); d > 0 {
						// On time: stamped when the timer woke it, so
						// that the timer's own lateness is not the
						// server's.
						select {
						case <-time.After(d):
						case <-stop.Done():
							return
						}
					} else {
						due = at
					}
				}
				chs = chs[:0]
				for range k {
					chs = append(chs, pick(rng))
				}
				t0 := time.Now()
				if interval > 0 {
					var lag time.Duration
					if !due.IsZero() {
						lag, t0 = t0.Sub(due), due
					}
					res.lag.record(lag.Microseconds())
					if lag >= time.Millisecond {
						res.late.Add(1)
					}
				}
				var ok bool
				var err error
				buf, ok, err = send(ctx, buf[:0], chs, t0.UnixNano())
				res.reqLatency.record(time.Since(t0).Microseconds())
				atomic.AddInt64(&res.sent, k)
				if ok {
					atomic.AddInt64(&res.ok, k)
					for _, ch := range chs {
						res.perChannel[ch].Add(1)
					}
					continue
				}
				atomic.AddInt64(&res.failed, k)
				emu.Lock()
				if res.firstErr == nil {
					if err == nil {
						err = fmt.Errorf("refused: %.200s", buf)
					}
					res.firstErr = err
				}
				emu.Unlock()
			}
		}(uint64(w))
	}
	wg.Wait()
	res.end = time.Now()
	return res
}

// waitDeliveries waits until the connections have received want message
// frames in all, nothing has arrived for quiet, or ctx ends, and then, when
// all came, for afterAll more: a frame sent twice (the last one, say) is
// read and counted, not left unread when the connections close. It
// returns the time of the last delivery.
func waitDeliveries(ctx context.Context, conns []*benchConn, want int64, quiet time.Duration) time.Time {
	var prev int64
	lastProgress := time.Now()
	var allAt time.Time
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var total int64
		for _, bc := range conns {
			total += bc.recv.Load()
		}
		if total != prev {
			prev, lastProgress = total, time.Now()
		}
		if total >= want && allAt.IsZero() {
			allAt = time.Now()
		}
		if !allAt.IsZero() && time.Since(allAt) >= afterAll || allAt.IsZero() && time.Since(lastProgress) > quiet {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return lastDelivery(conns)
		}
	}
	return lastDelivery(conns)
}

// latest is the later of a and b.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// afterAll is how long a run reads on once every delivery it expected has
// come, for duplicates behind them.
const afterAll = 100 * time.Millisecond

func lastDelivery(conns []*benchConn) time.Time {
	var last int64
	for _, bc := range conns {
		last = max(last, bc.last.Load())
	}
	if last == 0 {
		return time.Now()
	}
	return time.Unix(0, last)
}

// deliveryTotals checks every connection against what was published to its
// channel. Call it after the readers have stopped.
// upto, when not nil, is each connection's last offset due.
func deliveryTotals(conns []*benchConn, perChannel []atomic.Int64, upto []uint64) (recv, lost, dup, ooo, connErrs int64, firstErr error) {
	for i, bc := range conns {
		recv += bc.recv.Load()
		if err := bc.endErr(); err != nil {
			connErrs++
			if firstErr == nil {
				firstErr = err
			}
			if err == errReaderStuck {
				continue // its counts are its reader's still
			}
		}
		// A channel in use already (js --channel) is joined at its head.
		last := bc.head + uint64(perChannel[bc.channel].Load())
		if upto != nil {
			last = upto[i]
		}
		lost += bc.missing(bc.head+1, last)
		dup += bc.dup
		ooo += bc.ooo
	}
	return
}

// stoppedBy says what cut a run short: the user (parent ended, an
// interrupt) or --duration.
func stoppedBy(parent context.Context, duration time.Duration) string {
	if parent.Err() != nil {
		return "interrupted"
	}
	return fmt.Sprintf("stopped by --duration %s", duration)
}

// runDelivery is the body of the fanout, channels and js scenarios: conns
// are subscribed, the load is published, deliveries are awaited and
// checked, and the report is filled in. headAfter, when not nil, reads the
// head of the one channel of a run (js --channel) whose channel others may
// publish to: their messages are then due to every subscriber too.
func (o *benchOptions) runDelivery(parent context.Context, r *benchReport, conns []*benchConn, channels int, perPublish int, lf *loadFlags, pubRate float64, pick func(*rand.Rand) int, send sendFunc, headAfter func(context.Context) (uint64, error)) {
	lat := &deliveryLatency{}
	for _, bc := range conns {
		bc.startReader(lat)
	}
	capCtx, cancel := context.WithTimeout(parent, o.duration)
	defer cancel()
	countsBefore := o.serverCounts(parent)
	meter := startCPU(o.serverPID)
	load := publishLoad(parent, capCtx, lf.messages, lf.concurrency, lf.batch, pubRate, channels, pick, send)
	want := load.ok * int64(perPublish)
	var upto []uint64
	var others int64
	if headAfter != nil {
		// Every broadcast of the run was committed before its request
		// was answered, so the head read now is at or past the run's.
		head, err := headAfter(parent)
		if err != nil {
			r.linef("  note         only the run's own messages are checked: %v", err)
		} else {
			upto, want = make([]uint64, len(conns)), 0
			first := head
			for i, bc := range conns {
				upto[i] = max(head, bc.head+uint64(load.perChannel[bc.channel].Load()))
				want += int64(upto[i] - bc.head)
				first = min(first, bc.head)
			}
			others = int64(head-first) - load.ok
		}
	}
	// Deliveries still in flight at the cap are waited for, briefly.
	drain, cancelDrain := context.WithTimeout(parent, 30*time.Second)
	defer cancelDrain()
	end := waitDeliveries(drain, conns, want, 5*time.Second)
	// The CPU's window ends at the last delivery, or at the last request's
	// answer when requests went on after it (refused, or broadcasting
	// nothing).
	selfPct, serverPct := meter.stopAt(latest(end, load.end))
	counts := o.serverCounts(parent).since(countsBefore)
	writes := counts.writes
	closeAll(conns)
	recv, lost, dup, ooo, connErrs, connErr := deliveryTotals(conns, load.perChannel, upto)

	window := end.Sub(load.start).Seconds()
	pubWindow := load.end.Sub(load.start).Seconds()
	r.set("published", load.ok)
	r.set("publish_errors", load.failed)
	r.set("deliveries", recv)
	r.set("deliveries_expected", want)
	r.set("deliveries_per_s", round(float64(recv)/window, 0))
	r.set("publishes_per_s", round(float64(load.ok)/pubWindow, 0))
	r.set("seconds", round(window, 3))
	r.linef("  deliveries   %s of %s in %.2f s = %s/s", commas(float64(recv)), commas(float64(want)), window, commas(float64(recv)/window))
	r.linef("  publishes    %s in %.2f s = %s/s (%d refused)", commas(float64(load.ok)), pubWindow, commas(float64(load.ok)/pubWindow), load.failed)
	r.latency("", lat.read.summary())
	if al := lat.arrival.summary(); al.N > 0 {
		// Where the system gives receive times: a sample of the
		// deliveries, to their arrival for the subscriber's socket, and
		// the tool's delay in reading those same deliveries.
		r.latency("arrival_", al)
		r.latency("tool_delay_", lat.delay.summary())
		r.set("arrival_samples", al.N)
	}
	if n := lat.unstamped.Load(); n > 0 {
		r.set("arrival_unstamped", n)
		r.linef("  note         %d deliveries to the sampled subscribers came with no receive time", n)
	}
	rl := load.reqLatency.summary()
	r.set("request_p50_ms", round(rl.P50, 3))
	r.set("request_p99_ms", round(rl.P99, 3))
	r.linef("  request      p50 %.2f ms  p99 %.2f ms (publish round trip)", rl.P50, rl.P99)
	if pubRate > 0 {
		// Latencies count from each request's scheduled time when it went
		// out late (publishLoad); how late they went is said here.
		gl := load.lag.summary()
		late := load.late.Load()
		r.set("schedule_lag_p99_ms", round(gl.P99, 3))
		r.set("schedule_lag_max_ms", round(gl.Max, 3))
		r.set("requests_late", late)
		r.linef("  schedule     %d of %d requests went out 1 ms or more after their time; lag p99 %.2f ms  max %.2f ms", late, gl.N, gl.P99, gl.Max)
	}
	r.check(lost, dup, ooo)
	if others > 0 {
		r.set("other_messages", others)
		r.linef("  note         %d messages others published to the channel during the run were due to every subscriber too, and checked", others)
	}
	r.cpu(selfPct, serverPct, o.serverPID)
	if serverPct > 0 && recv > 0 {
		// What one whole server core would deliver at this cost: robust
		// when other processes share the machine.
		perCore := float64(recv) / (window * serverPct / 100)
		r.set("deliveries_per_server_cpu_s", round(perCore, 0))
		r.linef("  efficiency   %s deliveries per server CPU-second (%.2f us of server CPU per delivery)", commas(perCore), 1e6/perCore)
	}
	if writes > 0 {
		r.set("server_writes", writes)
		r.set("frames_per_write", round(float64(recv)/float64(writes), 2))
		r.linef("  writes       server made %s socket writes to clients: %.2f deliveries per write", commas(float64(writes)), float64(recv)/float64(writes))
	} else if writes < 0 {
		r.linef("  writes       unknown: could not read fazt_ws_writes_total from the server's /metrics%s", because(counts.why))
	}
	if counts.commits > 0 && counts.events >= 0 {
		r.set("server_commits", counts.commits)
		r.set("server_events", counts.events)
		r.set("events_per_commit", round(float64(counts.events)/float64(counts.commits), 2))
		r.linef("  commits      the server's log committed %s events in %s commits: %.2f per commit", commas(float64(counts.events)), commas(float64(counts.commits)), float64(counts.events)/float64(counts.commits))
	} else if counts.commits < 0 || counts.events < 0 {
		r.linef("  commits      unknown: could not read fazt_log_commit_seconds_count and fazt_log_events_total from the server's /metrics%s", because(counts.why))
	}
	if capCtx.Err() != nil && load.sent < int64(lf.messages) {
		r.set("capped", true)
		r.linef("  note         %s after %d of %d publishes", stoppedBy(parent, o.duration), load.sent, lf.messages)
	}
	if load.firstErr != nil {
		r.linef("  note         first publish error: %v", load.firstErr)
	}
	if connErrs > 0 {
		r.set("connection_errors", connErrs)
		r.linef("  note         %d connections failed; first: %v", connErrs, connErr)
		r.failed = fmt.Errorf("%d of %d connections failed", connErrs, len(conns))
	}
	if load.failed > 0 {
		what := "publishes"
		if r.fields["scenario"] == "js" {
			what = "handler requests"
		}
		r.failed = joinErrs(r.failed, fmt.Errorf("%d of %d %s failed; first: %v", load.failed, load.sent, what, load.firstErr))
	}
}

// wsPublish publishes as browsers do: `publish` frames on conc
// WebSocket connections of its own (subscribed to nothing), each request
// waiting for its `published` reply. It returns what closes them.
func (o *benchOptions) wsPublish(ctx context.Context, names []string, pad string, conc int) (sendFunc, func(), error) {
	pool := make(chan *benchWS, conc)
	closePublishers := func() {
		for {
			select {
			case c := <-pool:
				c.close()
			default:
				return
			}
		}
	}
	deadline := time.Now().Add(o.setupTimeout + o.duration + time.Minute)
	for range conc {
		c, err := dialBenchWS(ctx, o.wsURL, o.host, 4<<10, false)
		if err != nil {
			closePublishers()
			return nil, nil, fmt.Errorf("publisher: dial: %w", err)
		}
		c.conn.SetReadDeadline(deadline)
		if msg, err := c.next(); err != nil || !bytes.HasPrefix(msg, []byte(`{"type":"connected"`)) {
			c.conn.Close()
			closePublishers()
			return nil, nil, fmt.Errorf("publisher: no connected frame: %.200s %v", msg, err)
		}
		pool <- c
	}
	send := func(ctx context.Context, buf []byte, chs []int, sent int64) ([]byte, bool, error) {
		// The worker's buffer holds the frame; no response body needs it.
		frame := publishFields(append(buf[:0], `{"type":"publish",`...), names[chs[0]], sent, pad)
		c := <-pool
		defer func() { pool <- c }()
		// The read waits for the reply, or until the run is stopped.
		defer context.AfterFunc(ctx, func() { c.conn.SetReadDeadline(time.Now()) })()
		if err := c.write(wsText, frame); err != nil {
			return frame, false, fmt.Errorf("publisher connection: %w", err)
		}
		for {
			msg, err := c.next()
			if err != nil {
				return frame, false, fmt.Errorf("publisher connection: %w", err)
			}
			switch {
			case bytes.HasPrefix(msg, []byte(`{"type":"published"`)):
				return frame, true, nil
			case bytes.HasPrefix(msg, []byte(`{"type":"ping"`)):
				c.writeText(`{"type":"pong"}`)
			case bytes.HasPrefix(msg, []byte(`{"type":"error"`)), bytes.HasPrefix(msg, []byte(`{"type":"disconnect"`)):
				return frame, false, fmt.Errorf("client publish refused: %.200s", msg)
			}
		}
	}
	return send, closePublishers, nil
}

// apiPublish sends through POST /_api/publish, or /_api/publish-batch
// for more than one message.
func (o *benchOptions) apiPublish(names []string, pad string) sendFunc {
	var bodies sync.Pool
	return func(ctx context.Context, buf []byte, chs []int, sent int64) ([]byte, bool, error) {
		bp, _ := bodies.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		path, body := "/_api/publish", (*bp)[:0]
		if len(chs) == 1 {
			body = publishBody(body, names[chs[0]], sent, pad)
		} else {
			path = "/_api/publish-batch"
			body = append(body, `{"messages":[`...)
			for i, ch := range chs {
				if i > 0 {
					body = append(body, ',')
				}
				body = publishBody(body, names[ch], sent, pad)
			}
			body = append(body, "]}"...)
		}
		status, buf, err := o.post(ctx, path, body, buf)
		*bp = body
		bodies.Put(bp)
		return buf, err == nil && status == 200, err
	}
}

func benchFanoutCmd(o *benchOptions) *cobra.Command {
	var lf loadFlags
	var subs int
	cmd := &cobra.Command{
		Use:   "fanout",
		Short: "S subscribers on one channel, M publishes through /_api/publish (or --via ws)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pubRate := lf.messagesFor(cmd, subs)
			if err := lf.validate(); err != nil {
				return err
			}
			if subs <= 0 {
				return fmt.Errorf("-s must be positive")
			}
			if err := o.prepare(lf.concurrency); err != nil {
				return err
			}
			r := o.newReport("fanout")
			if note := raiseNoFile(uint64(subs + lf.concurrency + 256)); note != "" {
				r.linef("  note         %s", note)
				r.set("note", note)
			}
			channel := "bench-fanout-" + newRunID()
			sctx, cancel := context.WithTimeout(cmd.Context(), o.setupTimeout)
			defer cancel()
			conns, err := o.connectAll(sctx, 16<<10, subs, lf.connConc, func(int) (string, int) { return channel, 0 }, "", o.arrivalSample(subs, subs))
			if err != nil {
				return err
			}
			rateText := "unthrottled"
			if pubRate > 0 {
				rateText = fmt.Sprintf("rate %gk deliveries/s = %.0f publishes/s", lf.rate, pubRate)
			}
			r.lines = append([]string{fmt.Sprintf("fanout: %d subscribers on one channel, %d publishes%s, concurrency %d, %s", subs, lf.messages, lf.perRequest(), lf.concurrency, rateText)}, r.lines...)
			r.set("subscribers", subs)
			r.set("messages", lf.messages)
			r.set("concurrency", lf.concurrency)
			r.set("rate_k", lf.rate)
			r.set("via", lf.via)
			r.set("batch", max(lf.batch, 1))
			pad := strings.Repeat("x", lf.size)
			send, closePublishers, err := o.publisher(sctx, &lf, []string{channel}, pad)
			if err != nil {
				closeAll(conns)
				return err
			}
			defer closePublishers()
			o.runDelivery(cmd.Context(), r, conns, 1, subs, &lf, pubRate, func(*rand.Rand) int { return 0 }, send, nil)
			return r.print(cmd.OutOrStdout(), o.json)
		},
	}
	cmd.Flags().IntVarP(&subs, "subscribers", "s", 1000, "subscribers on the channel")
	lf.register(cmd, 20000, 8, "publishes")
	lf.registerVia(cmd)
	return cmd
}

func benchChannelsCmd(o *benchOptions) *cobra.Command {
	var lf loadFlags
	var chans, perChan int
	cmd := &cobra.Command{
		Use:   "channels",
		Short: "C channels x K subscribers, publishes to random channels",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pubRate := lf.messagesFor(cmd, perChan)
			if err := lf.validate(); err != nil {
				return err
			}
			if chans <= 0 || perChan <= 0 {
				return fmt.Errorf("-c and -k must be positive")
			}
			if err := o.prepare(lf.concurrency); err != nil {
				return err
			}
			r := o.newReport("channels")
			n := chans * perChan
			if note := raiseNoFile(uint64(n + lf.concurrency + 256)); note != "" {
				r.linef("  note         %s", note)
				r.set("note", note)
			}
			id := newRunID()
			names := make([]string, chans)
			for i := range names {
				names[i] = "bench-ch-" + id + "-" + strconv.Itoa(i)
			}
			sctx, cancel := context.WithTimeout(cmd.Context(), o.setupTimeout)
			defer cancel()
			conns, err := o.connectAll(sctx, 4<<10, n, lf.connConc, func(i int) (string, int) { return names[i/perChan], i / perChan }, "", o.arrivalSample(n, perChan))
			if err != nil {
				return err
			}
			r.lines = append([]string{fmt.Sprintf("channels: %d channels x %d subscribers, %d publishes to random channels%s, concurrency %d", chans, perChan, lf.messages, lf.perRequest(), lf.concurrency)}, r.lines...)
			r.set("channels", chans)
			r.set("subscribers_per_channel", perChan)
			r.set("messages", lf.messages)
			r.set("concurrency", lf.concurrency)
			r.set("rate_k", lf.rate)
			r.set("via", lf.via)
			r.set("batch", max(lf.batch, 1))
			pad := strings.Repeat("x", lf.size)
			send, closePublishers, err := o.publisher(sctx, &lf, names, pad)
			if err != nil {
				closeAll(conns)
				return err
			}
			defer closePublishers()
			o.runDelivery(cmd.Context(), r, conns, chans, perChan, &lf, pubRate, func(rng *rand.Rand) int { return rng.IntN(chans) }, send, nil)
			return r.print(cmd.OutOrStdout(), o.json)
		},
	}
	cmd.Flags().IntVarP(&chans, "channels", "c", 2000, "channels")
	cmd.Flags().IntVarP(&perChan, "subscribers", "k", 5, "subscribers per channel")
	lf.register(cmd, 20000, 32, "publishes")
	lf.registerVia(cmd)
	return cmd
}

func benchJSCmd(o *benchOptions) *cobra.Command {
	var lf loadFlags
	var subs int
	var path, body, channel string
	cmd := &cobra.Command{
		Use:   "js",
		Short: "HTTP requests to an app's JS handler that broadcasts (app chat unless --app); S subscribers receive",
		Long: `POST --body to the app's /api/<path> M times. The handler must broadcast each
request to the channel named in it, with the text it was given: {t} in the
body becomes the send time ("ft:<unix nanos>"), which is found by scanning
the delivered frame, and {channel} the run's channel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pubRate := lf.messagesFor(cmd, subs)
			if err := lf.validate(); err != nil {
				return err
			}
			if subs <= 0 {
				return fmt.Errorf("-s must be positive")
			}
			if !cmd.Flags().Changed("app") {
				o.app = "chat"
			}
			if !strings.HasPrefix(path, "/api/") {
				return fmt.Errorf("--path %q: JS handlers live under /api/", path)
			}
			if strings.Count(body, "{t}") != 1 {
				return fmt.Errorf("--body %q: want {t} once, for the send time the delivered message must carry", body)
			}
			if err := o.prepare(lf.concurrency); err != nil {
				return err
			}
			r := o.newReport("js")
			if note := raiseNoFile(uint64(subs + lf.concurrency + 256)); note != "" {
				r.linef("  note         %s", note)
				r.set("note", note)
			}
			if channel == "" {
				channel = "bench-js-" + newRunID()
			}
			sctx, cancel := context.WithTimeout(cmd.Context(), o.setupTimeout)
			defer cancel()
			conns, err := o.connectAll(sctx, 16<<10, subs, lf.connConc, func(int) (string, int) { return channel, 0 }, "", o.arrivalSample(subs, subs))
			if err != nil {
				return err
			}
			r.lines = append([]string{fmt.Sprintf("js: POST %s on app %s, %d requests, concurrency %d, %d subscribers", path, o.app, lf.messages, lf.concurrency, subs)}, r.lines...)
			r.set("app", o.app)
			r.set("path", path)
			r.set("subscribers", subs)
			r.set("messages", lf.messages)
			r.set("concurrency", lf.concurrency)
			r.set("rate_k", lf.rate)
			tmpl := strings.ReplaceAll(body, "{channel}", channel)
			before, after, _ := strings.Cut(tmpl, "{t}")
			send := func(ctx context.Context, buf []byte, _ []int, sent int64) ([]byte, bool, error) {
				b := make([]byte, 0, len(tmpl)+24)
				b = append(b, before...)
				b = append(b, "ft:"...)
				b = strconv.AppendInt(b, sent, 10)
				b = append(b, after...)
				status, buf, err := o.post(ctx, path, b, buf)
				return buf, err == nil && status >= 200 && status < 300, err
			}
			head := func(ctx context.Context) (uint64, error) { return o.channelHead(ctx, channel) }
			o.runDelivery(cmd.Context(), r, conns, 1, subs, &lf, pubRate, func(*rand.Rand) int { return 0 }, send, head)
			r.fields["handler_calls_per_s"] = r.fields["publishes_per_s"]
			return r.print(cmd.OutOrStdout(), o.json)
		},
	}
	cmd.Flags().IntVarP(&subs, "subscribers", "s", 100, "subscribers on the channel")
	cmd.Flags().StringVar(&path, "path", "/api/messages", "the handler's path")
	cmd.Flags().StringVar(&body, "body", `{"channel":"{channel}","text":"{t}"}`, "request body; {channel} and {t} are filled in")
	cmd.Flags().StringVar(&channel, "channel", "", "channel the handler broadcasts to (default: a fresh one per run)")
	lf.register(cmd, 5000, 8, "requests")
	return cmd
}

func benchConnsCmd(o *benchOptions) *cobra.Command {
	var n, conc int
	var hold time.Duration
	cmd := &cobra.Command{
		Use:   "conns",
		Short: "N idle connections, each subscribed to its own channel: connect rate and server memory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n <= 0 || conc <= 0 {
				return fmt.Errorf("-n and --connect-concurrency must be positive")
			}
			if err := o.prepare(4); err != nil {
				return err
			}
			r := o.newReport("conns")
			r.lines = append(r.lines, fmt.Sprintf("conns: %d connections, each subscribed to its own channel, %d opened at once", n, conc))
			if note := raiseNoFile(uint64(n + 256)); note != "" {
				r.linef("  note         %s", note)
				r.set("note", note)
			}
			var rss0 int64 = -1
			var rssErr error
			if o.serverPID > 0 {
				rss0, rssErr = procRSS(o.serverPID)
				if rssErr != nil {
					rss0 = -1
				}
			}
			id := newRunID()
			ctx, cancel := context.WithTimeout(cmd.Context(), min(o.duration, o.setupTimeout))
			defer cancel()
			meter := startCPU(o.serverPID)
			t0 := time.Now()
			conns, err := o.connectAll(ctx, 1<<10, n, conc, func(i int) (string, int) { return "bench-conn-" + id + "-" + strconv.Itoa(i), 0 }, "", nil)
			if err != nil {
				return err
			}
			elapsed := time.Since(t0).Seconds()
			selfPct, serverPct := meter.stop()
			for _, bc := range conns {
				bc.startReader(nil)
			}
			select { // the hold, or less if interrupted
			case <-time.After(hold):
			case <-cmd.Context().Done():
			}
			r.set("connections", n)
			r.set("connect_concurrency", conc)
			r.set("seconds", round(elapsed, 3))
			r.set("connects_per_s", round(float64(n)/elapsed, 0))
			r.linef("  connect      %d connect+subscribe in %.2f s = %s/s", n, elapsed, commas(float64(n)/elapsed))
			if rss0 >= 0 {
				if rss1, err := procRSS(o.serverPID); err != nil {
					r.linef("  memory       cannot read the server's resident memory: %v", err)
				} else {
					r.set("server_rss_before_mb", round(float64(rss0)/(1<<20), 1))
					r.set("server_rss_after_mb", round(float64(rss1)/(1<<20), 1))
					if per, ok := perConnection(rss0, rss1, n); ok {
						r.set("rss_per_conn_kb", round(per/1024, 2))
						r.linef("  memory       server resident %.1f MB -> %.1f MB: %.2f KB per connection (after %s idle)", float64(rss0)/(1<<20), float64(rss1)/(1<<20), per/1024, hold)
					} else {
						note := "the server's resident memory did not grow: it gave back memory from earlier work meanwhile; measure memory per connection on a freshly started server"
						r.linef("  memory       server resident %.1f MB -> %.1f MB (after %s idle)", float64(rss0)/(1<<20), float64(rss1)/(1<<20), hold)
						r.linef("  note         %s", note)
						r.set("memory_note", note)
					}
				}
			} else if rssErr != nil {
				r.linef("  memory       cannot read the server's resident memory: %v", rssErr)
			} else {
				r.linef("  memory       pass --server-pid to see the server's resident memory")
			}
			r.cpu(selfPct, serverPct, o.serverPID)
			// Read once the readers have ended: a connection's end is
			// theirs to record.
			closeAll(conns)
			var connErrs int64
			for _, bc := range conns {
				if bc.endErr() != nil {
					connErrs++
				}
			}
			r.set("connection_errors", connErrs)
			if connErrs > 0 {
				r.linef("  note         %d connections ended early", connErrs)
				r.failed = fmt.Errorf("%d of %d connections ended early", connErrs, n)
			}
			return r.print(cmd.OutOrStdout(), o.json)
		},
	}
	cmd.Flags().IntVarP(&n, "connections", "n", 10000, "connections to open")
	cmd.Flags().IntVar(&conc, "connect-concurrency", 64, "connections being opened at once")
	cmd.Flags().DurationVar(&hold, "hold", 2*time.Second, "how long the connections stay open, idle, before memory is read")
	return cmd
}

// perConnection is the server's resident memory per connection, in
// bytes, from its resident size before and after n connections opened;
// not ok when it did not grow, as when the server gave back memory from
// earlier work while they opened: no figure per connection then.
func perConnection(before, after int64, n int) (float64, bool) {
	if after <= before || n <= 0 {
		return 0, false
	}
	return float64(after-before) / float64(n), true
}

func benchReplayCmd(o *benchOptions) *cobra.Command {
	var history, fillConc, fillBatch, size int
	var channel string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "H messages in a channel, then one subscriber from offset 0",
		Long: `Fill a channel with H messages (kept: a later run on the same channel with at
least H messages reuses them), then subscribe from offset 0 and time the
replay of all of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if history <= 0 || fillConc <= 0 {
				return fmt.Errorf("-H and --fill-concurrency must be positive")
			}
			if fillBatch < 1 || fillBatch > 1000 {
				return fmt.Errorf("--fill-batch %d: want 1 to 1000", fillBatch)
			}
			if size < 0 {
				return fmt.Errorf("--size %d: want 0 or more", size)
			}
			if err := o.prepare(fillConc); err != nil {
				return err
			}
			if channel == "" {
				channel = "bench-replay-" + strconv.Itoa(history)
			}
			r := o.newReport("replay")
			r.lines = append(r.lines, fmt.Sprintf("replay: %d messages in %s, one subscriber from offset 0", history, channel))
			sctx, cancel := context.WithTimeout(cmd.Context(), o.setupTimeout)
			defer cancel()
			head, err := o.channelHead(sctx, channel)
			if err != nil {
				return err
			}
			if head < uint64(history) {
				missing := history - int(head)
				pad := strings.Repeat("x", size)
				// A request of big messages stays within the server's 4 MiB
				// for a batch.
				perRequest := max(1, min(fillBatch, (domain.MaxBatchBytes-1024)/(size+128)))
				load := publishLoad(sctx, sctx, missing, fillConc, perRequest, 0, 1, func(*rand.Rand) int { return 0 }, o.apiPublish([]string{channel}, pad))
				if load.firstErr != nil || load.ok < int64(missing) {
					return fmt.Errorf("fill: %d of %d published: %v", load.ok, missing, load.firstErr)
				}
				s := load.end.Sub(load.start).Seconds()
				r.linef("  fill         %d messages in %.1f s = %s publishes/s (concurrency %d, %d per request)", missing, s, commas(float64(missing)/s), fillConc, perRequest)
				r.set("fill_publishes_per_s", round(float64(missing)/s, 0))
			}
			ctx, cancel2 := context.WithTimeout(cmd.Context(), o.duration)
			defer cancel2()
			meter := startCPU(o.serverPID)
			t0 := time.Now()
			bc, err := o.dialSubscribe(ctx, 64<<10, channel, `,"offset":0`, false)
			if err != nil {
				return err
			}
			bc.done, bc.doneAt = make(chan struct{}), bc.head
			done := bc.done
			bc.startReader(nil)
			capped := false // stopped by --duration (or an interrupt), not over
			select {
			case <-done:
			case <-ctx.Done():
				select { // both ready at once: select picks either
				case <-done:
				default:
					capped = true
				}
			case <-bc.readerEnd: // the server ended the connection: bc.err says why
			}
			elapsed := time.Since(t0).Seconds()
			selfPct, serverPct := meter.stop()
			if !capped {
				// Read on a little: a frame sent twice behind the head
				// is counted rather than left unread.
				select {
				case <-time.After(afterAll):
				case <-bc.readerEnd:
				}
			}
			closeAll([]*benchConn{bc})
			if !bc.ended() {
				return fmt.Errorf("replay: %w: its counts cannot be read", errReaderStuck)
			}
			recv := bc.recv.Load()
			r.set("history", history)
			r.set("head", bc.head)
			r.set("replayed", recv)
			r.set("seconds", round(elapsed, 3))
			r.set("messages_per_s", round(float64(recv)/elapsed, 0))
			r.linef("  replay       %s messages (head %d, announced %d) in %.3f s = %s/s", commas(float64(recv)), bc.head, bc.replay, elapsed, commas(float64(recv)/elapsed))
			// What the server retains, from first_offset (retention may
			// have trimmed a reused channel), up to the head. Offsets past
			// the last one read are unread, not lost, in a run stopped by
			// --duration (the replay was not over), and lost in a run the
			// server ended; either fails.
			from, upto := max(bc.first, 1), bc.head
			var unread int64
			if capped && bc.maxOff < bc.head {
				upto = max(bc.maxOff, from-1)
				unread = int64(bc.head - upto)
			}
			r.check(bc.missing(from, upto), bc.dup, bc.ooo)
			if capped {
				r.set("unread", unread)
			}
			r.cpu(selfPct, serverPct, o.serverPID)
			if bc.first > 1 {
				r.set("first_offset", bc.first)
				r.linef("  note         the channel retains offsets from %d on: the rest was trimmed", bc.first)
			}
			if capped {
				r.set("capped", true)
				r.linef("  note         %s, %d of %d read; %d offsets before the head unread", stoppedBy(cmd.Context(), o.duration), recv, bc.head+1-min(from, bc.head+1), unread)
				if unread > 0 {
					r.failed = fmt.Errorf("%s before the replay reached the head: %d offsets unread", stoppedBy(cmd.Context(), o.duration), unread)
				}
			}
			if err := bc.endErr(); err != nil {
				r.set("connection_error", err.Error())
				r.linef("  error        %v", err)
				r.failed = fmt.Errorf("the server ended the replay's connection: %w", err)
			}
			return r.print(cmd.OutOrStdout(), o.json)
		},
	}
	cmd.Flags().IntVarP(&history, "history", "H", 1000000, "messages in the channel")
	cmd.Flags().IntVar(&fillConc, "fill-concurrency", 32, "requests in flight while filling")
	cmd.Flags().IntVar(&fillBatch, "fill-batch", 100, "messages per request while filling (POST /_api/publish-batch when over 1)")
	cmd.Flags().IntVar(&size, "size", 0, "extra bytes of padding in each filled message")
	cmd.Flags().StringVar(&channel, "channel", "", "channel to fill and replay (default bench-replay-<H>)")
	return cmd
}

// channelHead reads a channel's head offset from its history endpoint.
func (o *benchOptions) channelHead(ctx context.Context, channel string) (uint64, error) {
	status, b, err := o.get(ctx, "/_api/channels/"+url.PathEscape(channel)+"/history?last=1")
	if err != nil {
		return 0, fmt.Errorf("read head of %s: %w", channel, err)
	}
	if status != 200 {
		return 0, fmt.Errorf("read head of %s: status %d: %.200s", channel, status, b)
	}
	head, _ := scanUint(b, `"head":`)
	return head, nil
}
