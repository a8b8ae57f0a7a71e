package projections

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// recSink records what the fan-out gives it.
type recSink struct {
	mu       sync.Mutex
	frames   []string
	kicked   string
	overflow bool
	full     bool // refuse frames, as a full queue does
	closing  bool // closing already: a kick closes nothing
}

func (s *recSink) Send(f []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full {
		return false
	}
	s.frames = append(s.frames, string(f))
	return true
}
func (s *recSink) Kick(r string) bool {
	if s.closing {
		return false
	}
	s.kicked = r
	return true
}
func (s *recSink) Overflow() { s.overflow = true }
func (s *recSink) Fence() (func(uint64), uint64, bool) {
	return func(uint64) {}, 0, !s.closing
}

// textEncoder makes frames easy to read in tests: "chan:offset".
type textEncoder struct{}

func (textEncoder) Message(ev *domain.MessageBroadcast, ts int64) []byte {
	return []byte(ev.Channel + ":" + strconv.FormatUint(ev.Offset, 10))
}
func (textEncoder) BroadcastAll(ev *domain.BroadcastAll, ts int64) []byte {
	return []byte("all:" + string(ev.Data))
}
func (textEncoder) Presence(ch, event, client string) []byte {
	return []byte(event + ":" + client)
}

type fixture struct {
	t     *testing.T
	m     *Membership
	seq   uint64
	heads map[string]uint64 // committed heads, as the log would report them
}

func newFixture(t *testing.T, maxBuffer int) *fixture {
	f := &fixture{t: t, heads: map[string]uint64{}}
	f.m = NewMembership(textEncoder{}, func(_ context.Context, app, ch string) (uint64, string, error) {
		return f.heads[app+"/"+ch], "ep", nil
	}, maxBuffer)
	return f
}

