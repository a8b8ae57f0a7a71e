// Package projections holds the read models fed by committed events. Each
// projection applies events in sequence order, records the last sequence it
// applied, and can be rebuilt from sequence 0.
package projections

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/smallmap"
)

// Sink is a connection on this node that can receive frames. Its methods are
// called with a channel lock held, so they must not block: a sink queues the
// frame and writes it from its own goroutine.
type Sink interface {
	// Send queues a frame. It reports false when the sink cannot take it
	// (its queue is full or it is closing); the sink then disconnects
	// itself as a slow consumer.
	Send(frame []byte) bool
	// Kick asks the sink to disconnect because the client was kicked, and
	// reports whether it did: false when the sink was closing already
	// (the client leaving, or kicked before), which the kick then leaves
	// as it was.
	Kick(reason string) bool
	// Fence is domain.Members.Fence for the sink's connection. It may
	// block, until the request being recorded is; it is never called
	// with a lock of the membership held.
	Fence() (done func(seq uint64), pending uint64, ok bool)
	// Overflow asks the sink to disconnect as a slow consumer: its
	// catch-up buffer grew past its limit during a replay.
	Overflow()
}

// Encoder builds the wire frames the fan-out shares between receivers.
type Encoder interface {
	Message(ev *domain.MessageBroadcast, ts int64) []byte
	BroadcastAll(ev *domain.BroadcastAll, ts int64) []byte
	Presence(channel, event, client string) []byte
}

// HeadFunc reads a channel's committed head and epoch from the log.
type HeadFunc func(ctx context.Context, app, channel string) (head uint64, epoch string, err error)

// MembershipName is the membership projection's stable handler name.
const MembershipName = "membership.v1"

// MembershipEvents are the events that change membership, as opposed to
// the broadcasts that it fans out.
var MembershipEvents = []string{
	domain.NameClientConnected, domain.NameClientDisconnected,
	domain.NameChannelSubscribed, domain.NameChannelUnsubscribed,
}

// Membership is the live channel membership projection (channel -> clients,
// client -> channels) and, for clients connected to this node, the fan-out:
// applying a MessageBroadcast sends its frame, encoded once, to every local
// subscriber. Channels are sharded, each shard with its own lock, so a
// broadcast never takes a global lock. Safe for concurrent use; Apply must be
// called in sequence order from one goroutine.
type Membership struct {
	enc       Encoder
	loadHead  HeadFunc
	maxBuffer int

	smu      sync.RWMutex
	sessions map[clientKey]*session
	perApp   map[string]int // open sessions by app, for Count
	sinks    map[clientKey]Sink
	// missedKicks is a ring of the sequences of the latest kicks applied
	// that found no connection to close (KickMissed), under kmu.
	kmu         sync.Mutex
	missedKicks [4096]uint64
	missedNext  int

	shards [64]shard

	applied atomic.Uint64
	wmu     sync.Mutex
	waiters waiterHeap // by sequence, under wmu
}

type clientKey struct{ app, client string }
type chanKey struct{ app, channel string }

type session struct {
	channels smallmap.Map[string, struct{}]
}

type shard struct {
	mu    sync.Mutex
	chans map[chanKey]*channelState
}

type channelState struct {
	head  uint64
	epoch string
	subs  smallmap.Map[string, *subscription]
}

// sub returns client's subscription, or nil.
func (st *channelState) sub(client string) *subscription {
	s, _ := st.subs.Get(client)
	return s
}

type subscription struct {
	seq     uint64 // of the event that made it: which subscription of the client this is
	sink    Sink   // nil for a client of another node or a dead session
	from    uint64 // head when the subscription was applied: replay covers up to here
	catchUp bool   // live frames are buffered until the replay is done
	buf     []bufFrame
	bufSize int // the bytes of buf's frames
}

type bufFrame struct {
	offset uint64 // 0 for a presence frame, which has none
	frame  []byte
}

// maxBufferBytes caps the bytes of the frames buffered for one
// subscription during its replay, besides maxBuffer's count: 65,536
// frames of 64 KiB would be 4 GiB. A frame buffered for several
// subscriptions is shared, and counted for each.
const maxBufferBytes = 64 << 20

