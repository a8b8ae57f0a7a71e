package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/transport/ws"
)

func TestSubscribeReplayModes(t *testing.T) {
	// Pages of 4: every replay below spans several history reads.
	tn := startTestNode(t, nil, withWS(ws.Config{ReplayPage: 4}))
	var stamps []uint64
	for i := 1; i <= 20; i++ {
		tn.publish("", "chat", map[string]any{"n": i})
		if i == 10 || i == 11 {
			time.Sleep(5 * time.Millisecond) // give message 11 a timestamp of its own
		}
	}
	var hist struct {
		Messages []struct {
			Offset    uint64 `json:"offset"`
			Timestamp uint64 `json:"timestamp"`
		} `json:"messages"`
	}
	tn.api("", testAdminKey, "GET", "/_api/channels/chat/history", nil, &hist)
	for _, m := range hist.Messages {
		stamps = append(stamps, m.Timestamp)
	}
	if len(stamps) != 20 {
		t.Fatalf("history has %d messages, want 20", len(stamps))
	}

	cases := []struct {
		name string
		req  map[string]any
		want []uint64
	}{
		{"none: live only", map[string]any{}, nil},
		{"offset 0: everything", map[string]any{"offset": 0}, seqRange(1, 20)},
		{"offset 5", map[string]any{"offset": 5}, seqRange(6, 20)},
		{"offset at head", map[string]any{"offset": 20}, nil},
		{"last 3", map[string]any{"last": 3}, seqRange(18, 20)},
		{"last more than retained", map[string]any{"last": 100}, seqRange(1, 20)},
		{"since message 11", map[string]any{"since": stamps[10]}, seqRange(11, 20)},
	}
	clients := make([]*client, len(cases))
	for i, tc := range cases {
		c := tn.dial("", "")
		clients[i] = c
		req := tc.req
		req["channel"] = "chat"
		req["id"] = i
		sub := c.subscribe(req)
		if sub.num("offset") != 20 || sub.num("replay") != uint64(len(tc.want)) || sub.num("id") != uint64(i) || sub.str("epoch") == "" {
			t.Fatalf("%s: subscribed = %v, want head 20, replay %d, id %d", tc.name, sub, len(tc.want), i)
		}
		if sub["truncated"] != false || sub.num("first_offset") != 1 {
			t.Fatalf("%s: subscribed = %v, want nothing truncated and first_offset 1", tc.name, sub)
		}
		got := c.messages("chat", len(tc.want))
		if !slices.Equal(offsets(got), tc.want) {
			t.Fatalf("%s: replayed offsets %v, want %v", tc.name, offsets(got), tc.want)
		}
		for _, f := range got {
			if f["replay"] != true || f.num("timestamp") == 0 {
				t.Fatalf("%s: replayed frame %v lacks replay:true or timestamp", tc.name, f)
			}
		}
	}
	// Then live, for everyone, with offsets and without replay:true.
	tn.publish("", "chat", "live-21")
	tn.publish("", "chat", "live-22")
	for i, c := range clients {
		got := c.messages("chat", 2)
		if !slices.Equal(offsets(got), []uint64{21, 22}) || got[0]["data"] != "live-21" || got[0]["replay"] != nil {
			t.Fatalf("%s: live frames %v", cases[i].name, got)
		}
	}
}