func (f *fixture) apply(facts ...domain.Fact) {
	f.t.Helper()
	for _, fact := range facts {
		f.seq++
		if err := f.m.Apply(context.Background(), domain.Event{Seq: f.seq, Fact: fact}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// subscriber connects client, with a recording sink, and subscribes it to
// ch; the subscription is catching up until goLive.
func (f *fixture) subscriber(client, ch string) *recSink {
	s := &recSink{}
	f.m.Attach("a", client, s)
	f.apply(connected(client), subscribed(client, ch))
	return s
}

// commit assigns the next offset of a channel, as the log does, without
// applying it yet.
func (f *fixture) commit(ch string) *domain.MessageBroadcast {
	f.heads["a/"+ch]++
	return &domain.MessageBroadcast{App: "a", Channel: ch, Offset: f.heads["a/"+ch], Epoch: "ep", Data: json.RawMessage("1")}
}

// goLive takes c's subscription to ch live, as its replay would.
func (f *fixture) goLive(ch, c string) bool {
	_, _, seq, ok := f.m.CatchUp("a", ch, c)
	_, live := f.m.GoLive("a", ch, c, seq, 1<<30, 1<<30)
	return ok && live
}

func connected(c string) domain.Fact { return &domain.ClientConnected{App: "a", Client: c} }
func subscribed(c, ch string) domain.Fact {
	return &domain.ChannelSubscribed{App: "a", Channel: ch, Client: c}
}

func TestMembershipFollowsEvents(t *testing.T) {
	f := newFixture(t, 0)
	f.apply(connected("c1"), connected("c2"), subscribed("c1", "x"), subscribed("c2", "x"), subscribed("c2", "y"))
	if got := f.m.Subscribers("a", "x"); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("x: %v", got)
	}
	f.apply(&domain.ChannelUnsubscribed{App: "a", Channel: "x", Client: "c1"})
	if got := f.m.Subscribers("a", "x"); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("x after unsubscribe: %v", got)
	}
	f.apply(&domain.ClientDisconnected{App: "a", Client: "c2", Reason: "client_closed"})
	if f.m.Count("a", "x") != 0 || f.m.Count("a", "y") != 0 || f.m.Connected("a", "c2") || !f.m.Connected("a", "c1") {
		t.Fatalf("after disconnect: x=%d y=%d", f.m.Count("a", "x"), f.m.Count("a", "y"))
	}
	if got := f.m.Sessions(); !slices.Equal(got["a"], []string{"c1"}) {
		t.Fatalf("sessions %v", got)
	}
	// Another app's channel of the same name is another channel.
	f.apply(&domain.ChannelSubscribed{App: "b", Channel: "x", Client: "c9"})
	if f.m.Count("a", "x") != 0 || f.m.Count("b", "x") != 1 {
		t.Fatal("apps share a channel")
	}
	// Redelivered events change nothing.
	if err := f.m.Apply(context.Background(), domain.Event{Seq: 1, Fact: subscribed("c1", "z")}); err != nil || f.m.Count("a", "z") != 0 {
		t.Fatal("an event applied twice")
	}
}

// TestCatchUpHandover walks the subscribe-with-replay hand-over: frames that
// arrive while the subscription catches up are buffered, those at or below
// the replayed head are never sent, and the rest go out once, in order.
func TestCatchUpHandover(t *testing.T) {
	f := newFixture(t, 0)
	s := &recSink{}
	f.m.Attach("a", "c1", s)
	f.apply(connected("c1"))
	// Offsets 1..3 are committed; 3 is not yet applied when c1 subscribes,
	// so the head read from the log (3) is ahead of the projection.
	m1, m2 := f.commit("x"), f.commit("x")
	f.apply(m1, m2)
	m3 := f.commit("x")
	f.apply(subscribed("c1", "x"))
	head, _, _, ok := f.m.CatchUp("a", "x", "c1")
	if !ok || head != 3 {
		t.Fatalf("catch-up head %d %v, want 3", head, ok)
	}
	m4, m5 := f.commit("x"), f.commit("x")
	f.apply(m3, m4, m5) // 3 is covered by the replay; 4 and 5 are buffered
	if len(s.frames) != 0 {
		t.Fatalf("frames sent during catch-up: %v", s.frames)
	}
	if !f.goLive("x", "c1") {
		t.Fatal("GoLive failed")
	}
	m6 := f.commit("x")
	f.apply(m6)
	if want := []string{"x:4", "x:5", "x:6"}; !slices.Equal(s.frames, want) {
		t.Fatalf("frames %v, want %v", s.frames, want)
	}
}

// TestPresenceWhileCatchingUp: joins and leaves that happen while a
// subscription catches up (its replay, or the moment between its
// `subscribed` and going live) reach it when it goes live, in order with
// its messages.
func TestPresenceWhileCatchingUp(t *testing.T) {
	f := newFixture(t, 0)
	s1 := &recSink{}
	f.m.Attach("a", "c1", s1)
	f.apply(connected("c1"), connected("c2"), subscribed("c1", "presence-r"))
	if _, _, _, ok := f.m.CatchUp("a", "presence-r", "c1"); !ok {
		t.Fatal("no catch-up")
	}
	f.apply(subscribed("c2", "presence-r"), f.commit("presence-r"),
		&domain.ChannelUnsubscribed{App: "a", Channel: "presence-r", Client: "c2"})
	if len(s1.frames) != 0 {
		t.Fatalf("frames sent during catch-up: %v", s1.frames)
	}
	f.goLive("presence-r", "c1")
	f.apply(f.commit("presence-r"))
	if want := []string{"join:c2", "presence-r:1", "leave:c2", "presence-r:2"}; !slices.Equal(s1.frames, want) {
		t.Fatalf("frames %v, want %v", s1.frames, want)
	}
}

// TestDetachDuringAJoin: a connection that ends (Detach) while its
// subscribe is being applied, after the join read its sink and before
// the subscription was made, leaves no subscription that buffers or
// sends for it. Here Detach runs from the head's lookup, which a channel
// new to the membership makes in that window.
func TestDetachDuringAJoin(t *testing.T) {
	var m *Membership
	m = NewMembership(textEncoder{}, func(context.Context, string, string) (uint64, string, error) {
		m.Detach("a", "c1")
		return 0, "ep", nil
	}, 0)
	s := &recSink{}
	m.Attach("a", "c1", s)
	seq := uint64(0)
	apply := func(f domain.Fact) {
		seq++
		if err := m.Apply(context.Background(), domain.Event{Seq: seq, Fact: f}); err != nil {
			t.Fatal(err)
		}
	}
	apply(connected("c1"))
	apply(subscribed("c1", "x"))
	apply(&domain.MessageBroadcast{App: "a", Channel: "x", Offset: 1, Epoch: "ep", Data: json.RawMessage("1")})
	sh := m.shard(chanKey{"a", "x"})
	sh.mu.Lock()
	sub := sh.chans[chanKey{"a", "x"}].sub("c1")
	sh.mu.Unlock()
	if sub == nil || sub.sink != nil || len(sub.buf) != 0 || len(s.frames) != 0 {
		t.Fatalf("after a Detach during its join: subscription %+v, frames %v; want one with no sink and nothing kept", sub, s.frames)
	}
	if _, live := m.GoLive("a", "x", "c1", sub.seq, 1<<30, 1<<30); live {
		t.Fatal("the ended connection's subscription went live")
	}
}

// TestGoLiveIsForItsOwnSubscription: a replay that ends after its
// subscription was replaced (an unsubscribe, then a new subscribe to the
// same channel) does not take the new one live: that one's replay will.
func TestGoLiveIsForItsOwnSubscription(t *testing.T) {
	f := newFixture(t, 0)
	s := f.subscriber("c1", "x")
	_, _, old, _ := f.m.CatchUp("a", "x", "c1")
	f.apply(&domain.ChannelUnsubscribed{App: "a", Channel: "x", Client: "c1"}, subscribed("c1", "x"))
	if _, live := f.m.GoLive("a", "x", "c1", old, 1<<30, 1<<30); live {
		t.Fatal("the first subscription's GoLive took the second live")
	}
	f.apply(f.commit("x"))
	if len(s.frames) != 0 {
		t.Fatalf("frames before the second subscription's replay ended: %v", s.frames)
	}
	if !f.goLive("x", "c1") || !slices.Equal(s.frames, []string{"x:1"}) {
		t.Fatalf("after its own GoLive: %v", s.frames)
	}
}

func TestPresenceKickOverflowAndFullQueue(t *testing.T) {
	f := newFixture(t, 2)
	s1, s2 := &recSink{}, &recSink{}
	f.m.Attach("a", "c1", s1)
	f.m.Attach("a", "c2", s2)
	f.apply(connected("c1"), connected("c2"), subscribed("c1", "presence-r"))
	f.goLive("presence-r", "c1")
	f.apply(subscribed("c2", "presence-r"))
	if !slices.Equal(s1.frames, []string{"join:c2"}) {
		t.Fatalf("presence frames %v", s1.frames)
	}
	// c2 is still catching up; three live messages overflow its buffer of 2.
	f.apply(f.commit("presence-r"), f.commit("presence-r"), f.commit("presence-r"))
	if !s2.overflow {
		t.Fatal("catch-up buffer overflow not reported")
	}
	f.apply(&domain.ClientKicked{App: "a", Client: "c1", Reason: "spam"})
	if s1.kicked != "spam" {
		t.Fatalf("kick reason %q", s1.kicked)
	}
	// A sink that refuses a frame is dropped from the fan-out, not retried.
	s1.full = true
	f.apply(f.commit("presence-r"))
	s1.full = false
	f.apply(f.commit("presence-r"))
	if n := len(s1.frames); n != 4 { // join + 3 live before it refused
		t.Fatalf("frames after refusal: %v", s1.frames)
	}
	f.apply(&domain.BroadcastAll{App: "a", Data: json.RawMessage(`"hi"`)})
	if s2.frames[len(s2.frames)-1] != `all:"hi"` {
		t.Fatalf("broadcast-all to c2: %v", s2.frames)
	}
}

func TestWaitApplied(t *testing.T) {
	f := newFixture(t, 0)
	done := make(chan error, 1)
	go func() { done <- f.m.WaitApplied(context.Background(), 3) }()
	f.apply(connected("c1"), connected("c2"))
	select {
	case <-done:
		t.Fatal("WaitApplied returned before event 3")
	default:
	}
	f.apply(connected("c3"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.m.WaitApplied(ctx, 99); err == nil {
		t.Fatal("WaitApplied ignored its context")
	}
	// A wait given up leaves no waiter behind (the projection stuck,
	// each request that gives up would add one), and the others stay.
	late := make(chan error, 1)
	go func() { late <- f.m.WaitApplied(context.Background(), 5) }()
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		f.m.WaitApplied(ctx, 100)
		cancel()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		f.m.wmu.Lock()
		n := len(f.m.waiters)
		f.m.wmu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters after 100 waits given up, want 1 (the one still waiting)", n)
		}
	}
	f.apply(connected("c4"), connected("c5"))
	if err := <-late; err != nil {
		t.Fatal(err)
	}
}

// TestSessionCountByApp applies a random mix of connects (repeated ones
// too), subscribes with and without a connect before them, and
// disconnects (of open and of unknown sessions) over three apps: after
// each event, an app's count of open sessions is the number Sessions
// lists for it.
func TestSessionCountByApp(t *testing.T) {
	f := newFixture(t, 0)
	apps := []string{"a", "b", "c"}
	rng := uint32(7)
	next := func(n int) int { rng = rng*1664525 + 1013904223; return int(rng>>8) % n }
	for i := 0; i < 3000; i++ {
		app, client := apps[next(len(apps))], "c"+strconv.Itoa(next(40))
		switch next(3) {
		case 0:
			f.apply(&domain.ClientConnected{App: app, Client: client})
		case 1:
			f.apply(&domain.ChannelSubscribed{App: app, Channel: "room" + strconv.Itoa(next(3)), Client: client})
		case 2:
			f.apply(&domain.ClientDisconnected{App: app, Client: client, Reason: "client"})
		}
		open := f.m.Sessions()
		for _, a := range apps {
			if got, want := f.m.Count(a, ""), len(open[a]); got != want {
				t.Fatalf("after event %d: app %s counts %d sessions, lists %d", i+1, a, got, want)
			}
		}
	}
}

// TestWaitAppliedReleasesWhatIsDue has 50 callers wait for events 1 to 25,
// two for each, registered in a scrambled order: after each event is
// applied, exactly the callers waiting for it or earlier are released,
// and all of them return without error.
func TestWaitAppliedReleasesWhatIsDue(t *testing.T) {
	f := newFixture(t, 0)
	const events = 25
	results := make(chan error, 2*events)
	for i := 0; i < 2*events; i++ {
		seq := uint64((i*7)%events + 1)
		go func() { results <- f.m.WaitApplied(context.Background(), seq) }()
	}
	pending := func() []uint64 {
		f.m.wmu.Lock()
		defer f.m.wmu.Unlock()
		var out []uint64
		for _, w := range f.m.waiters {
			out = append(out, w.seq)
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); len(pending()) < 2*events; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers waiting", len(pending()), 2*events)
		}
	}
	for k := uint64(1); k <= events; k++ {
		f.apply(connected("c" + strconv.FormatUint(k, 10)))
		left := pending()
		if len(left) != 2*int(events-k) {
			t.Fatalf("after event %d: %d callers still waiting, want %d", k, len(left), 2*(events-k))
		}
		for _, s := range left {
			if s <= k {
				t.Fatalf("after event %d: a caller still waits for event %d", k, s)
			}
		}
	}
	for i := 0; i < 2*events; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}