// NewMembership returns an empty membership. maxBuffer caps the frames
// buffered for one subscription during its replay (default 65536), and
// maxBufferBytes their bytes.
func NewMembership(enc Encoder, loadHead HeadFunc, maxBuffer int) *Membership {
	if maxBuffer <= 0 {
		maxBuffer = 65536
	}
	m := &Membership{
		enc: enc, loadHead: loadHead, maxBuffer: maxBuffer,
		sessions: map[clientKey]*session{},
		perApp:   map[string]int{},
		sinks:    map[clientKey]Sink{},
	}
	for i := range m.shards {
		m.shards[i].chans = map[chanKey]*channelState{}
	}
	return m
}

var _ domain.Members = (*Membership)(nil)

func (m *Membership) shard(k chanKey) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(k.app); i++ {
		h = (h ^ uint32(k.app[i])) * 16777619
	}
	for i := 0; i < len(k.channel); i++ {
		h = (h ^ uint32(k.channel[i])) * 16777619
	}
	return &m.shards[h%uint32(len(m.shards))]
}

// Attach registers a local connection's sink before its ClientConnected
// event is appended, so that its subscriptions deliver to it.
func (m *Membership) Attach(app, client string, s Sink) {
	m.smu.Lock()
	m.sinks[clientKey{app, client}] = s
	m.smu.Unlock()
}

// Detach forgets a local connection's sink. Its session stays until its
// ClientDisconnected event is applied.
func (m *Membership) Detach(app, client string) {
	k := clientKey{app, client}
	m.smu.Lock()
	delete(m.sinks, k)
	sess := m.sessions[k]
	var chans []string
	if sess != nil {
		for c := range sess.channels.All() {
			chans = append(chans, c)
		}
	}
	m.smu.Unlock()
	for _, c := range chans {
		ck := chanKey{app, c}
		sh := m.shard(ck)
		sh.mu.Lock()
		if st := sh.chans[ck]; st != nil {
			if sub := st.sub(client); sub != nil {
				sub.sink, sub.buf, sub.bufSize = nil, nil, 0
			}
		}
		sh.mu.Unlock()
	}
}

// Applied returns the sequence of the last event applied.
func (m *Membership) Applied() uint64 { return m.applied.Load() }

// WaitApplied blocks until the event with sequence seq has been applied, or
// ctx ends.
func (m *Membership) WaitApplied(ctx context.Context, seq uint64) error {
	return m.WaitAppliedWithin(ctx, seq, 0)
}

// ErrNotApplied is WaitAppliedWithin's error for an event not applied
// within its bound.
var ErrNotApplied = errors.New("not applied in time")

// WaitAppliedWithin is WaitApplied given up after d too (0: no bound),
// with ErrNotApplied: a membership that has stopped applying (a
// projection stuck on an event) fails the caller's request rather than
// hold it. The bound is a plain timer, made only when the event is not
// applied yet: a context with a deadline would cost its registration
// with ctx too, for every connect and subscribe that waits.
func (m *Membership) WaitAppliedWithin(ctx context.Context, seq uint64, d time.Duration) error {
	if m.applied.Load() >= seq {
		return nil
	}
	w := &waiter{seq: seq, done: make(chan struct{})}
	m.wmu.Lock()
	if m.applied.Load() >= seq {
		m.wmu.Unlock()
		return nil
	}
	heap.Push(&m.waiters, w)
	m.wmu.Unlock()
	var bound <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		bound = t.C
	}
	var why error
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-bound:
		why = fmt.Errorf("%w (%s)", ErrNotApplied, d)
	}
	// Its waiter goes: with the projection stuck, every request that
	// gives up (and a client's retries) would leave one behind. One
	// applied meanwhile has gone already: its wait is over.
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if w.index < 0 {
		return nil
	}
	heap.Remove(&m.waiters, w.index)
	return fmt.Errorf("wait for event %d to be applied: %w", seq, why)
}

