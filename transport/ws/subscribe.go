package ws

import (
	"context"
	"fmt"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// subscribe joins a channel and replays its history without a gap or a
// duplicate at the boundary with live messages:
//
//  1. ChannelSubscribed is committed; when the membership projection
//     applies it, the connection is registered in catch-up mode (live
//     frames of the channel are buffered for it) and the channel's head H
//     is noted, all under the channel's lock.
//  2. `subscribed` is queued, then the offsets up to H are read from the log
//     in pages and queued, outside any lock.
//  3. GoLive sends the buffered frames past H and switches to live.
func (c *conn) subscribe(req *request) error {
	channel := req.Channel
	if err := domain.ValidateChannel(channel); err != nil {
		return err
	}
	start, err := parseStart(req)
	if err != nil {
		return err
	}
	ctx := c.ctx
	settings, err := c.settings()
	if err != nil {
		return err
	}
	c.smu.Lock()
	if _, ok := c.subs.Get(channel); ok {
		c.smu.Unlock()
		return domain.Errorf(domain.CodeBadRequest, "already subscribed to %s", channel)
	}
	if max := settings.Limits.MaxSubscriptions; c.subs.Len() >= max {
		c.smu.Unlock()
		c.srv.metrics.refused("subscriptions")
		return domain.Errorf(domain.CodeTooManySubscriptions, "a connection may join at most %d channels", max)
	}
	// No cancel func until there is a replay to stop: most subscriptions
	// have none, and a context per subscription costs memory per idle
	// connection.
	c.subs.Set(channel, nil)
	c.smu.Unlock()
	ok := false
	defer func() {
		if !ok {
			c.smu.Lock()
			c.subs.Delete(channel)
			c.smu.Unlock()
		}
	}()

	var exp time.Time // when a private channel's token expires; zero for never
	if domain.IsPrivate(channel) {
		if exp, err = checkChannelToken(settings.Secret, req.Token, c.app.Name, channel, c.client.ID); err != nil {
			c.srv.metrics.refused("private_token")
			return err
		}
	}
	if c.srv.hooks != nil {
		if err := c.srv.hooks.OnSubscribe(ctx, c.client, channel); err != nil {
			return err
		}
	}
	if c.closingNow.Load() {
		// Kicked by the hook, say: record would find it so, but a
		// closing connection answers nothing, not a token's expiry.
		return nil
	}
	if !exp.IsZero() && expired(exp) {
		// The token expired while the hook ran.
		c.srv.metrics.refused("private_token")
		return errTokenExpired(channel, domain.CodeUnavailable)
	}
	evs, recorded, err := c.record(ctx, &domain.ChannelSubscribed{App: c.app.Name, Channel: channel, Client: c.client.ID, Start: start})
	if err != nil || !recorded {
		return err
	}
	if err := c.waitApplied(evs[0].Seq); err != nil {
		return unsettled{err}
	}
	head, epoch, subSeq, found := c.srv.members.CatchUp(c.app.Name, channel, c.client.ID)
	if !found {
		return unsettled{fmt.Errorf("subscription of %s to %s vanished before it started", c.client.ID, channel)}
	}
	// Pinned, the history read next cannot lose its oldest messages to
	// retention before the replay has read them; the pin is narrowed to
	// what is left to read once the replay's start is known, and after
	// each page.
	keep, unpin := c.srv.store.PinHistory(c.app.Name, channel)
	first := uint64(1)
	if head > 0 { // a channel without messages has nothing to look up
		info, err := c.srv.store.Channel(ctx, c.app.Name, channel)
		if err != nil {
			unpin()
			return unsettled{err}
		}
		if epoch == "" {
			epoch = info.Epoch
		}
		first = min(info.First, head+1) // retention never trims past the head
	}

	plan := replayPlan{channel: channel, upto: head, sub: subSeq, keep: keep, unpin: unpin}
	// A client that gives an epoch holds a position in the history it
	// names. When the channel's epoch is another (a channel without
	// history has none), that history no longer exists (a database
	// replaced), and the client gets the whole retained history, whatever
	// it asked for: what it holds belongs to the old one. So it does with
	// the same epoch and an offset past the head (a database restored
	// from an older copy): the offsets after the head will be given
	// again, to other messages.
	from := start
	epochChanged := start.Epoch != "" && (start.Epoch != epoch || start.Mode == domain.StartOffset && uint64(start.Value) > head)
	if epochChanged {
		from = domain.Start{Mode: domain.StartOffset}
	}
	switch from.Mode {
	case domain.StartLive:
		plan.after = head
	case domain.StartOffset:
		plan.after = min(uint64(from.Value), head)
	case domain.StartLast:
		plan.after = head - min(head, uint64(from.Value))
	case domain.StartSince:
		plan.since = from.Value
	}
	// Truncated: the first offset asked for is older than what is
	// retained; with since, a message at or after it was dropped.
	truncated := (from.Mode == domain.StartOffset || from.Mode == domain.StartLast) &&
		plan.after < head && plan.after+1 < first
	// A channel without messages has none to count: its head of 0 would
	// read as no bound, and count what is committed meanwhile.
	if from.Mode == domain.StartSince && head > 0 {
		plan.count, err = c.srv.store.CountMessages(ctx, c.app.Name, channel, domain.HistoryQuery{Upto: head, Since: plan.since})
		if err == nil {
			truncated, err = c.srv.store.TrimmedSince(ctx, c.app.Name, channel, first, plan.since)
		}
		if err != nil {
			unpin()
			return unsettled{err}
		}
	} else {
		if low := max(plan.after, first-1); head > low {
			plan.count = int(head - low)
		}
		keep(plan.after + 1)
	}
	c.reply(appendSubscribed(make([]byte, 0, 192+len(req.ID)+len(channel)+len(epoch)), req.ID, channel, head, epoch, plan.count, truncated, first, epochChanged))
	ok = true
	if !exp.IsZero() {
		c.expireAt(channel, exp)
	}
	if plan.count == 0 {
		unpin()
		// What came meanwhile is little, and goes live here; more, handed
		// back, is sent on a goroutine of its own, as a replay's pages
		// are: waiting for room here would hold up the client's reader.
		// An unsubscribe cancels it, as it does a replay: nothing of the
		// channel is queued after `unsubscribed`.
		rest, live := c.goLiveOnce(channel, subSeq)
		if live && rest != nil {
			c.background(channel, func(ctx context.Context) {
				if c.sendPage(ctx, rest) == nil {
					c.goLive(ctx, channel, subSeq)
				}
			})
		}
		return nil
	}
	// The replay stops when the subscription ends (unsubscribe cancels)
	// or the connection does.
	c.background(channel, func(ctx context.Context) { c.replay(ctx, plan) })
	return nil
}

// background runs f on a goroutine of its own, for the subscription to
// channel, with a context that an unsubscribe of it cancels, as does the
// connection's end, which waits for f (c.replays).
func (c *conn) background(channel string, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.smu.Lock()
	c.subs.Set(channel, cancel)
	c.smu.Unlock()
	c.replays.Add(1)
	go func() {
		defer c.replays.Done()
		f(ctx)
	}()
}

// replayPageBytes bounds the data of one page of a replay (a read stops at
// the message that reaches it): a replay holds its page while it waits
// for room in the queue, and a connection may replay many channels at
// once.
const replayPageBytes = 1 << 20

type replayPlan struct {
	channel string
	sub     uint64 // the subscription (Membership.CatchUp), which goes live after
	after   uint64 // replay offsets > after
	upto    uint64 // ... and <= upto
	since   int64  // ... with timestamp >= since
	count   int
	keep    func(from uint64) // narrows the history pin to offsets >= from
	unpin   func()            // lets go of the history once it is read
}

// replay queues the planned history in pages, then takes the subscription
// live. It stops quietly when the subscription or connection ends.
func (c *conn) replay(ctx context.Context, p replayPlan) {
	defer p.unpin() // on the way out early; unpin is idempotent
	page := c.srv.cfg.ReplayPage
	after := p.after
	frames := make([][]byte, 0, page)
	for after < p.upto {
		msgs, err := c.srv.store.Messages(ctx, c.app.Name, p.channel, domain.HistoryQuery{After: after, Upto: p.upto, Since: p.since, Limit: page, MaxBytes: replayPageBytes})
		if err != nil {
			if ctx.Err() == nil {
				c.srv.log.Error("replay", "app", c.app.Name, "channel", p.channel, "err", err)
				c.disconnect(domain.ReasonServerError, 1011, "history read failed", true)
			}
			return
		}
		if len(msgs) > 0 {
			// The page is read: retention may drop it now.
			p.keep(msgs[len(msgs)-1].Offset + 1)
		}
		// The page's frames are carved from one buffer: one allocation
		// per page instead of one per message.
		size := 0
		for _, m := range msgs {
			size += messageSize(p.channel, m.Data)
		}
		buf := make([]byte, 0, size)
		frames = frames[:0]
		for _, m := range msgs {
			start := len(buf)
			buf = appendMessage(buf, p.channel, m.Offset, m.Data, m.Time, true)
			frames = append(frames, buf[start:len(buf):len(buf)])
		}
		// A page shorter than asked for is not the end: the store caps a
		// read (events.MaxPage, and replayPageBytes). The replay ends at
		// upto, or at a page with nothing in it.
		if len(msgs) == 0 {
			break
		}
		after = msgs[len(msgs)-1].Offset
		// The frames hold a copy of the data: the messages go before a
		// wait for room in the queue.
		msgs = nil
		if err := c.sendPage(ctx, frames); err != nil {
			return
		}
		// Times never go backwards along a channel's offsets, so every
		// message after a page of the since-range is in it too: the later
		// pages need not look for the time bound again.
		p.since = 0
	}
	// Read: what going live sends comes from memory (or, read back from
	// the file, is kept by the log's readers), however long it waits.
	p.unpin()
	if ctx.Err() == nil {
		c.goLive(ctx, p.channel, p.sub)
	}
}

// goLiveOnce is Membership.GoLive with what may be queued at once: a
// quarter of the send queue, in frames and in bytes, so that what a
// replay's pages left there (up to half) and this fit.
func (c *conn) goLiveOnce(channel string, sub uint64) (rest [][]byte, live bool) {
	return c.srv.members.GoLive(c.app.Name, channel, c.client.ID, sub, max(1, c.srv.cfg.SendQueue/4), c.queueBytes()/4)
}

// goLive takes subscription sub live (Membership.GoLive). What its replay
// left buffered, past a quarter of the send queue, is sent as a replay's
// pages are, waiting for room: the queue (8192 frames, 16 MiB) would otherwise
// overflow, at a few thousand live frames buffered during a long replay,
// and close a client that keeps up as a slow consumer.
func (c *conn) goLive(ctx context.Context, channel string, sub uint64) {
	for {
		rest, live := c.goLiveOnce(channel, sub)
		if !live || rest == nil {
			return
		}
		if c.sendPage(ctx, rest) != nil {
			return
		}
	}
}

// maxEpoch bounds a subscribe's epoch, which its event records: the
// server's epochs are 16 characters.
const maxEpoch = 64

func parseStart(req *request) (domain.Start, error) {
	if len(req.Epoch) > maxEpoch {
		return domain.Start{}, domain.Errorf(domain.CodeBadRequest, "epoch is over %d bytes", maxEpoch)
	}
	n := 0
	for _, p := range []*int64{req.Offset, req.Last, req.Since} {
		if p != nil {
			n++
		}
	}
	if n > 1 {
		return domain.Start{}, domain.Errorf(domain.CodeBadRequest, "subscribe takes at most one of offset, last and since")
	}
	switch {
	case req.Offset != nil:
		if *req.Offset < 0 {
			return domain.Start{}, domain.Errorf(domain.CodeBadRequest, "offset must be 0 or more")
		}
		return domain.Start{Mode: domain.StartOffset, Value: *req.Offset, Epoch: req.Epoch}, nil
	case req.Last != nil:
		if *req.Last < 0 {
			return domain.Start{}, domain.Errorf(domain.CodeBadRequest, "last must be 0 or more")
		}
		return domain.Start{Mode: domain.StartLast, Value: *req.Last, Epoch: req.Epoch}, nil
	case req.Since != nil:
		if err := domain.CheckUnixMillis("since", *req.Since); err != nil {
			return domain.Start{}, err
		}
		return domain.Start{Mode: domain.StartSince, Value: *req.Since, Epoch: req.Epoch}, nil
	}
	return domain.Start{Mode: domain.StartLive, Epoch: req.Epoch}, nil
}