// Channels pages through the live channels of one app by name, whatever
// order the shards hold them in: each page is the limit smallest names
// after the cursor, with their subscriber counts, and the pages together
// are every live channel once.
func TestChannelsPagesByName(t *testing.T) {
	f := newFixture(t, 0)
	var want []domain.LiveChannel
	for i := range 300 {
		ch := "ch-" + strconv.Itoa(i*7919%300) // not in name order
		f.apply(connected("c" + strconv.Itoa(i)))
		subs := 1 + i%3
		for j := range subs {
			f.apply(subscribed("c"+strconv.Itoa((i+j)%300), ch))
		}
		want = append(want, domain.LiveChannel{Channel: ch, Subscribers: subs})
	}
	// Another app's channels, and a channel whose subscribers all left.
	f.apply(&domain.ChannelSubscribed{App: "b", Channel: "ch-0", Client: "c9"})
	f.apply(connected("gone"), subscribed("gone", "ch-00"))
	f.apply(&domain.ChannelUnsubscribed{App: "a", Channel: "ch-00", Client: "gone"})
	slices.SortFunc(want, func(a, b domain.LiveChannel) int { return strings.Compare(a.Channel, b.Channel) })

	for _, limit := range []int{1, 7, 300, 1000} {
		var got []domain.LiveChannel
		after := ""
		for {
			page := f.m.Channels("a", after, limit)
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Channel
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: pages give %d channels, want %d:\n%v\n%v", limit, len(got), len(want), got, want)
		}
	}
	if got := f.m.Channels("a", "ch-99", 5); len(got) != 0 { // the greatest name
		t.Fatalf("after ch-99: %v", got)
	}
	if got := f.m.Channels("b", "", 5); !slices.Equal(got, []domain.LiveChannel{{Channel: "ch-0", Subscribers: 1}}) {
		t.Fatalf("app b: %v", got)
	}
	if got := f.m.Channels("a", "", 0); len(got) != 0 {
		t.Fatalf("limit 0: %v", got)
	}
}

