package ws

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
)

// failingStore is the real log with failures switched on by the test: a
// channel read, or the append of an unsubscribe.
type failingStore struct {
	*events.Log
	failChannel     atomic.Bool
	failUnsubscribe atomic.Bool
	failEnds        atomic.Int32 // the next appends of sessions' ends that fail
	endTries        atomic.Int32 // appends with sessions' ends in them
	endsWritten     atomic.Int32 // ... that the log took
	mostRefused     atomic.Int32 // the most ends in one refused append
}

func (s *failingStore) Channel(ctx context.Context, app, channel string) (domain.ChannelInfo, error) {
	if s.failChannel.Swap(false) {
		return domain.ChannelInfo{}, errors.New("read channel: disk I/O error")
	}
	return s.Log.Channel(ctx, app, channel)
}

func (s *failingStore) Append(ctx context.Context, facts ...domain.Fact) ([]domain.Event, error) {
	for _, f := range facts {
		if _, ok := f.(*domain.ChannelUnsubscribed); ok && s.failUnsubscribe.Load() {
			return nil, domain.Errorf(domain.CodeUnavailable, "the event log cannot commit")
		}
	}
	var ends []string
	for _, f := range facts {
		if e, ok := f.(*domain.ClientDisconnected); ok {
			ends = append(ends, e.Client)
		}
	}
	if len(ends) > 0 {
		s.endTries.Add(1)
		if s.failEnds.Add(-1) >= 0 {
			// Connections' first tries and the retry goroutine refuse
			// concurrently: the most is kept by compare-and-swap.
			for m := s.mostRefused.Load(); int32(len(ends)) > m && !s.mostRefused.CompareAndSwap(m, int32(len(ends))); m = s.mostRefused.Load() {
			}
			return nil, domain.Errorf(domain.CodeUnavailable, "the event log cannot commit: database or disk is full")
		}
		s.endsWritten.Add(1)
	}
	return s.Log.Append(ctx, facts...)
}

// expectUnsettled checks what a client gets when its subscription state is
// lost: the error for its request, then a disconnect frame and a close,
// both 1011; the log records the end as server_error, and the membership
// no longer lists it on the channel.
func expectUnsettled(t *testing.T, ts *testServer, c *testClient, code string) {
	t.Helper()
	if e := c.expect("error"); e["code"] != code {
		t.Fatalf("error frame %v, want code %s", e, code)
	}
	if d := c.expect("disconnect"); d["code"] != float64(websocket.CloseInternalServerErr) {
		t.Fatalf("disconnect frame %v, want code 1011", d)
	}
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr {
		t.Fatalf("after the disconnect frame: %v, want close 1011", err)
	}
	waitUntil(t, "the end recorded and applied", func() bool {
		evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: c.id, Types: []string{domain.NameClientDisconnected}})
		if err != nil || len(evs) != 1 {
			return false
		}
		if r := evs[0].Fact.(*domain.ClientDisconnected).Reason; r != domain.ReasonServerError {
			t.Fatalf("disconnection reason %s, want server_error", r)
		}
		return len(ts.members.Subscribers(domain.DefaultApp, "room")) == 0
	})
}

// A subscribe that fails after its event was committed (here, reading the
// channel's retention state) must not leave the membership holding a
// subscription the connection has dropped: it would buffer the channel's
// frames for ever and close the connection as a slow consumer.
func TestSubscribeFailingAfterItsCommitClosesTheConnection(t *testing.T) {
	var fs *failingStore
	ts := startTestServerWith(t, func(l *events.Log) Store { fs = &failingStore{Log: l}; return fs })
	if _, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "room", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	c := ts.dial()
	fs.failChannel.Store(true)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"room","offset":0,"id":1}`)); err != nil {
		t.Fatal(err)
	}
	expectUnsettled(t, ts, c, string(domain.CodeInternal))
}

// An unsubscribe whose event cannot be written has already let go of the
// channel on the connection; the connection is closed so that its end
// settles the membership, rather than leave a subscription that the
// client can neither use nor leave.
func TestUnsubscribeThatCannotBeRecordedClosesTheConnection(t *testing.T) {
	var fs *failingStore
	ts := startTestServerWith(t, func(l *events.Log) Store { fs = &failingStore{Log: l}; return fs })
	c := ts.dial()
	c.subscribe("room")
	fs.failUnsubscribe.Store(true)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"unsubscribe","channel":"room","id":2}`)); err != nil {
		t.Fatal(err)
	}
	expectUnsettled(t, ts, c, string(domain.CodeUnavailable))
}

