package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

// TestConsumerAcksNacksAndStops feeds a handler that fails the second
// event once with an error and the third once with a panic: each is logged
// and delivered again, the handler sees every event in order, and the
// consumer keeps going. Ending its context stops it and closes the
// Subscriber.
func TestConsumerAcksNacksAndStops(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	defer l.Close()
	for i := range 4 {
		if _, err := l.Append(ctx, &domain.ClientConnected{App: "a", Client: fmt.Sprint("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var calls, handled []uint64
	failed := map[uint64]bool{}
	handle := func(msg *message.Message) error {
		ev, err := events.EventOf(msg)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, ev.Seq)
		if (ev.Seq == 2 || ev.Seq == 3) && !failed[ev.Seq] {
			failed[ev.Seq] = true
			if ev.Seq == 2 {
				return errors.New("refused once")
			}
			panic("panicked once")
		}
		handled = append(handled, ev.Seq)
		return nil
	}
	var logged testutil.SyncBuffer
	sub := l.Subscriber(events.SubscriberConfig{NackDelay: time.Millisecond})
	consumeCtx, stop := context.WithCancel(ctx)
	c, err := Consume(consumeCtx, "test.v1", sub, events.Topic, handle, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		got := slices.Clone(handled)
		mu.Unlock()
		if len(got) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %v after 10 s", got)
		}
	}
	stop()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("consumer did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 2, 3, 3, 4}; !slices.Equal(calls, want) {
		t.Fatalf("handler called with %v, want %v", calls, want)
	}
	out := logged.String()
	for _, want := range []string{"handler failed", "refused once", "handler panicked", "panicked once", "handler=test.v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// The consumer closed its Subscriber.
	if _, err := sub.Subscribe(ctx, events.Topic); err == nil {
		t.Error("the Subscriber still subscribes after the consumer stopped")
	}
}

// TestConsumerSaysItIsFailing: while its handler fails an event, over and
// over, the consumer says so, with the error and since its first failure,
// for /healthz; once the handler gets past it, it no longer does.
func TestConsumerSaysItIsFailing(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, filepath.Join(t.TempDir(), "log.db"))
	defer l.Close()
	if _, err := l.Append(ctx, &domain.ClientConnected{App: "a", Client: "c"}); err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	broken.Store(true)
	var tries atomic.Int64
	handle := func(*message.Message) error {
		tries.Add(1)
		if broken.Load() {
			return errors.New("database is locked")
		}
		return nil
	}
	c, err := Consume(ctx, "test.v1", l.Subscriber(events.SubscriberConfig{NackDelay: time.Millisecond}), events.Topic, handle, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Stop(); <-c.Done() }()
	waitUntil(t, "three tries", func() bool { return tries.Load() >= 3 })
	since, ferr := c.Failing()
	if ferr == nil || !strings.Contains(ferr.Error(), "database is locked") || since.IsZero() {
		t.Fatalf("while the handler fails: failing %v since %v", ferr, since)
	}
	n := tries.Load()
	waitUntil(t, "two more tries", func() bool { return tries.Load() >= n+2 })
	if again, _ := c.Failing(); !again.Equal(since) {
		t.Fatalf("the failure's start moved from %v to %v with more failures", since, again)
	}
	broken.Store(false)
	waitUntil(t, "the failure's end", func() bool { _, err := c.Failing(); return err == nil })
}

// waitUntil waits for cond, checked every millisecond, for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// A Subscriber that cannot read the log (an event it cannot decode,
// written by another program) hands the handler nothing to fail on: the
// consumer still says it is failing, with the read's error, for
// /healthz, and says so no more once the reads work again.
func TestConsumerSaysItsReadsFail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := openLog(t, path)
	if _, err := l.Append(ctx, &domain.ClientConnected{App: "a", Client: "c"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO events (seq, uuid, name, app, ts, payload) VALUES (2, 'u', 'no.such.event.v1', 'a', 1, x'00')`); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, path)
	defer l.Close()
	var handled atomic.Int64
	c, err := Consume(ctx, "test.v1", l.Subscriber(events.SubscriberConfig{}), events.Topic,
		func(*message.Message) error { handled.Add(1); return nil }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Stop(); <-c.Done() }()
	waitUntil(t, "the consumer to say it fails", func() bool { _, err := c.Failing(); return err != nil })
	if _, err := c.Failing(); !strings.Contains(err.Error(), "read the log") || !strings.Contains(err.Error(), "no.such.event.v1") {
		t.Fatalf("failing: %v", err)
	}
	if _, err := raw.Exec(`DELETE FROM events WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the failure's end", func() bool { _, err := c.Failing(); return err == nil })
	waitUntil(t, "the event read", func() bool { return handled.Load() == 1 })
}