func TestSubscribeWithOldEpochReplaysFromStart(t *testing.T) {
	tn := startTestNode(t, nil)
	for i := 0; i < 3; i++ {
		tn.publish("", "news", i)
	}
	c := tn.dial("", "")
	sub := c.subscribe(map[string]any{"channel": "news", "offset": 2, "epoch": "not-this-epoch"})
	if sub["epoch_changed"] != true || sub.num("replay") != 3 {
		t.Fatalf("subscribed = %v, want epoch_changed and a replay of all 3", sub)
	}
	if got := offsets(c.messages("news", 3)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("replayed %v", got)
	}
	d := tn.dial("", "")
	sub = d.subscribe(map[string]any{"channel": "news", "offset": 2, "epoch": sub.str("epoch")})
	if sub["epoch_changed"] != nil || sub.num("replay") != 1 {
		t.Fatalf("same epoch: subscribed = %v", sub)
	}
	// Whatever the subscribe asks for, an epoch of another history gets
	// the whole retained one (PROTOCOL.md); with the channel's own epoch,
	// it gets what it asked for. Before, only offset looked at the epoch.
	epoch := sub.str("epoch")
	for _, start := range []map[string]any{{"last": 1}, {"since": time.Now().Add(time.Hour).UnixMilli()}, {}} {
		for _, stale := range []bool{true, false} {
			req := map[string]any{"channel": "news", "epoch": epoch}
			if stale {
				req["epoch"] = "not-this-epoch"
			}
			maps.Copy(req, start)
			want := 0 // since an hour from now, or live
			if _, ok := start["last"]; ok {
				want = 1
			}
			if stale {
				want = 3
			}
			f := tn.dial("", "")
			sub := f.subscribe(req)
			if (sub["epoch_changed"] == true) != stale || sub.num("replay") != uint64(want) {
				t.Fatalf("%v: subscribed = %v; want epoch_changed %v and a replay of %d", req, sub, stale, want)
			}
			if got := offsets(f.messages("news", want)); !slices.Equal(got, seqRange(uint64(4-want), 3)) {
				t.Fatalf("%v: replayed %v", req, got)
			}
		}
	}
	// A channel with no history at all (say the database was replaced)
	// has no epoch: a client resuming one is told its history is gone,
	// and the channel's first message is offset 1.
	e := tn.dial("", "")
	sub = e.subscribe(map[string]any{"channel": "fresh", "offset": 50, "epoch": "gone"})
	if sub["epoch_changed"] != true || sub.num("offset") != 0 || sub.num("replay") != 0 {
		t.Fatalf("resuming an epoch on an empty channel: subscribed = %v", sub)
	}
	tn.publish("", "fresh", "first")
	if m := e.messages("fresh", 1)[0]; m.num("offset") != 1 {
		t.Fatalf("first message %v", m)
	}
}

// TestGaplessHandoverUnderLoad has several publishers write thousands of
// messages to one channel while dozens of subscribers join at random
// offsets and times; each must end with every offset from its start to the
// last, once, in order.
func TestGaplessHandoverUnderLoad(t *testing.T) {
	tn := startTestNode(t, nil)
	const (
		publishers = 4
		perPub     = 600
		total      = publishers * perPub
		subs       = 32
	)
	type result struct {
		start uint64
		got   []uint64
		err   error
	}
	results := make([]result, subs)
	var wg sync.WaitGroup
	startPub := make(chan struct{})
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startPub
			for i := 0; i < perPub; i++ {
				tn.publish("", "load", map[string]any{"p": p, "i": i})
			}
		}()
	}
	var swg sync.WaitGroup
	for s := 0; s < subs; s++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			// Join at a random moment during the load (once the head
			// passes a random target), from a random offset at or below
			// what has been published so far.
			target := rand.Uint64N(total)
			var h struct {
				Head uint64 `json:"head"`
			}
			for until := time.Now().Add(30 * time.Second); time.Now().Before(until); time.Sleep(2 * time.Millisecond) {
				tn.api("", testAdminKey, "GET", "/_api/channels/load/history?limit=1", nil, &h)
				if h.Head >= target {
					break
				}
			}
			c, err := tn.tryDial("", "")
			if err != nil {
				results[s].err = err
				return
			}
			start := rand.Uint64N(h.Head + 1)
			results[s].start = start
			b := []byte(fmt.Sprintf(`{"type":"subscribe","channel":"load","offset":%d}`, start))
			if err := c.conn.WriteMessage(1, b); err != nil {
				results[s].err = err
				return
			}
			deadline := time.After(60 * time.Second)
			for {
				select {
				case f, ok := <-c.frames:
					if !ok {
						results[s].err = fmt.Errorf("closed")
						return
					}
					if f.str("type") == "message" {
						results[s].got = append(results[s].got, f.num("offset"))
						if f.num("offset") == total {
							return
						}
					}
				case <-deadline:
					results[s].err = fmt.Errorf("timed out with %d messages", len(results[s].got))
					return
				}
			}
		}()
	}
	close(startPub)
	wg.Wait()
	swg.Wait()
	var starts []uint64
	for _, r := range results {
		starts = append(starts, r.start)
	}
	slices.Sort(starts)
	t.Logf("subscribers joined at offsets %v of %d", starts, total)
	for s, r := range results {
		if r.err != nil {
			t.Fatalf("subscriber %d: %v", s, r.err)
		}
		if want := seqRange(r.start+1, total); !slices.Equal(r.got, want) {
			t.Fatalf("subscriber %d from offset %d: got %d offsets, want %d contiguous (first %v, last %v)",
				s, r.start, len(r.got), len(want), r.got[:min(5, len(r.got))], r.got[max(0, len(r.got)-5):])
		}
	}
}