func (m *Membership) markApplied(seq uint64) {
	m.applied.Store(seq)
	m.wmu.Lock()
	// Only the waiters that are due are visited: a reconnect storm has
	// thousands waiting, and every event is applied through here.
	for len(m.waiters) > 0 && m.waiters[0].seq <= seq {
		close(heap.Pop(&m.waiters).(*waiter).done)
	}
	m.wmu.Unlock()
}

// A waiter is a WaitApplied call waiting for sequence seq.
type waiter struct {
	seq   uint64
	done  chan struct{}
	index int // in the heap; -1 once out of it
}

// waiterHeap is a min-heap of waiters by sequence (container/heap), each
// knowing its place, so that one given up is taken out directly.
type waiterHeap []*waiter

func (h waiterHeap) Len() int           { return len(h) }
func (h waiterHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h waiterHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waiterHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

// Apply applies one committed event. Events must arrive in sequence order;
// one already applied is ignored, so redelivery is harmless.
func (m *Membership) Apply(ctx context.Context, ev domain.Event) error {
	if ev.Seq <= m.applied.Load() {
		return nil
	}
	switch f := ev.Fact.(type) {
	case *domain.ClientConnected:
		m.smu.Lock()
		k := clientKey{f.App, f.Client}
		if m.sessions[k] == nil {
			m.openLocked(k)
		}
		m.smu.Unlock()
	case *domain.ClientDisconnected:
		m.smu.Lock()
		k := clientKey{f.App, f.Client}
		sess := m.sessions[k]
		if sess != nil {
			delete(m.sessions, k)
			if m.perApp[k.app]--; m.perApp[k.app] == 0 {
				delete(m.perApp, k.app)
			}
		}
		m.smu.Unlock()
		if sess != nil {
			for c := range sess.channels.All() {
				m.leave(f.App, c, f.Client)
			}
		}
	case *domain.ChannelSubscribed:
		if err := m.join(ctx, ev.Seq, f); err != nil {
			return err
		}
	case *domain.ChannelUnsubscribed:
		m.smu.Lock()
		if sess := m.sessions[clientKey{f.App, f.Client}]; sess != nil {
			sess.channels.Delete(f.Channel)
		}
		m.smu.Unlock()
		m.leave(f.App, f.Channel, f.Client)
	case *domain.MessageBroadcast:
		m.fanOut(f, ev.Time)
	case *domain.BroadcastAll:
		m.broadcastAll(f, ev.Time)
	case *domain.ClientKicked:
		m.smu.RLock()
		s := m.sinks[clientKey{f.App, f.Client}]
		m.smu.RUnlock()
		if s == nil || !s.Kick(f.Reason) {
			// Its client has left (its sink is detached before its end
			// is appended), or is leaving, or was kicked before: the
			// kick closes nothing.
			m.kmu.Lock()
			m.missedKicks[m.missedNext] = ev.Seq
			m.missedNext = (m.missedNext + 1) % len(m.missedKicks)
			m.kmu.Unlock()
		}
	}
	m.markApplied(ev.Seq)
	return nil
}

// openLocked opens k's session; smu is held for writing.
func (m *Membership) openLocked(k clientKey) *session {
	sess := &session{}
	m.sessions[k] = sess
	m.perApp[k.app]++
	return sess
}

func (m *Membership) join(ctx context.Context, seq uint64, f *domain.ChannelSubscribed) error {
	k := clientKey{f.App, f.Client}
	m.smu.Lock()
	sess := m.sessions[k]
	if sess == nil { // subscribed without a connection event: keep it consistent
		sess = m.openLocked(k)
	}
	sess.channels.Set(f.Channel, struct{}{})
	sink := m.sinks[k]
	m.smu.Unlock()

	ck := chanKey{f.App, f.Channel}
	sh := m.shard(ck)
	sh.mu.Lock()
	st := sh.chans[ck]
	sh.mu.Unlock()
	if st == nil {
		// First subscriber on this node since start: the event carries the
		// head at its place in the log. Events written before it did make
		// us ask the log, whose head may be ahead of what this projection
		// has applied; subscriptions skip offsets up to their start, so
		// nothing repeats.
		var head uint64
		var epoch string
		if f.Head != nil {
			head, epoch = *f.Head, f.Epoch
		} else {
			var err error
			if head, epoch, err = m.loadHead(ctx, f.App, f.Channel); err != nil {
				return fmt.Errorf("load head of %s/%s: %w", f.App, f.Channel, err)
			}
		}
		sh.mu.Lock()
		if st = sh.chans[ck]; st == nil {
			st = &channelState{head: head, epoch: epoch}
			sh.chans[ck] = st
		}
		sh.mu.Unlock()
	}
	sh.mu.Lock()
	sub := &subscription{seq: seq, sink: sink, from: st.head, catchUp: sink != nil}
	st.subs.Set(f.Client, sub)
	if domain.IsPresence(f.Channel) {
		m.presence(st, f.Channel, "join", f.Client)
	}
	sh.mu.Unlock()
	if sink != nil {
		// Detach may have run since the sink was read, and looked for
		// this subscription before it was made: it would then keep, and
		// buffer for, a connection that has ended until the end is
		// applied. Detach forgets the sink before it looks, so one of
		// the two finds the other.
		m.smu.RLock()
		gone := m.sinks[k] != sink
		m.smu.RUnlock()
		if gone {
			sh.mu.Lock()
			if sub.sink == sink {
				sub.sink, sub.buf, sub.bufSize = nil, nil, 0
			}
			sh.mu.Unlock()
		}
	}
	return nil
}

func (m *Membership) leave(app, channel, client string) {
	ck := chanKey{app, channel}
	sh := m.shard(ck)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.chans[ck]
	if st == nil || st.sub(client) == nil {
		return
	}
	st.subs.Delete(client)
	if domain.IsPresence(channel) {
		m.presence(st, channel, "leave", client)
	}
	if st.subs.Len() == 0 {
		delete(sh.chans, ck)
	}
}

// presence tells a presence channel's subscribers that client joined or
// left. One still catching up gets it with its buffered messages when it
// goes live: from its `subscribed` on, a subscriber misses no join or
// leave. The shard lock is held.
func (m *Membership) presence(st *channelState, channel, event, client string) {
	var frame []byte
	for id, sub := range st.subs.All() {
		if id == client || sub.sink == nil {
			continue
		}
		if frame == nil {
			frame = m.enc.Presence(channel, event, client)
		}
		if sub.catchUp {
			m.buffer(sub, bufFrame{0, frame})
			continue
		}
		if !sub.sink.Send(frame) {
			sub.sink = nil
		}
	}
}

// buffer keeps bf for sub, which is catching up, or, past the caps on
// what one subscription may buffer, tells its sink it overflowed and
// drops it (the shard's lock is held).
func (m *Membership) buffer(sub *subscription, bf bufFrame) {
	if len(sub.buf) >= m.maxBuffer || sub.bufSize+len(bf.frame) > maxBufferBytes {
		sub.sink.Overflow()
		sub.sink, sub.buf, sub.bufSize = nil, nil, 0
		return
	}
	sub.buf = append(sub.buf, bf)
	sub.bufSize += len(bf.frame)
}

func (m *Membership) fanOut(f *domain.MessageBroadcast, ts int64) {
	ck := chanKey{f.App, f.Channel}
	sh := m.shard(ck)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.chans[ck]
	if st == nil {
		return
	}
	if f.Offset > st.head {
		st.head, st.epoch = f.Offset, f.Epoch
	}
	var frame []byte
	for _, sub := range st.subs.All() {
		if sub.sink == nil || f.Offset <= sub.from && !sub.catchUp {
			continue
		}
		if frame == nil {
			frame = m.enc.Message(f, ts)
		}
		if sub.catchUp {
			if f.Offset > sub.from {
				m.buffer(sub, bufFrame{f.Offset, frame})
			}
			continue
		}
		if !sub.sink.Send(frame) {
			sub.sink = nil
		}
	}
}

func (m *Membership) broadcastAll(f *domain.BroadcastAll, ts int64) {
	m.smu.RLock()
	var sinks []Sink
	for k, s := range m.sinks {
		if k.app == f.App {
			sinks = append(sinks, s)
		}
	}
	m.smu.RUnlock()
	if len(sinks) == 0 {
		return
	}
	frame := m.enc.BroadcastAll(f, ts)
	for _, s := range sinks {
		s.Send(frame)
	}
}

// CatchUp returns where a local client's subscription to a channel starts:
// the head offset its replay must reach and the channel's epoch. ok is false
// if the client is not subscribed. seq is the sequence of the event that
// made the subscription, its identity for GoLive.
func (m *Membership) CatchUp(app, channel, client string) (head uint64, epoch string, seq uint64, ok bool) {
	ck := chanKey{app, channel}
	sh := m.shard(ck)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.chans[ck]
	var sub *subscription
	if st != nil {
		sub = st.sub(client)
	}
	if sub == nil {
		return 0, "", 0, false
	}
	return sub.from, st.epoch, sub.seq, true
}

// GoLive ends the catch-up of the subscription that CatchUp named by seq:
// the frames buffered during its replay with offsets past the replayed
// head are sent, in order, and later ones go straight out. When more than
// most are buffered, or more than mostBytes bytes of them, they are handed
// back instead, taken out of the buffer,
// and the subscription keeps catching up: the caller sends them, paced as
// a replay's pages (a burst past the sink's queue would close a client
// that keeps up as a slow consumer), and calls again. live is false if
// that subscription is gone; a later subscription of the same client to
// the channel is left alone (its own replay takes it live).
func (m *Membership) GoLive(app, channel, client string, seq uint64, most, mostBytes int) (rest [][]byte, live bool) {
	ck := chanKey{app, channel}
	sh := m.shard(ck)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.chans[ck]
	if st == nil {
		return nil, false
	}
	sub := st.sub(client)
	if sub == nil || sub.sink == nil || sub.seq != seq {
		return nil, false
	}
	due, size := sub.buf[:0], 0
	for _, b := range sub.buf {
		if b.offset == 0 || b.offset > sub.from {
			due = append(due, b)
			size += len(b.frame)
		}
	}
	for i := len(due) - 1; i >= 0; i-- {
		if o := due[i].offset; o > 0 {
			sub.from = o
			break
		}
	}
	sub.buf, sub.bufSize = nil, 0
	if len(due) > most || size > mostBytes {
		rest = make([][]byte, len(due))
		for i, b := range due {
			rest[i] = b.frame
		}
		return rest, true
	}
	for _, b := range due {
		if !sub.sink.Send(b.frame) {
			sub.sink = nil
			break
		}
	}
	sub.catchUp = false
	return nil, sub.sink != nil
}

// Subscribers implements domain.Members.
func (m *Membership) Subscribers(app, channel string) []string {
	ck := chanKey{app, channel}
	sh := m.shard(ck)
	sh.mu.Lock()
	var out []string
	if st := sh.chans[ck]; st != nil {
		out = make([]string, 0, st.subs.Len())
		for id := range st.subs.All() {
			out = append(out, id)
		}
	}
	sh.mu.Unlock()
	sort.Strings(out)
	return out
}

// kickApplyBound bounds KickTook's wait, as the WebSocket server bounds a
// connect's and a subscribe's (its ApplyTimeout, 10 s).
const kickApplyBound = 10 * time.Second

// KickTook implements domain.Members. Under a ctx with a deadline (a JS
// run's time limit) it gives up a tenth of the time left before it (50
// ms at least), so that its caller gets unavailable in time to answer,
// rather than be cut off at its limit.
func (m *Membership) KickTook(ctx context.Context, app, client string, seq uint64) error {
	d := kickApplyBound
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if margin := max(left/10, 50*time.Millisecond); left > margin {
			d = min(d, left-margin)
		} else {
			d = 0
		}
	}
	var err error
	if d <= 0 {
		if m.applied.Load() < seq {
			err = fmt.Errorf("%w (no time left)", ErrNotApplied)
		}
	} else {
		err = m.WaitAppliedWithin(ctx, seq, d)
	}
	if err != nil {
		return domain.Errorf(domain.CodeUnavailable, "the kick of %s is recorded (event %d) but the server has not applied it yet: %v", client, seq, err)
	}
	if m.KickMissed(seq) {
		return domain.Errorf(domain.CodeNotFound, "no client %s connected to app %s (it left before the kick took effect)", client, app)
	}
	return nil
}