// TestGoLiveHandsBackWhatWouldFloodTheSink: more frames buffered during a
// replay than GoLive may send at once are handed back, in order, for the
// caller to send paced; the subscription keeps buffering meanwhile, and
// goes live once what is left fits. Before, all of them went to the sink
// at once, whose queue (8192 frames) closed a client that kept up as a
// slow consumer after a few thousand.
func TestGoLiveHandsBackWhatWouldFloodTheSink(t *testing.T) {
	f := newFixture(t, 0)
	s := f.subscriber("c1", "x")
	_, _, seq, _ := f.m.CatchUp("a", "x", "c1")
	for range 10 {
		f.apply(f.commit("x"))
	}
	rest, live := f.m.GoLive("a", "x", "c1", seq, 3, 1<<30)
	if !live || len(rest) != 10 || string(rest[0]) != "x:1" || string(rest[9]) != "x:10" || len(s.frames) != 0 {
		t.Fatalf("first call: %d handed back, live %v, %v sent", len(rest), live, s.frames)
	}
	// Sent by the caller meanwhile; two more come, and are buffered.
	f.apply(f.commit("x"), f.commit("x"))
	if len(s.frames) != 0 {
		t.Fatalf("sent while still catching up: %v", s.frames)
	}
	if rest, live := f.m.GoLive("a", "x", "c1", seq, 3, 1<<30); !live || rest != nil || !slices.Equal(s.frames, []string{"x:11", "x:12"}) {
		t.Fatalf("second call: %d handed back, live %v, %v sent", len(rest), live, s.frames)
	}
	f.apply(f.commit("x"))
	if !slices.Equal(s.frames, []string{"x:11", "x:12", "x:13"}) {
		t.Fatalf("after going live: %v", s.frames)
	}

	// Few frames, but more bytes than may be sent at once: handed back
	// too (a replay's live frames may be up to 16 MiB each).
	s2 := f.subscriber("c2", "y")
	_, _, seq2, _ := f.m.CatchUp("a", "y", "c2")
	f.apply(f.commit("y"), f.commit("y")) // "y:1", "y:2": 6 bytes
	if rest, live := f.m.GoLive("a", "y", "c2", seq2, 3, 5); !live || len(rest) != 2 || len(s2.frames) != 0 {
		t.Fatalf("bytes past the bound: %d handed back, live %v, %v sent", len(rest), live, s2.frames)
	}
	f.apply(f.commit("y"), f.commit("y"))
	if rest, live := f.m.GoLive("a", "y", "c2", seq2, 3, 6); !live || rest != nil || !slices.Equal(s2.frames, []string{"y:3", "y:4"}) {
		t.Fatalf("bytes at the bound: %d handed back, live %v, %v sent", len(rest), live, s2.frames)
	}
}

