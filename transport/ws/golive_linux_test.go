package ws

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
)

func appendMessages(t *testing.T, ts *testServer, channel string, n int, data string) {
	t.Helper()
	for n > 0 {
		k := min(n, 500)
		facts := make([]domain.Fact, k)
		for i := range facts {
			facts[i] = &domain.MessageBroadcast{App: domain.DefaultApp, Channel: channel, Data: json.RawMessage(data)}
		}
		if _, err := ts.log.Append(context.Background(), facts...); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// TestALongReplayOfABusyChannelGoesLive: live messages buffered during a
// long replay, more than the send queue holds, reach a client that keeps
// up, in order, paced as the replay's pages are. Before, they were queued
// at once as the replay ended, and the queue's limit closed the client as
// a slow consumer (4001). The queue is 512 frames here (8192 by default),
// so that a few thousand messages during the replay are enough; up to
// 5,000 are published, 50 to a commit, while the client reads the first
// half of the replay, and none after: a client slower than the publishers
// is a slow consumer once live, rightly.
func TestALongReplayOfABusyChannelGoesLive(t *testing.T) {
	ts := startTestServerConfig(t, Config{SendQueue: 512, ReplayPage: 64}, nil)
	const history = 100000
	appendMessages(t, ts, "busy", history, `1`)
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"busy","offset":0}`)); err != nil {
		t.Fatal(err)
	}
	var read, appended atomic.Int64
	done := make(chan struct{})
	defer func() { read.Store(history); <-done }() // the publisher stops
	go func() {
		defer close(done)
		facts := make([]domain.Fact, 50)
		for read.Load() < history/2 && appended.Load() < 5000 { // far from the 65536 a replay may buffer
			for j := range facts {
				facts[j] = &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "busy", Data: json.RawMessage(`2`)}
			}
			if _, err := ts.log.Append(context.Background(), facts...); err != nil {
				t.Error(err)
				return
			}
			appended.Add(int64(len(facts)))
		}
	}()
	c.ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	for next := int64(1); ; {
		select {
		case <-done:
			if next > history+appended.Load() {
				if n := appended.Load(); n < 1000 {
					t.Skipf("only %d messages came during the replay: the hand-over was not put to the test", n)
				}
				return
			}
		default:
		}
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("after offset %v: %v", next-1, err)
		}
		var f map[string]any
		json.Unmarshal(b, &f)
		switch f["type"] {
		case "disconnect":
			t.Fatalf("after offset %v: %s", next-1, b)
		case "message":
			if f["offset"] != float64(next) {
				t.Fatalf("offset %v after %v", f["offset"], next-1)
			}
			read.Store(next)
			next++
		}
	}
}

// TestAClosingConnectionTakesNoRequests: a kicked client whose socket is
// full stays connected while the server tries to write what was queued
// (up to the write timeout); what it sends meanwhile is not run. Before,
// it could go on subscribing and publishing, each recorded in the log.
func TestAClosingConnectionTakesNoRequests(t *testing.T) {
	ts := startTestServerConfig(t, Config{WriteTimeout: 3 * time.Second, SocketSendBuffer: 4096}, nil)
	c := ts.dial()
	c.subscribe("flood")
	// The client reads nothing from here: its socket fills.
	appendMessages(t, ts, "flood", 300, `"`+strings.Repeat("x", 16<<10)+`"`)
	if _, err := ts.log.Append(context.Background(), &domain.ClientKicked{App: domain.DefaultApp, Client: c.id, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the kick applied", ts.anyClosing)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"after-kick"}`)); err != nil {
		t.Fatal(err)
	}
	// The subscribe would have been read and recorded by now; the end of
	// the connection comes at the write timeout, after it.
	expectEndRecorded(t, ts, c.id, domain.ReasonKicked)
	evs, err := ts.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Channel: "after-kick"})
	if err != nil || len(evs) != 0 {
		t.Fatalf("after the kick: %d events, %v", len(evs), err)
	}
}