// Fence implements domain.Members: the client's sink fences itself.
func (m *Membership) Fence(app, client string) (done func(seq uint64), pending uint64, ok bool) {
	m.smu.RLock()
	s := m.sinks[clientKey{app, client}]
	m.smu.RUnlock()
	if s == nil {
		return nil, 0, false
	}
	return s.Fence()
}

// KickMissed reports whether the client.kicked.v1 applied as event seq
// found no connection of its client to close: the client had left, or
// was leaving, when the kick was applied (it began to after the kick's
// Fence; a kick appended without one, as a test's, may also find it
// kicked already). It remembers the latest
// 4096 such kicks (a kick asks as soon as its own is applied); for an
// older one, one not applied yet, or one that closed a connection, it
// reports false.
func (m *Membership) KickMissed(seq uint64) bool {
	if seq == 0 {
		return false
	}
	m.kmu.Lock()
	defer m.kmu.Unlock()
	return slices.Contains(m.missedKicks[:], seq)
}

// Connected implements domain.Members.
func (m *Membership) Connected(app, client string) bool {
	m.smu.RLock()
	defer m.smu.RUnlock()
	return m.sessions[clientKey{app, client}] != nil
}

// Count implements domain.Members.
func (m *Membership) Count(app, channel string) int {
	if channel != "" {
		ck := chanKey{app, channel}
		sh := m.shard(ck)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if st := sh.chans[ck]; st != nil {
			return st.subs.Len()
		}
		return 0
	}
	m.smu.RLock()
	defer m.smu.RUnlock()
	return m.perApp[app]
}

