package projections

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

func openLog(t *testing.T, path string) *events.Log {
	t.Helper()
	l, err := events.Open(context.Background(), events.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func storedKeys(t *testing.T, l *events.Log) (sessions, subs []string) {
	t.Helper()
	s, err := LoadSubscriptionState(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.SessionList() {
		sessions = append(sessions, r.Client)
	}
	for _, r := range s.SubscriptionList() {
		subs = append(subs, r.Client+"@"+r.Channel)
	}
	return sessions, subs
}

// runProjection follows the log with p through a Consumer, from p's
// checkpoint, as the server does; the returned func stops it.
func runProjection(t *testing.T, l *events.Log, p *Subscriptions) func() {
	t.Helper()
	c, err := Consume(context.Background(), SubscriptionsName, l.Subscriber(events.SubscriberConfig{After: p.Applied(), Names: p.Events()}), events.Topic, p.Handle, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		p.Run(ctx, 10*time.Millisecond, func(err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}()
	return func() { c.Stop(); <-c.Done(); cancel(); <-flushed }
}

func waitApplied(t *testing.T, p *Subscriptions, seq uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.Applied() < seq; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("projection at %d, want %d", p.Applied(), seq)
		}
	}
}

func TestSubscriptionsResumeFromCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := openLog(t, path)
	p, err := OpenSubscriptions(ctx, l)
	if err != nil || p.Applied() != 0 {
		t.Fatalf("fresh projection: %v, applied %d", err, p.Applied())
	}
	stop := runProjection(t, l, p)
	evs, err := l.Append(ctx,
		&domain.ClientConnected{App: "a", Client: "c1"},
		&domain.ChannelSubscribed{App: "a", Channel: "x", Client: "c1"},
		&domain.MessageBroadcast{App: "a", Channel: "x", Data: []byte(`1`)},
		&domain.ClientConnected{App: "a", Client: "c2"},
		&domain.ChannelSubscribed{App: "a", Channel: "x", Client: "c2"},
		&domain.ChannelSubscribed{App: "a", Channel: "y", Client: "c2"},
		&domain.ChannelUnsubscribed{App: "a", Channel: "x", Client: "c2"},
		&domain.ClientConnected{App: "a", Client: "c3"},
		&domain.ChannelSubscribed{App: "a", Channel: "x", Client: "c3"},
		&domain.ClientDisconnected{App: "a", Client: "c3", Reason: domain.ReasonClientClosed},
	)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1].Seq
	waitApplied(t, p, last)
	stop()
	sessions, subs := storedKeys(t, l)
	if !slices.Equal(sessions, []string{"c1", "c2"}) || !slices.Equal(subs, []string{"c1@x", "c2@y"}) {
		t.Fatalf("stored sessions %v subscriptions %v", sessions, subs)
	}
	// The replay from 0 computes the same model.
	replayed, err := Replay(ctx, l, last, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := LoadSubscriptionState(ctx, l)
	if stored.Applied != last || !slices.Equal(replayed.SubscriptionList(), stored.SubscriptionList()) || !slices.Equal(replayed.SessionList(), stored.SessionList()) {
		t.Fatalf("replay %v %v, stored %v %v at %d", replayed.SessionList(), replayed.SubscriptionList(), stored.SessionList(), stored.SubscriptionList(), stored.Applied)
	}
	l.Close()

	// Reopened, the projection starts at its checkpoint: with its rows
	// wiped (and the checkpoint kept) the old events are not applied again,
	// while new ones are.
	l = openLog(t, path)
	defer l.Close()
	if err := l.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM sessions; DELETE FROM subscriptions`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p, err = OpenSubscriptions(ctx, l)
	if err != nil || p.Applied() != last {
		t.Fatalf("reopened projection: %v, applied %d, want %d", err, p.Applied(), last)
	}
	stop = runProjection(t, l, p)
	defer stop()
	evs, err = l.Append(ctx, &domain.ChannelSubscribed{App: "a", Channel: "z", Client: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, p, evs[0].Seq)
	sessions, subs = storedKeys(t, l)
	if !slices.Equal(sessions, []string{"c1"}) || !slices.Equal(subs, []string{"c1@z"}) {
		t.Fatalf("after resuming: sessions %v subscriptions %v; want only what followed the checkpoint", sessions, subs)
	}
}

// TestFlushStatementsSearchTheWholeKey checks SQLite's plan for each
// statement a flush runs: every search must use all the columns its WHERE
// clause gives, so that a disconnect deletes its session's subscriptions
// without reading every other subscription of the app.
func TestFlushStatementsSearchTheWholeKey(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	defer l.Close()
	ctx := context.Background()
	for _, q := range flushStatements {
		where := strings.Index(q, " WHERE ")
		if where < 0 {
			continue // an insert: no search to plan
		}
		want := strings.Count(q[where:], " = ?")
		args := make([]any, strings.Count(q, "?"))
		for i := range args {
			args[i] = "x"
		}
		var plan []string
		err := l.ReadTx(ctx, func(tx *sql.Tx) (err error) {
			plan, err = testutil.QueryPlan(ctx, tx, q, args...)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(plan) != 1 || !strings.HasPrefix(plan[0], "SEARCH ") || strings.Count(plan[0], "=?") != want {
			t.Errorf("%s:\n\tplan %q, want one search by %d columns", q, plan, want)
		}
	}
}

// TestOpenSessionsCatchesUpFromTheCheckpoint has the stored read model
// stop part-way, as a crash between two flushes leaves it: the sessions
// open at the head are the stored ones brought forward with the events
// after the checkpoint, the same as a replay of the whole log.
func TestOpenSessionsCatchesUpFromTheCheckpoint(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	defer l.Close()
	ctx := context.Background()
	p, err := OpenSubscriptions(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := l.Append(ctx,
		&domain.ClientConnected{App: "app", Client: "a"},
		&domain.ChannelSubscribed{App: "app", Channel: "room", Client: "a"},
		&domain.ClientConnected{App: "app", Client: "b"},
		&domain.ChannelSubscribed{App: "app", Channel: "room", Client: "b"},
		&domain.ClientConnected{App: "other", Client: "a"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range stored {
		if err := p.Apply(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Not applied to the projection: the crash came first.
	if _, err := l.Append(ctx,
		&domain.ClientDisconnected{App: "app", Client: "b", Reason: "client"},
		&domain.ChannelUnsubscribed{App: "app", Channel: "room", Client: "a"},
		&domain.ClientConnected{App: "app", Client: "c"},
		&domain.ChannelSubscribed{App: "app", Channel: "lobby", Client: "c"},
		&domain.MessageBroadcast{App: "app", Channel: "lobby", Data: []byte(`{}`)},
	); err != nil {
		t.Fatal(err)
	}
	head := l.Head()
	if p.Applied() >= head {
		t.Fatalf("checkpoint %d, head %d: nothing to catch up", p.Applied(), head)
	}
	got, err := OpenSessions(ctx, l, head)
	if err != nil {
		t.Fatal(err)
	}
	var sessions, subs []string
	for _, r := range got.SessionList() {
		sessions = append(sessions, r.App+"/"+r.Client)
	}
	for _, r := range got.SubscriptionList() {
		subs = append(subs, r.App+"/"+r.Client+"@"+r.Channel)
	}
	if want := []string{"app/a", "app/c", "other/a"}; !slices.Equal(sessions, want) || got.Applied != head {
		t.Errorf("sessions %v at %d, want %v at %d", sessions, got.Applied, want, head)
	}
	if want := []string{"app/c@lobby"}; !slices.Equal(subs, want) {
		t.Errorf("subscriptions %v, want %v", subs, want)
	}
	replayed, err := Replay(ctx, l, head, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.SessionList(), replayed.SessionList()) || !slices.Equal(got.SubscriptionList(), replayed.SubscriptionList()) {
		t.Errorf("open sessions differ from a replay of the log:\n%v %v\n%v %v",
			got.SessionList(), got.SubscriptionList(), replayed.SessionList(), replayed.SubscriptionList())
	}
}

// While every flush fails (here, its table renamed away), the queue of
// changes stays bounded: once it is full, an event is refused (and, its
// error nacking it, comes again) rather than queued. Once a flush works,
// the events come in again and are stored.
func TestAFailingFlushHoldsEventsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := openLog(t, path)
	defer l.Close()
	p, err := OpenSubscriptions(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	p.maxQueue = 4
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`ALTER TABLE subscriptions RENAME TO subscriptions_away`); err != nil {
		t.Fatal(err)
	}
	ev := func(seq uint64) domain.Event {
		return domain.Event{Seq: seq, Fact: &domain.ChannelSubscribed{App: "a", Channel: fmt.Sprint("ch", seq), Client: "c1"}}
	}
	refused := 0
	for seq := uint64(1); seq <= 100; seq++ {
		if p.Apply(ctx, ev(seq)) != nil {
			refused++
		}
	}
	if n := len(p.queue); n > p.maxQueue || refused < 90 {
		t.Fatalf("with every flush failing: %d changes queued, %d of 100 events refused", n, refused)
	}
	if _, err := raw.Exec(`ALTER TABLE subscriptions_away RENAME TO subscriptions`); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 100; seq++ {
		if err := p.Apply(ctx, ev(seq)); err != nil {
			t.Fatalf("event %d once the table is back: %v", seq, err)
		}
	}
	if err := p.Flush(ctx); err != nil || p.Applied() != 100 {
		t.Fatalf("flush: %v; applied %d", err, p.Applied())
	}
	if _, subs := storedKeys(t, l); len(subs) != 100 {
		t.Fatalf("%d subscriptions stored, want 100", len(subs))
	}
}
