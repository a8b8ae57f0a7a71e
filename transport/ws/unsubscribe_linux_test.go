package ws

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
)

// heldReads is the real log whose history reads wait until released.
type heldReads struct {
	*events.Log
	reading chan struct{} // a read has started
	release chan struct{}
}

func (s *heldReads) Messages(ctx context.Context, app, channel string, q domain.HistoryQuery) ([]domain.Message, error) {
	s.reading <- struct{}{}
	<-s.release
	return s.Log.Messages(context.Background(), app, channel, q)
}

// An unsubscribe during a replay whose page read is still under way: the
// page, once read, is not sent, so `unsubscribed` is the last frame of the
// channel.
func TestUnsubscribeStopsAReplayMidRead(t *testing.T) {
	store := &heldReads{reading: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startTestServerWith(t, func(l *events.Log) Store { store.Log = l; return store })
	for i := 0; i < 3; i++ {
		if _, err := ts.log.Append(context.Background(), &domain.MessageBroadcast{App: domain.DefaultApp, Channel: "room", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	c := ts.dial()
	send := func(s string) {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"type":"subscribe","channel":"room","offset":0}`)
	if s := c.expect("subscribed"); s["replay"] != float64(3) {
		t.Fatalf("subscribed %v", s)
	}
	<-store.reading
	send(`{"type":"unsubscribe","channel":"room"}`)
	c.expect("unsubscribed")
	close(store.release)
	c.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, b, err := c.ws.ReadMessage(); err == nil {
		var f map[string]any
		json.Unmarshal(b, &f)
		if f["type"] != "ping" {
			t.Fatalf("after unsubscribed: %s", b)
		}
	}
}

// commitOnPin is the real log, which commits a message to the channel
// being pinned just before it pins it: after the subscribe noted the
// channel's head, before it counts what to replay.
type commitOnPin struct {
	*events.Log
	t *testing.T
}

func (s *commitOnPin) PinHistory(app, channel string) (func(uint64), func()) {
	if _, err := s.Log.Append(context.Background(), &domain.MessageBroadcast{App: app, Channel: channel, Data: []byte(`"meanwhile"`)}); err != nil {
		s.t.Error(err)
	}
	return s.Log.PinHistory(app, channel)
}

// A subscribe by since to a channel without messages, while its first
// message is committed: `subscribed` announces no replay, and the message
// comes live. Before, a head of 0 was passed on as "no bound" to the
// count, which counted the new message: `subscribed` announced a replay
// of 1 that never came.
func TestSinceOnAnEmptyChannelAnnouncesNoReplay(t *testing.T) {
	ts := startTestServerWith(t, func(l *events.Log) Store { return &commitOnPin{Log: l, t: t} })
	c := ts.dial()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"empty","since":1}`)); err != nil {
		t.Fatal(err)
	}
	if s := c.expect("subscribed"); s["offset"] != float64(0) || s["replay"] != float64(0) {
		t.Fatalf("subscribed %v; want head 0 and no replay", s)
	}
	if m := c.expect("message"); m["offset"] != float64(1) || m["replay"] != nil || m["data"] != "meanwhile" {
		t.Fatalf("message %v; want offset 1, live", m)
	}
}

// floodOnPin is the real log, which commits n messages of size bytes to
// the channel being pinned just before it pins it, and waits for the
// membership to apply them: the subscribe, registered there already,
// buffers them all while it is set up.
type floodOnPin struct {
	*events.Log
	t       *testing.T
	n, size int
	members *projections.Membership
}

func (s *floodOnPin) PinHistory(app, channel string) (func(uint64), func()) {
	data := []byte(`"` + strings.Repeat("x", s.size) + `"`)
	facts := make([]domain.Fact, s.n)
	for i := range facts {
		facts[i] = &domain.MessageBroadcast{App: app, Channel: channel, Data: data}
	}
	evs, err := s.Log.Append(context.Background(), facts...)
	if err == nil {
		err = s.members.WaitApplied(context.Background(), evs[len(evs)-1].Seq)
	}
	if err != nil {
		s.t.Error(err)
	}
	return s.Log.PinHistory(app, channel)
}

// A subscribe without a replay whose setup buffered more live messages
// than a quarter of the send queue hands the rest to a goroutine that
// waits for room, as a replay's pages do; an unsubscribe stops it, so
// `unsubscribed` is the last frame of the channel. Here the client reads
// nothing until it has unsubscribed, so that goroutine is waiting.
func TestUnsubscribeStopsWhatGoingLiveHandedBack(t *testing.T) {
	const n = 200
	store := &floodOnPin{t: t, n: n, size: 16 << 10}
	ts := startTestServerConfig(t, Config{SendQueue: 16, SocketSendBuffer: 4096},
		func(l *events.Log) Store { store.Log = l; return store })
	store.members = ts.members
	c := ts.dialReadBuffer(64 << 10)
	ws := c.ws
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"flood"}`)); err != nil {
		t.Fatal(err)
	}
	if s := c.expect("subscribed"); s["replay"] != float64(0) {
		t.Fatalf("subscribed %v; want no replay", s)
	}
	time.Sleep(100 * time.Millisecond) // the socket fills; the hand-back waits
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"unsubscribe","channel":"flood"}`)); err != nil {
		t.Fatal(err)
	}
	got := 0
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for done := false; !done; {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %.80s: %v", b, err)
		}
		switch f["type"] {
		case "message":
			got++
			if f["offset"] != float64(got) {
				t.Fatalf("message %v after offset %d", f["offset"], got-1)
			}
		case "unsubscribed":
			done = true
		}
	}
	if got >= n {
		t.Skipf("all %d messages came before unsubscribed: the hand-back was not stopped midway", got)
	}
	ws.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			break // nothing more
		}
		if !strings.Contains(string(b), `"type":"ping"`) {
			t.Fatalf("after unsubscribed (and %d of %d messages): %.80s", got, n, b)
		}
	}
}