// Channels implements domain.Members. It visits every live channel of
// every app, but keeps only a page: the limit smallest names after after.
func (m *Membership) Channels(app, after string, limit int) []domain.LiveChannel {
	if limit <= 0 {
		return nil
	}
	var page liveHeap // the largest name on top, to be pushed out first
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, st := range sh.chans {
			if k.app != app || k.channel <= after || st.subs.Len() == 0 {
				continue
			}
			switch {
			case len(page) < limit:
				heap.Push(&page, domain.LiveChannel{Channel: k.channel, Subscribers: st.subs.Len()})
			case k.channel < page[0].Channel:
				page[0] = domain.LiveChannel{Channel: k.channel, Subscribers: st.subs.Len()}
				heap.Fix(&page, 0)
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(page, func(a, b domain.LiveChannel) int { return strings.Compare(a.Channel, b.Channel) })
	return page
}

// liveHeap is a max-heap of channels by name (container/heap).
type liveHeap []domain.LiveChannel

func (h liveHeap) Len() int           { return len(h) }
func (h liveHeap) Less(i, j int) bool { return h[i].Channel > h[j].Channel }
func (h liveHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *liveHeap) Push(x any)        { *h = append(*h, x.(domain.LiveChannel)) }
func (h *liveHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Sessions returns the open sessions of every app, as app -> client ids,
// sorted.
func (m *Membership) Sessions() map[string][]string {
	m.smu.RLock()
	out := map[string][]string{}
	for k := range m.sessions {
		out[k.app] = append(out[k.app], k.client)
	}
	m.smu.RUnlock()
	for _, ids := range out {
		sort.Strings(ids)
	}
	return out
}

// Subscriptions returns the channels a client is subscribed to, sorted.
func (m *Membership) Subscriptions(app, client string) []string {
	m.smu.RLock()
	defer m.smu.RUnlock()
	sess := m.sessions[clientKey{app, client}]
	if sess == nil {
		return nil
	}
	out := make([]string, 0, sess.channels.Len())
	for c := range sess.channels.All() {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
