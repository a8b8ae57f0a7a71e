package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/health"
)

// Publisher is the log's Watermill publisher: Publish commits the messages
// to the log in one transaction and returns once they are durable, with the
// committed sequence (and, for broadcasts, offset and epoch) in each
// message's metadata. Safe for concurrent use.
type Publisher struct{ log *Log }

var _ message.Publisher = (*Publisher)(nil)

// Publisher returns the log's Watermill publisher.
func (l *Log) Publisher() *Publisher { return &Publisher{log: l} }

// Publish implements message.Publisher. Every message must carry a fact: one
// made by NewMessage, or a payload with a known event name in metadata.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if topic != Topic {
		return fmt.Errorf("publish: unknown topic %q (the log's topic is %q)", topic, Topic)
	}
	facts := make([]domain.Fact, len(msgs))
	uuids := make([]string, len(msgs))
	for i, m := range msgs {
		f, err := FactOf(m)
		if err != nil {
			return fmt.Errorf("publish message %s: %w", m.UUID, err)
		}
		facts[i], uuids[i] = f, m.UUID
	}
	_, err := p.log.publish(context.Background(), facts, uuids, msgs)
	return err
}

// Close implements message.Publisher; the log itself is closed by Log.Close.
func (p *Publisher) Close() error { return nil }

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// After is the sequence after which delivery starts: 0 delivers the
	// whole log. A projection passes its checkpoint.
	After uint64
	// Names, when set, limits delivery to these event names.
	Names []string
	// PageSize is how many events one read of the file returns (default 512).
	PageSize int
	// NackDelay is how long to wait before redelivering a nacked message
	// (default 100ms).
	NackDelay time.Duration
}

// Subscriber is the log's Watermill subscriber: every subscription receives
// the committed events after cfg.After in sequence order, one at a time,
// each only after the previous one was acked (a nack redelivers it). Old
// events are read from the file in pages, recent ones from memory, and the
// subscription then follows new commits as they happen.
type Subscriber struct {
	log    *Log
	cfg    SubscriberConfig
	names  map[string]bool
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	// failing holds why its last read of the file failed, until one
	// works: a subscription that cannot read on delivers nothing, and
	// its consumer, never handed a message, would not know.
	failing health.Failing
}

var _ message.Subscriber = (*Subscriber)(nil)

// Subscriber returns a new subscriber to the log.
func (l *Log) Subscriber(cfg SubscriberConfig) *Subscriber {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 512
	}
	if cfg.NackDelay <= 0 {
		cfg.NackDelay = 100 * time.Millisecond
	}
	s := &Subscriber{log: l, cfg: cfg, closed: make(chan struct{})}
	if len(cfg.Names) > 0 {
		s.names = map[string]bool{}
		for _, n := range cfg.Names {
			s.names[n] = true
		}
	}
	return s
}

// Failing returns why the subscriber's last read of the log failed, and
// since when its reads have failed; err is nil while they work.
func (s *Subscriber) Failing() (since time.Time, err error) { return s.failing.State() }

// Subscribe implements message.Subscriber.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic != Topic {
		return nil, fmt.Errorf("subscribe: unknown topic %q (the log's topic is %q)", topic, Topic)
	}
	select {
	case <-s.closed:
		return nil, errors.New("subscriber is closed")
	default:
	}
	out := make(chan *message.Message)
	// A subscription that delivers broadcasts holds retention back from
	// what it has yet to read, from before Subscribe returns.
	var cursor *atomic.Uint64
	done := func() {}
	if s.names == nil || s.names[domain.NameMessageBroadcast] {
		cursor, done = s.log.trackReader(s.cfg.After)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer done()
		s.run(ctx, out, cursor)
	}()
	return out, nil
}

// run delivers the subscription's events to out, storing in cursor (when
// set) how far it has read.
func (s *Subscriber) run(ctx context.Context, out chan<- *message.Message, cursor *atomic.Uint64) {
	pos := s.cfg.After
	for {
		recs, inMemory := s.log.tail.read(pos, s.cfg.PageSize)
		var scanned uint64 // with a short page from the file: all up to here was read
		if !inMemory {
			head := s.log.tail.lastSeq()
			var err error
			if recs, err = s.log.readRecords(ctx, pos, s.cfg.PageSize, s.cfg.Names); err != nil {
				if ctx.Err() != nil {
					return // the subscription's end cut the read short
				}
				s.log.log.Error("subscriber: read log", "after", pos, "err", err)
				s.failing.Fail(fmt.Errorf("read the log after event %d: %w", pos, err))
				if !s.sleep(ctx, time.Second) {
					return
				}
				continue
			}
			if s.failing.Works() {
				s.log.log.Info("subscriber: reads the log again", "after", pos)
			}
			if len(recs) < s.cfg.PageSize {
				scanned = head
			}
		}
		if len(recs) == 0 && scanned <= pos {
			if !s.log.tail.wait(ctx, pos, s.closed) {
				return
			}
			continue
		}
		for _, r := range recs {
			if s.names == nil || s.names[r.ev.Fact.EventName()] {
				if !s.deliver(ctx, out, r) {
					return
				}
			}
			pos = r.ev.Seq
		}
		pos = max(pos, scanned)
		if cursor != nil {
			cursor.Store(pos)
		}
	}
}

func (s *Subscriber) deliver(ctx context.Context, out chan<- *message.Message, r *record) bool {
	for {
		msg := committedMessage(ctx, r)
		select {
		case out <- msg:
		case <-ctx.Done():
			return false
		case <-s.closed:
			return false
		}
		select {
		case <-msg.Acked():
			return true
		case <-msg.Nacked():
			if !s.sleep(ctx, s.cfg.NackDelay) {
				return false
			}
		case <-ctx.Done():
			return false
		case <-s.closed:
			return false
		}
	}
}

func (s *Subscriber) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// Close ends every subscription and waits for them to stop.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closed) })
	s.wg.Wait()
	return nil
}