// TestReplayPageOverTheReadCap replays with pages larger than one history
// read may return (events.MaxPage, 10,000): every message still comes,
// once and in order, and the subscription then goes live.
func TestReplayPageOverTheReadCap(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{ReplayPage: 20000}))
	const n = 15000
	fillChannel(t, tn, "", "long", n)
	replayThenLive(t, tn, tn.dial("", ""), "long", n)
}

// fillChannel publishes the numbers 1 to n to channel of app ("" for
// the default), a thousand a request.
func fillChannel(t *testing.T, tn *testNode, app, channel string, n int) {
	t.Helper()
	for sent := 0; sent < n; sent += 1000 {
		msgs := make([]any, 0, 2000)
		for i := range min(1000, n-sent) {
			msgs = append(msgs, channel, sent+i+1)
		}
		if code := tn.api(app, testAdminKey, "POST", "/_api/publish-batch", batchOf(msgs...), nil); code != 200 {
			t.Fatalf("fill %s: status %d", channel, code)
		}
	}
}

// replayThenLive subscribes c to channel from offset 0 and checks that
// the replay brings offsets 1 to n, in order, and a live message after.
func replayThenLive(t *testing.T, tn *testNode, c *client, channel string, n int) {
	t.Helper()
	if s := c.subscribe(map[string]any{"channel": channel, "offset": 0}); s.num("replay") != uint64(n) {
		t.Fatalf("subscribed %v", s)
	}
	if o := offsets(c.messages(channel, n)); !slices.Equal(o, seqRange(1, uint64(n))) {
		t.Fatalf("replayed %d messages, offsets %v ... %v", len(o), o[:3], o[len(o)-3:])
	}
	tn.publish("", channel, "live")
	if m := c.messages(channel, 1)[0]; m.num("offset") != uint64(n+1) || m["data"] != "live" {
		t.Fatalf("after the replay: %v", m)
	}
}

// TestReplayThroughASmallQueue: a replay that waits for room in a queue
// of a few frames, which the shared flusher (not the connection's own
// writer) empties, is woken each time and delivers everything in order.
func TestReplayThroughASmallQueue(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{SendQueue: 32}))
	const n = 500
	fillChannel(t, tn, "", "small", n)
	replayThenLive(t, tn, tn.dial("", ""), "small", n)
}

// TestReplaysShareASmallQueue: two replays to one connection, each
// waiting in turn for room in a queue of a few frames, both deliver
// everything, in order: a write that makes room wakes every replay
// waiting for it, not one.
func TestReplaysShareASmallQueue(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{SendQueue: 32}))
	const n = 500
	channels := []string{"left", "right"}
	for _, ch := range channels {
		fillChannel(t, tn, "", ch, n)
	}
	c := tn.dial("", "")
	for _, ch := range channels {
		c.send(map[string]any{"type": "subscribe", "channel": ch, "offset": 0})
	}
	next := map[string]int{"left": 1, "right": 1}
	subscribed := 0
	for subscribed < 2 || next["left"] <= n || next["right"] <= n {
		f := c.next() // fails after 10 s without a frame
		switch f.str("type") {
		case "subscribed":
			subscribed++
		case "message":
			ch := f.str("channel")
			if got := int(f.num("offset")); got != next[ch] {
				t.Fatalf("channel %s: offset %d, want %d", ch, got, next[ch])
			}
			next[ch]++
		default:
			t.Fatalf("unexpected frame %v", f)
		}
	}
}