// TestAnOffsetPastTheHeadIsAnotherHistory: a resume at an offset past the
// channel's head in its own epoch (a database restored from an older
// copy) gets epoch_changed and the whole retained history: the offsets
// past the head will be given again, to other messages, and a client
// that skipped them as seen would miss those. Without an epoch, the
// offset is taken as the head, as before.
func TestAnOffsetPastTheHeadIsAnotherHistory(t *testing.T) {
	ts := startTestServer(t)
	appendMessages(t, ts, "r", 5, `1`)
	info, err := ts.log.Channel(context.Background(), domain.DefaultApp, "r")
	if err != nil {
		t.Fatal(err)
	}
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"r","offset":9,"epoch":"`+info.Epoch+`"}`)); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("subscribed"); f["epoch_changed"] != true || f["replay"] != float64(5) {
		t.Fatalf("offset 9 of head 5, same epoch: %v", f)
	}
	for want := float64(1); want <= 5; want++ {
		if f := c.expect("message"); f["offset"] != want {
			t.Fatalf("replayed %v, want %v", f["offset"], want)
		}
	}
	d := ts.dial()
	if err := d.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"r","offset":9}`)); err != nil {
		t.Fatal(err)
	}
	if f := d.expect("subscribed"); f["epoch_changed"] != nil || f["replay"] != float64(0) {
		t.Fatalf("offset 9 of head 5, no epoch: %v", f)
	}
}

// TestRetentionTrimsBehindAReplay: while a replay of a channel waits for
// a client that reads slowly, retention trims the messages the replay has
// already read, and none it has yet to send; the client still gets every
// message, in order. Before, a replay pinned its channel's whole history
// until it ended, so a channel that someone was always replaying (a slow
// client, or new subscribers all day) was never trimmed. A replay by
// time holds the whole history until its first page is read.
func TestRetentionTrimsBehindAReplay(t *testing.T) {
	t.Run("offset", func(t *testing.T) { testRetentionTrimsBehindAReplay(t, `"offset":0`) })
	t.Run("since", func(t *testing.T) { testRetentionTrimsBehindAReplay(t, `"since":1`) })
}

func testRetentionTrimsBehindAReplay(t *testing.T, start string) {
	ts := startTestServerConfig(t, Config{SendQueue: 64, ReplayPage: 16, SocketSendBuffer: 4096}, nil)
	const history = 2000
	appendMessages(t, ts, "slow", history, `"`+strings.Repeat("x", 2<<10)+`"`)
	c := ts.dial()
	// The client reads nothing until the trim: its socket fills, and the
	// replay waits for room in the queue.
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"slow",`+start+`}`)); err != nil {
		t.Fatal(err)
	}
	// Once `subscribed` is sent, the replay's start is fixed: a trim
	// before it would rightly show as a truncated replay.
	if f := c.expect("subscribed"); f["first_offset"] != float64(1) || f["replay"] != float64(history) {
		t.Fatalf("subscribed %v", f)
	}
	policy := events.RetentionPolicy{MaxMessages: 10}
	var trimmed int
	waitUntil(t, "retention to trim behind the replay", func() bool {
		n, err := ts.log.TrimChannel(context.Background(), domain.DefaultApp, "slow", policy, time.Now(), 100)
		if err != nil {
			t.Fatal(err)
		}
		trimmed += n
		return trimmed > 0
	})
	info, err := ts.log.Channel(context.Background(), domain.DefaultApp, "slow")
	if err != nil {
		t.Fatal(err)
	}
	if info.First > history/2 {
		t.Fatalf("first retained offset %d: the replay was not waiting (trimmed %d)", info.First, trimmed)
	}
	c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for next := 1; next <= history; {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("after offset %d (first retained %d): %v", next-1, info.First, err)
		}
		var f struct {
			Type   string
			Offset int
		}
		json.Unmarshal(b, &f)
		switch f.Type {
		case "message":
			if f.Offset != next {
				t.Fatalf("offset %d after %d (first retained %d)", f.Offset, next-1, info.First)
			}
			next++
		default:
			t.Fatalf("after offset %d: %s", next-1, b)
		}
	}
	t.Logf("trimmed %d messages behind the replay; first retained %d", trimmed, info.First)
}
