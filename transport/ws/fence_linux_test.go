package ws

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
)

var byAdmin = domain.Actor{Kind: domain.ActorAdmin}

// records are the sequence numbers of a client's events in the log, by
// type: the last of each type, 0 for none.
type records struct{ subscribed, published, kicked, ended uint64 }

// clientRecords returns client's records (published: its last message).
func clientRecords(t *testing.T, ts *testServer, client string) (r records) {
	t.Helper()
	evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		switch ev.Fact.(type) {
		case *domain.ChannelSubscribed:
			r.subscribed = ev.Seq
		case *domain.ClientKicked:
			r.kicked = ev.Seq
		case *domain.ClientDisconnected:
			r.ended = ev.Seq
		}
	}
	msgs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Types: []string{"message.broadcast.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range msgs {
		if ev.Fact.(*domain.MessageBroadcast).Publisher.ID == client {
			r.published = ev.Seq
		}
	}
	return r
}

// A kick of a client whose subscribe is being committed waits for it:
// the subscribe comes before the kick in the log, as the client's every
// record does. Before, the kick went ahead, and the subscribe was
// recorded after it: a presence channel's members saw a kicked client
// join.
func TestAKickFollowsWhatItsClientIsRecording(t *testing.T) {
	store := &heldSubscribe{channel: "late", entered: make(chan struct{}), released: make(chan struct{})}
	ts := startTestServerWith(t, func(l *events.Log) Store { store.Log = l; return store })
	var once sync.Once
	release := func() { once.Do(func() { close(store.released) }) }
	t.Cleanup(release) // before the server's shutdown, should the test fail
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"late"}`)); err != nil {
		t.Fatal(err)
	}
	<-store.entered
	type result struct {
		seq uint64
		err error
	}
	kicked := make(chan result, 1)
	go func() {
		seq, err := domain.Kick(context.Background(), ts.log, ts.members, domain.DefaultApp, c.id, "test", byAdmin)
		kicked <- result{seq, err}
	}()
	select {
	case r := <-kicked:
		t.Fatalf("the kick returned (seq %d, %v) while its client's subscribe was being committed", r.seq, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	r := <-kicked
	if r.err != nil {
		t.Fatal(r.err)
	}
	expectEndRecorded(t, ts, c.id, domain.ReasonKicked)
	if got := clientRecords(t, ts, c.id); got.subscribed == 0 || got.subscribed > got.kicked || got.kicked != r.seq {
		t.Fatalf("subscribe at seq %d, kick at %d (Kick said %d): want the subscribe first", got.subscribed, got.kicked, r.seq)
	}
}

// failingKicks is the real log, but for kicks, whose appends fail as on
// a full disk.
type failingKicks struct{ *events.Log }

func (s failingKicks) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	if _, ok := facts[0].(*domain.ClientKicked); ok {
		return nil, errors.New("disk full")
	}
	return s.Log.Append(ctx, facts...)
}

// A kick that could not be recorded leaves its client as it was: its
// requests are recorded and answered. A kick that is recorded, though
// not yet applied, holds them back: no subscribe or message of the
// client's follows it in the log, and the client is told so
// (unavailable) rather than left without an answer; and a second kick (a
// retry of the first, which was not applied in time) is the first one.
func TestAKickHoldsItsClientsRequestsOnlyOnceRecorded(t *testing.T) {
	t.Run("not recorded", func(t *testing.T) {
		ts := startTestServer(t)
		c := ts.dial()
		if _, err := domain.Kick(context.Background(), failingKicks{ts.log}, ts.members, domain.DefaultApp, c.id, "test", byAdmin); err == nil {
			t.Fatal("a kick whose append failed succeeded")
		}
		c.subscribe("after")
		if got := clientRecords(t, ts, c.id); got.subscribed == 0 || got.kicked != 0 {
			t.Fatalf("subscribe at seq %d, kick at %d: want a subscribe and no kick", got.subscribed, got.kicked)
		}
	})
	t.Run("recorded", func(t *testing.T) {
		ts := startTestServer(t)
		dir := filepath.Join(ts.srv.apps.Dir(), domain.DefaultApp)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "app.json"), []byte(`{"client_publish":true}`), 0o644); err != nil {
			t.Fatal(err)
		}
		c := ts.dial()
		ts.consumer.Stop() // the kick is never applied
		<-ts.consumer.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		seq, err := domain.Kick(ctx, ts.log, ts.members, domain.DefaultApp, c.id, "test", byAdmin)
		if domain.CodeOf(err) != domain.CodeUnavailable || seq == 0 {
			t.Fatalf("a kick not applied in time: seq %d, %v; want it recorded, and unavailable", seq, err)
		}
		for _, f := range []string{
			`{"type":"subscribe","channel":"after","id":"s"}`,
			`{"type":"publish","channel":"after","data":1,"id":"p"}`,
			`{"type":"unsubscribe","channel":"none","id":"u"}`,
		} {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []struct{ id, code string }{{"s", "unavailable"}, {"p", "unavailable"}, {"u", "bad_request"}} {
			if f, _ := untilFrame(t, c, "error"); f["id"] != want.id || f["code"] != want.code {
				t.Fatalf("answer %v, want %s for %s", f, want.code, want.id)
			}
		}
		if got := clientRecords(t, ts, c.id); got.subscribed != 0 || got.published != 0 || got.kicked != seq {
			t.Fatalf("subscribe at seq %d, message at %d, kick at %d: want the kick (%d) alone", got.subscribed, got.published, got.kicked, seq)
		}
		ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		if again, err := domain.Kick(ctx2, ts.log, ts.members, domain.DefaultApp, c.id, "again", byAdmin); again != seq || domain.CodeOf(err) != domain.CodeUnavailable {
			t.Fatalf("a second kick: seq %d, %v; want the first's (%d), still unavailable", again, err, seq)
		}
		if got := clientRecords(t, ts, c.id); got.kicked != seq {
			t.Fatalf("the client's last kick at seq %d, want the first (%d) alone", got.kicked, seq)
		}
	})
}

// A kick of a client whose connection is closing for another reason (a
// slow consumer here), while a subscribe of its is being committed,
// waits for that subscribe, then finds the connection closing: not_found,
// and nothing recorded. Before, the kick was recorded, and closed
// nothing.
func TestAKickOfAClosingConnectionRecordsNothing(t *testing.T) {
	store := &heldSubscribe{channel: "late", entered: make(chan struct{}), released: make(chan struct{})}
	ts := startTestServerWith(t, func(l *events.Log) Store { store.Log = l; return store })
	var once sync.Once
	release := func() { once.Do(func() { close(store.released) }) }
	t.Cleanup(release)
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"late"}`)); err != nil {
		t.Fatal(err)
	}
	<-store.entered
	ts.srv.mu.Lock()
	for sc := range ts.srv.conns {
		sc.Overflow() // closing; attached until its subscribe is done
	}
	ts.srv.mu.Unlock()
	kicked := make(chan error, 1)
	go func() {
		_, err := domain.Kick(context.Background(), ts.log, ts.members, domain.DefaultApp, c.id, "test", byAdmin)
		kicked <- err
	}()
	// Time for the kick to reach the connection, whose subscribe holds
	// it (recorded at once, it would be applied and miss).
	time.Sleep(100 * time.Millisecond)
	release()
	if err := <-kicked; domain.CodeOf(err) != domain.CodeNotFound {
		t.Fatalf("a kick of a closing connection: %v, want not_found", err)
	}
	expectEndRecorded(t, ts, c.id, domain.ReasonSlowConsumer)
	if got := clientRecords(t, ts, c.id); got.kicked != 0 {
		t.Fatalf("a kick recorded at seq %d, want none", got.kicked)
	}
}
