package projections

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/health"
)

// SubscriptionsName is the subscriptions projection's stable handler name,
// also its name in projection_checkpoints. Renaming it rebuilds it.
const SubscriptionsName = "subscriptions.v1"

// SessionRow is an open session: the client and the event that opened it.
type SessionRow struct {
	App    string `json:"app"`
	Client string `json:"client"`
	Seq    uint64 `json:"seq"`
	Time   int64  `json:"ts"`
}

// SubscriptionRow is an open subscription and the event that opened it.
type SubscriptionRow struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
	Client  string `json:"client"`
	Seq     uint64 `json:"seq"`
	Time    int64  `json:"ts"`
}

// change is one step of applying an event to the subscriptions read model.
// Both the in-memory model and the SQL store apply the same changes, so the
// two can only disagree if the stored rows were damaged.
type change struct {
	op   changeOp
	app  string
	ch   string
	cl   string
	seq  uint64
	time int64
}

type changeOp int

const (
	openSession       changeOp = iota // insert the session unless it exists
	closeSession                      // delete the session and its subscriptions
	openSubscription                  // insert or replace the subscription
	closeSubscription                 // delete the subscription
)

// changesFor returns what an event changes, with the same meaning as
// Membership.Apply: a subscribe without a connection event still opens the
// session; a kick changes nothing until its disconnection.
func changesFor(ev domain.Event) []change {
	switch f := ev.Fact.(type) {
	case *domain.ClientConnected:
		return []change{{op: openSession, app: f.App, cl: f.Client, seq: ev.Seq, time: ev.Time}}
	case *domain.ClientDisconnected:
		return []change{{op: closeSession, app: f.App, cl: f.Client}}
	case *domain.ChannelSubscribed:
		return []change{
			{op: openSession, app: f.App, cl: f.Client, seq: ev.Seq, time: ev.Time},
			{op: openSubscription, app: f.App, ch: f.Channel, cl: f.Client, seq: ev.Seq, time: ev.Time},
		}
	case *domain.ChannelUnsubscribed:
		return []change{{op: closeSubscription, app: f.App, ch: f.Channel, cl: f.Client}}
	}
	return nil
}

// SubscriptionState is the subscriptions read model in memory: what
// `fazt rebuild` computes from the log to check the stored one. Not safe
// for concurrent use.
type SubscriptionState struct {
	Applied       uint64
	Sessions      map[[2]string]SessionRow      // app, client
	Subscriptions map[[3]string]SubscriptionRow // app, channel, client

	byClient map[[2]string]map[string]bool // app, client -> channels
}

// NewSubscriptionState returns an empty model.
func NewSubscriptionState() *SubscriptionState {
	return &SubscriptionState{Sessions: map[[2]string]SessionRow{}, Subscriptions: map[[3]string]SubscriptionRow{},
		byClient: map[[2]string]map[string]bool{}}
}

// Apply applies one event; events at or below Applied are ignored.
func (s *SubscriptionState) Apply(ev domain.Event) {
	if ev.Seq <= s.Applied {
		return
	}
	for _, c := range changesFor(ev) {
		switch c.op {
		case openSession:
			k := [2]string{c.app, c.cl}
			if _, ok := s.Sessions[k]; !ok {
				s.Sessions[k] = SessionRow{c.app, c.cl, c.seq, c.time}
			}
		case closeSession:
			k := [2]string{c.app, c.cl}
			delete(s.Sessions, k)
			for ch := range s.byClient[k] {
				delete(s.Subscriptions, [3]string{c.app, ch, c.cl})
			}
			delete(s.byClient, k)
		case openSubscription:
			s.Subscriptions[[3]string{c.app, c.ch, c.cl}] = SubscriptionRow{c.app, c.ch, c.cl, c.seq, c.time}
			k := [2]string{c.app, c.cl}
			if s.byClient[k] == nil {
				s.byClient[k] = map[string]bool{}
			}
			s.byClient[k][c.ch] = true
		case closeSubscription:
			delete(s.Subscriptions, [3]string{c.app, c.ch, c.cl})
			delete(s.byClient[[2]string{c.app, c.cl}], c.ch)
		}
	}
	s.Applied = ev.Seq
}

// SessionList returns the sessions sorted by app and client.
func (s *SubscriptionState) SessionList() []SessionRow {
	out := make([]SessionRow, 0, len(s.Sessions))
	for _, r := range s.Sessions {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].Client < out[j].Client
	})
	return out
}

// SubscriptionList returns the subscriptions sorted by app, channel and
// client.
func (s *SubscriptionState) SubscriptionList() []SubscriptionRow {
	out := make([]SubscriptionRow, 0, len(s.Subscriptions))
	for _, r := range s.Subscriptions {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Client < b.Client
	})
	return out
}