// A session's end that cannot be written (a full disk) is written when the
// log takes it again: until then the client is listed as subscribed (and
// counted, and a presence member), as the log says; before, it stayed so
// until the next start.
func TestASessionsEndIsWrittenOnceTheLogTakesIt(t *testing.T) {
	ts, fs := startRetryingServer(t)
	c := ts.dial()
	c.subscribe("room")
	fs.failEnds.Store(3)
	c.ws.Close()
	waitUntil(t, "the end recorded and applied", func() bool {
		evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: c.id, Types: []string{domain.NameClientDisconnected}})
		return err == nil && len(evs) == 1 && len(ts.members.Subscribers(domain.DefaultApp, "room")) == 0
	})
	if n := fs.endTries.Load(); n != 4 {
		t.Errorf("%d tries, want 4", n)
	}
}

// One that the log never takes gets one last try at shutdown, which
// then returns, leaving the session open in the log: the next start
// closes it (server_restart; TestRestartKeepsHistoryAndClosesSessions).
func TestShutdownLeavesAnEndTheLogWillNotTake(t *testing.T) {
	ts, fs := startRetryingServer(t)
	endRetryFirst, endRetryMost = time.Hour, time.Hour // no retry but the last
	c := ts.dial()
	fs.failEnds.Store(1 << 30)
	c.ws.Close()
	waitUntil(t, "the end refused", func() bool { return fs.endTries.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := fs.endTries.Load(); n != 2 {
		t.Errorf("%d tries of the end, want 2: recordEnd's and the shutdown's last", n)
	}
	evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: c.id, Types: []string{domain.NameClientDisconnected}})
	if err != nil || len(evs) != 0 {
		t.Fatalf("the refused end: %d events, %v; want none written", len(evs), err)
	}
}

// TestEndsTheLogWouldNotTakeAreWrittenTogether: the ends of many sessions
// that the log refused are written again by one goroutine, in one append,
// not by a goroutine each, whose appends would add to the load of a log
// already failing.
func TestEndsTheLogWouldNotTakeAreWrittenTogether(t *testing.T) {
	ts, fs := startRetryingServer(t)
	const n = 20
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.dial()
		clients[i].subscribe("room")
	}
	fs.failEnds.Store(1 << 30)
	for _, c := range clients {
		c.ws.Close()
	}
	// Once an append of all n was refused, they are all queued together.
	waitUntil(t, "every end refused in one append", func() bool { return fs.mostRefused.Load() == n })
	fs.failEnds.Store(0)
	waitUntil(t, "the ends recorded and applied", func() bool {
		evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Types: []string{domain.NameClientDisconnected}})
		return err == nil && len(evs) == n && len(ts.members.Subscribers(domain.DefaultApp, "room")) == 0
	})
	// One append; a goroutine each made n.
	if w := fs.endsWritten.Load(); w != 1 {
		t.Errorf("the %d ends went in %d appends, want 1", n, w)
	}
}

// startRetryingServer starts a server on a failingStore whose refused
// sessions' ends are tried again every few milliseconds.
func startRetryingServer(t *testing.T) (*testServer, *failingStore) {
	t.Helper()
	first, most := endRetryFirst, endRetryMost
	t.Cleanup(func() { endRetryFirst, endRetryMost = first, most })
	endRetryFirst, endRetryMost = time.Millisecond, 20*time.Millisecond
	var fs *failingStore
	ts := startTestServerWith(t, func(l *events.Log) Store { fs = &failingStore{Log: l}; return fs })
	return ts, fs
}

// TestShutdownTriesTheEndsOnceMore: ends still queued when the shutdown
// begins get one last try, as the ends of the connections the shutdown
// closes do: the log may take them by then. (Retries are an hour apart
// here, so only that last try can write it.)
func TestShutdownTriesTheEndsOnceMore(t *testing.T) {
	ts, fs := startRetryingServer(t)
	endRetryFirst, endRetryMost = time.Hour, time.Hour
	c := ts.dial()
	fs.failEnds.Store(1)
	c.ws.Close()
	waitUntil(t, "the end refused", func() bool { return fs.endTries.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Client: c.id, Types: []string{domain.NameClientDisconnected}})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d ends recorded, %v; want the one the last try wrote", len(evs), err)
	}
}
