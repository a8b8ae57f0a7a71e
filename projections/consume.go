package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/internal/health"
)

// Consumer feeds one projection from a Watermill Subscriber.
//
// It does what Watermill's Router does for a consumer handler, less the
// parts a projection has no use for (middleware, plugins, the handler's
// name in the message's context): each message is handed to the handler
// on the goroutine that received it, in order, and acked when the handler
// returns nil; an error or a panic is logged and nacks it, and the
// Subscriber delivers it again. The Router passes every message through
// two more goroutines (its context decorator, then a goroutine of its own
// per message) and builds a context and log fields for each: about 8% of
// the server's CPU per connect (two events, each to two projections) in
// `fazt bench conns` (BENCHMARKS.md, stop 19). The handlers keep
// Watermill's handler signature.
type Consumer struct {
	log  *slog.Logger
	stop context.CancelFunc
	done chan struct{}
	// failing holds why the handler last failed, until it succeeds; or
	// that the Subscriber ended the subscription, for good.
	failing health.Failing
	// reads is the Subscriber's own failing state, when it has one (the
	// log's does): reads that fail hand the handler nothing to fail on.
	reads interface {
		Failing() (time.Time, error)
	}
}

// Consume subscribes to topic on sub, which it then owns, and hands its
// messages to handle until Stop is called, ctx ends or the Subscriber
// closes the channel; then it closes sub, and Done is closed. Once Consume
// returns, the subscription is made.
func Consume(ctx context.Context, name string, sub message.Subscriber, topic string, handle message.NoPublishHandlerFunc, log *slog.Logger) (*Consumer, error) {
	ctx, stop := context.WithCancel(ctx)
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		stop()
		sub.Close()
		return nil, fmt.Errorf("%s: subscribe: %w", name, err)
	}
	c := &Consumer{log: log.With("handler", name), stop: stop, done: make(chan struct{})}
	c.reads, _ = sub.(interface{ Failing() (time.Time, error) })
	go func() {
		defer close(c.done)
		for msg := range msgs {
			if c.handle(msg, handle) {
				msg.Ack()
			} else {
				msg.Nack()
			}
		}
		if ctx.Err() == nil {
			ended := errors.New("the subscriber ended the subscription; the projection no longer follows the log")
			c.log.Warn(ended.Error())
			c.failing.Fail(ended)
		}
		if err := sub.Close(); err != nil {
			c.log.Error("close subscriber", "err", err)
		}
	}()
	return c, nil
}

// handle runs handle on msg and says whether it succeeded.
func (c *Consumer) handle(msg *message.Message, handle message.NoPublishHandlerFunc) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked; the message will be delivered again", "message_uuid", msg.UUID, "panic", r, "stack", string(debug.Stack()))
			c.failing.Fail(fmt.Errorf("handler panicked on message %s: %v", msg.UUID, r))
			ok = false
		}
	}()
	if err := handle(msg); err != nil {
		if !errors.Is(err, context.Canceled) {
			c.log.Error("handler failed; the message will be delivered again", "message_uuid", msg.UUID, "err", err)
			c.failing.Fail(fmt.Errorf("handler failed on message %s: %w", msg.UUID, err))
		}
		return false
	}
	if c.failing.Works() {
		c.log.Info("handler succeeded again")
	}
	return true
}

// Failing returns why the handler last failed, and since when it has
// failed without a success; err is nil while it works. A consumer whose
// Subscriber ended the subscription fails for good; so does one whose
// Subscriber cannot read the log, for as long. Of two failures, the older
// is returned.
func (c *Consumer) Failing() (since time.Time, err error) {
	if c.reads == nil {
		return c.failing.State()
	}
	return health.Older(c.failing.State, c.reads.Failing)
}

// Stop ends the consumer's subscription; Done says when it has stopped.
func (c *Consumer) Stop() { c.stop() }

// Done is closed once the consumer has stopped and closed its Subscriber.
func (c *Consumer) Done() <-chan struct{} { return c.done }