// LoadSubscriptionState reads the stored read model and its checkpoint in
// one snapshot of the file.
func LoadSubscriptionState(ctx context.Context, l *events.Log) (*SubscriptionState, error) {
	s := NewSubscriptionState()
	err := l.ReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		if s.Applied, err = events.Checkpoint(ctx, tx, SubscriptionsName); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT app, client, seq, ts FROM sessions`)
		if err != nil {
			return fmt.Errorf("read sessions: %w", err)
		}
		for rows.Next() {
			var r SessionRow
			if err := rows.Scan(&r.App, &r.Client, &r.Seq, &r.Time); err != nil {
				rows.Close()
				return fmt.Errorf("read sessions: %w", err)
			}
			s.Sessions[[2]string{r.App, r.Client}] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read sessions: %w", err)
		}
		rows, err = tx.QueryContext(ctx, `SELECT app, channel, client, seq, ts FROM subscriptions`)
		if err != nil {
			return fmt.Errorf("read subscriptions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r SubscriptionRow
			if err := rows.Scan(&r.App, &r.Channel, &r.Client, &r.Seq, &r.Time); err != nil {
				return fmt.Errorf("read subscriptions: %w", err)
			}
			s.Subscriptions[[3]string{r.App, r.Channel, r.Client}] = r
			k := [2]string{r.App, r.Client}
			if s.byClient[k] == nil {
				s.byClient[k] = map[string]bool{}
			}
			s.byClient[k][r.Channel] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", SubscriptionsName, err)
	}
	return s, nil
}

// Subscriptions is the persisted subscriptions projection: the sessions
// and subscriptions tables, kept by a Watermill handler. Handle queues each
// membership event's changes in memory; Flush writes what is queued and
// the new checkpoint in one transaction on the log's writer connection, so
// that a burst of connections costs one write, not one each. Run flushes
// every interval, and Handle flushes at once when the queue is long. After
// a crash the events past the checkpoint are simply delivered again: the
// checkpoint, not the acks, says where to resume. Safe for concurrent use;
// Handle must be called in sequence order.
type Subscriptions struct {
	log      *events.Log
	maxQueue int

	applied atomic.Uint64 // the stored checkpoint
	// failing holds why Run's last flush failed, until one succeeds.
	failing health.Failing

	mu       sync.Mutex // held while flushing, so Handle waits for a flush
	queue    []change
	queueSeq uint64 // the last sequence whose changes are queued; 0 for none
}

// OpenSubscriptions returns the projection, positioned at its checkpoint.
func OpenSubscriptions(ctx context.Context, l *events.Log) (*Subscriptions, error) {
	var seq uint64
	err := l.ReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		seq, err = events.Checkpoint(ctx, tx, SubscriptionsName)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A flush holds the writer connection: 256 changes keep that to a few
	// milliseconds, so appends never wait long behind a catch-up.
	p := &Subscriptions{log: l, maxQueue: 256}
	p.applied.Store(seq)
	return p, nil
}

// Applied returns the stored checkpoint: every event up to it is in the
// tables.
func (p *Subscriptions) Applied() uint64 { return p.applied.Load() }

// Events are the event names the projection needs; its Subscriber can skip
// the rest.
func (p *Subscriptions) Events() []string { return MembershipEvents }

// Apply queues one event's changes, and flushes when the queue is long. An
// event at or below what is stored or queued is ignored, so redelivery is
// harmless. While the queue is full (its flush failed), an event is not
// queued until a flush works: its error nacks the event, which comes
// again. Otherwise, with every flush failing (a damaged table, a full
// disk), each event was queued all the same and the queue grew without
// bound, each failed flush trying it all in one transaction.
func (p *Subscriptions) Apply(ctx context.Context, ev domain.Event) error {
	p.mu.Lock()
	if ev.Seq <= max(p.applied.Load(), p.queueSeq) {
		p.mu.Unlock()
		return nil
	}
	if len(p.queue) >= p.maxQueue {
		p.mu.Unlock()
		if err := p.Flush(ctx); err != nil {
			return err
		}
		p.mu.Lock()
	}
	p.queue = append(p.queue, changesFor(ev)...)
	p.queueSeq = ev.Seq
	full := len(p.queue) >= p.maxQueue
	p.mu.Unlock()
	if full {
		return p.Flush(ctx)
	}
	return nil
}

// The statements a flush runs, by their index in flushStatements.
const (
	insertSession = iota
	deleteSession
	deleteClientSubscriptions
	putSubscription
	deleteSubscription
)

var flushStatements = [...]string{
	insertSession: `INSERT OR IGNORE INTO sessions (app, client, seq, ts) VALUES (?, ?, ?, ?)`,
	deleteSession: `DELETE FROM sessions WHERE app = ? AND client = ?`,
	// Without statistics, SQLite takes an equality on the first column of
	// the primary key (app) for a selective one, and would read every
	// subscription of the app to find the client's (0.7 ms a disconnect
	// with 10,000 subscriptions, with the writer connection held). The
	// index by client finds them directly.
	deleteClientSubscriptions: `DELETE FROM subscriptions INDEXED BY subscriptions_client WHERE app = ? AND client = ?`,
	putSubscription:           `INSERT OR REPLACE INTO subscriptions (app, channel, client, seq, ts) VALUES (?, ?, ?, ?, ?)`,
	deleteSubscription:        `DELETE FROM subscriptions WHERE app = ? AND channel = ? AND client = ?`,
}

// Flush writes the queued changes and the checkpoint in one transaction.
// On failure they stay queued for the next flush.
func (p *Subscriptions) Flush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queueSeq == 0 {
		return nil
	}
	err := p.log.WriteTx(ctx, func(tx *sql.Tx) error {
		// ctx bounds the wait for the writer connection. The statements
		// run without it: each takes microseconds, and mattn/go-sqlite3
		// runs a statement whose context can end on a goroutine of its
		// own, two of them per connection that comes and goes.
		ctx := context.WithoutCancel(ctx)
		// Statements are prepared once per flush: a flush is thousands of
		// small writes, and preparing each one would cost more than it.
		var stmts [len(flushStatements)]*sql.Stmt
		for i, q := range flushStatements {
			st, err := tx.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("%s: prepare: %w", SubscriptionsName, err)
			}
			defer st.Close()
			stmts[i] = st
		}
		for _, c := range p.queue {
			var err error
			switch c.op {
			case openSession:
				_, err = stmts[insertSession].ExecContext(ctx, c.app, c.cl, c.seq, c.time)
			case closeSession:
				if _, err = stmts[deleteSession].ExecContext(ctx, c.app, c.cl); err == nil {
					_, err = stmts[deleteClientSubscriptions].ExecContext(ctx, c.app, c.cl)
				}
			case openSubscription:
				_, err = stmts[putSubscription].ExecContext(ctx, c.app, c.ch, c.cl, c.seq, c.time)
			case closeSubscription:
				_, err = stmts[deleteSubscription].ExecContext(ctx, c.app, c.ch, c.cl)
			}
			if err != nil {
				return fmt.Errorf("%s: apply changes up to event %d: %w", SubscriptionsName, p.queueSeq, err)
			}
		}
		return events.SetCheckpoint(ctx, tx, SubscriptionsName, p.queueSeq, time.Now().UnixMilli())
	})
	if err != nil {
		return err
	}
	p.applied.Store(p.queueSeq)
	p.queue, p.queueSeq = p.queue[:0], 0
	return nil
}

// Run flushes every interval (default 50ms) until ctx ends, then flushes
// once more. Failures are returned to logf and retried; the first flush
// that succeeds after failures calls logf with nil.
func (p *Subscriptions) Run(ctx context.Context, interval time.Duration, logf func(err error)) {
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := p.Flush(ctx); err != nil {
				p.failing.Fail(err)
				if logf != nil {
					logf(err)
				}
			} else if p.failing.Works() && logf != nil {
				logf(nil) // the failures are over
			}
		case <-ctx.Done():
			if err := p.Flush(context.Background()); err != nil && logf != nil {
				logf(err)
			}
			return
		}
	}
}

// Failing returns why Run's last flush of the queued changes failed, and
// since when its flushes have failed; err is nil while they succeed.
func (p *Subscriptions) Failing() (since time.Time, err error) { return p.failing.State() }

// Handle is the projection's Watermill handler. An error nacks the message
// and the Subscriber redelivers it.
func (p *Subscriptions) Handle(msg *message.Message) error {
	ev, err := events.EventOf(msg)
	if err != nil {
		return err
	}
	return p.Apply(msg.Context(), ev)
}

// Replay computes the subscriptions read model from the log, from sequence
// 0 up to and including upto, in pages. progress, when set, is told the
// sequence reached after each page.
func Replay(ctx context.Context, h domain.History, upto uint64, progress func(seq uint64)) (*SubscriptionState, error) {
	s := NewSubscriptionState()
	if err := s.catchUp(ctx, h, upto, progress); err != nil {
		return nil, fmt.Errorf("replay %s: %w", SubscriptionsName, err)
	}
	return s, nil
}

// OpenSessions returns the sessions and subscriptions open at sequence
// head: the stored read model at its checkpoint, brought up to head with
// the events after it. It reads what is open and what happened since the
// projection's last flush, not the whole log, so a server that closes the
// sessions of its previous run starts as fast with a long log as with a
// short one.
func OpenSessions(ctx context.Context, l *events.Log, head uint64) (*SubscriptionState, error) {
	s, err := LoadSubscriptionState(ctx, l)
	if err != nil {
		return nil, err
	}
	if err := s.catchUp(ctx, l, head, nil); err != nil {
		return nil, fmt.Errorf("open sessions at %d: %w", head, err)
	}
	return s, nil
}

// catchUp applies the membership events after s.Applied up to upto,
// read from h in pages, and leaves s at upto.
func (s *SubscriptionState) catchUp(ctx context.Context, h domain.History, upto uint64, progress func(seq uint64)) error {
	apply := func(ev domain.Event) error { s.Apply(ev); return nil }
	if err := membershipEvents(ctx, h, s.Applied, upto, apply, progress); err != nil {
		return err
	}
	s.Applied = max(s.Applied, upto)
	return nil
}