// A subscription catching up buffers live frames up to a count and up to
// 64 MiB of them, whichever comes first: past either, its sink is told
// it overflowed (a slow consumer) and the buffer is dropped. The count's
// default, 65,536 frames of up to 64 KiB, would otherwise hold 4 GiB.
func TestCatchUpBufferIsCappedInBytes(t *testing.T) {
	f := newFixture(t, 0)
	f.m.enc = dataEncoder{}
	s := f.subscriber("c1", "big")
	big := json.RawMessage(`"` + strings.Repeat("x", 1<<20) + `"`)
	n := 0
	for ; n < 100 && !s.overflow; n++ {
		m := f.commit("big")
		m.Data = big
		f.apply(m)
	}
	// 63 frames of 1 MiB and 2 bytes fit in 64 MiB; the 64th does not.
	if !s.overflow || n != 64 {
		t.Fatalf("after %d messages of 1 MiB: overflow %v; want it at the 64th, past 64 MiB", n, s.overflow)
	}
}

// dataEncoder's message frames are their data, so that they weigh what
// the data does.
type dataEncoder struct{ textEncoder }

func (dataEncoder) Message(ev *domain.MessageBroadcast, ts int64) []byte { return ev.Data }

// A kick applied after its client's end closes nothing, and KickMissed
// says so, for the kick that asks (the kick was checked against a
// membership that had not applied the end yet); a kick of a client still
// connected closes its connection, and is not missed.
func TestAKickOfAClientThatLeftIsMissed(t *testing.T) {
	f := newFixture(t, 0)
	s1, s2 := &recSink{}, &recSink{}
	f.m.Attach("a", "c1", s1)
	f.m.Attach("a", "c2", s2)
	f.apply(connected("c1"), connected("c2"))
	f.apply(&domain.ClientKicked{App: "a", Client: "c1", Reason: "spam"})
	if s1.kicked != "spam" || f.m.KickMissed(f.seq) {
		t.Fatalf("kick of a connected client: kicked %q, missed %v", s1.kicked, f.m.KickMissed(f.seq))
	}
	// c2 leaves: its sink is detached, then its end is applied.
	f.m.Detach("a", "c2")
	f.apply(&domain.ClientDisconnected{App: "a", Client: "c2", Reason: "client_closed"},
		&domain.ClientKicked{App: "a", Client: "c2", Reason: "late"})
	if s2.kicked != "" || !f.m.KickMissed(f.seq) {
		t.Fatalf("kick of a client that left: kicked %q, missed %v", s2.kicked, f.m.KickMissed(f.seq))
	}
	if f.m.KickMissed(f.seq+1) || f.m.KickMissed(0) {
		t.Fatal("a kick not applied, or none, is missed")
	}
	// c3 is closing (it sent a close, say), its sink still attached: the
	// kick closes nothing, and is missed too.
	s3 := &recSink{closing: true}
	f.m.Attach("a", "c3", s3)
	f.apply(connected("c3"), &domain.ClientKicked{App: "a", Client: "c3", Reason: "late"})
	if !f.m.KickMissed(f.seq) {
		t.Fatal("a kick of a client already closing is not missed")
	}
}
