package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	jsrt "github.com/fazt-realtime/fazt/transport/js"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// hookServer serves the default app with script as its api/realtime.js,
// over a real log, JS engine and membership projection, whose consumer
// sleeps for lag before it applies an event of type lagged: the
// membership trails the log, as it may under load, by that much.
type hookServer struct {
	t       *testing.T
	log     *events.Log
	members *projections.Membership
	url     string
	appDir  string // the default app's folder, for an app.json
}

func startHookServer(t *testing.T, script string, lagged domain.Fact, lag time.Duration) *hookServer {
	t.Helper()
	return startHookServerConfig(t, ws.Config{}, script, lagged, lag)
}

// startHookServerConfig is startHookServer with the server's Config (its
// Logger is set here).
func startHookServerConfig(t *testing.T, cfg ws.Config, script string, lagged domain.Fact, lag time.Duration) *hookServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	appDir := filepath.Join(dir, "apps", domain.DefaultApp, "api")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(appDir, "realtime.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	log, err := events.Open(ctx, events.Config{Path: filepath.Join(dir, "fazt.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	members := projections.NewMembership(ws.Encoder{}, func(ctx context.Context, app, channel string) (uint64, string, error) {
		info, err := log.Channel(ctx, app, channel)
		return info.Head, info.Epoch, err
	}, 0)
	handle := func(msg *message.Message) error {
		if ev, err := events.EventOf(msg); err == nil && ev.Fact.EventName() == lagged.EventName() {
			time.Sleep(lag)
		}
		return members.Handle(msg)
	}
	consumer, err := projections.Consume(ctx, projections.MembershipName, log.Subscriber(events.SubscriberConfig{}), events.Topic, handle, quiet)
	if err != nil {
		t.Fatal(err)
	}
	registry := apps.NewRegistry(filepath.Join(dir, "apps"))
	cfg.Logger = quiet
	srv := ws.NewServer(cfg, log, members, registry,
		jsrt.New(jsrt.Config{HookTimeout: 10 * time.Second, Logger: quiet}, log, members, registry))
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		hs.Close()
		consumer.Stop()
		<-consumer.Done()
		log.Close()
	})
	return &hookServer{t: t, log: log, members: members, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/_ws", appDir: filepath.Dir(appDir)}
}

// dial connects with query and returns the connection and its client id.
func (s *hookServer) dial(query string) (*websocket.Conn, string) {
	s.t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(s.url+query, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	f := readFrame(s.t, c)
	if f["type"] != "connected" {
		s.t.Fatalf("first frame %v, want connected", f)
	}
	return c, f["client_id"].(string)
}

func readFrame(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

func send(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// untilKicked reads c until it is closed with 4000 (kicked), failing on
// a frame that holds forbidden (an answer the kicked request must not get).
func untilKicked(t *testing.T, c *websocket.Conn, forbidden string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, frame, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, 4000) {
				t.Fatalf("closed with %v, want 4000", err)
			}
			return
		}
		if strings.Contains(string(frame), forbidden) {
			t.Fatalf("the kicked client got %s", frame)
		}
	}
}

// events waits until the log holds an event that done accepts, then
// until the membership has applied the whole log, and returns the app's
// events.
func (s *hookServer) events(done func(domain.Event) bool) []domain.Event {
	s.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		evs, err := s.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp})
		if err != nil {
			s.t.Fatal(err)
		}
		if slices.ContainsFunc(evs, done) {
			if err := s.members.WaitApplied(context.Background(), s.log.Head()); err != nil {
				s.t.Fatal(err)
			}
			return evs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("not in the log within 30s: %v", evs)
		}
	}
}

// slowDisconnect's onDisconnect spins for the milliseconds its client's
// query gives as slow, then broadcasts to "done".
const slowDisconnect = `exports.onDisconnect = function (client, reason) {
  var end = Date.now() + Number(client.query.slow || 0);
  while (Date.now() < end) {}
  fazt.realtime.broadcast("done", { client: client.id });
};`

// leave closes c, whose id is id, and waits for its end to be recorded.
func (s *hookServer) leave(c *websocket.Conn, id string) {
	s.t.Helper()
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	c.Close()
	s.events(func(ev domain.Event) bool {
		d, ok := ev.Fact.(*domain.ClientDisconnected)
		return ok && d.Client == id
	})
}

// admitted dials with query until the server admits the connection
// (refused, it gets a disconnect frame), and reports how many times it was
// refused first, up to tries.
func (s *hookServer) admitted(query string, tries int) (c *websocket.Conn, id string, refused int) {
	s.t.Helper()
	for ; ; refused++ {
		c, _, err := websocket.DefaultDialer.Dial(s.url+query, nil)
		if err != nil {
			s.t.Fatal(err)
		}
		f := readFrame(s.t, c)
		if f["type"] == "connected" {
			s.t.Cleanup(func() { c.Close() })
			return c, f["client_id"].(string), refused
		}
		c.Close()
		if refused == tries {
			s.t.Fatalf("refused %d times: %v", tries+1, f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// done reports whether the onDisconnect of client has broadcast to "done".
func (s *hookServer) done(client string) bool {
	s.t.Helper()
	evs, err := s.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp, Channel: "done"})
	if err != nil {
		s.t.Fatal(err)
	}
	return slices.ContainsFunc(evs, func(ev domain.Event) bool {
		return strings.Contains(string(ev.Fact.(*domain.MessageBroadcast).Data), client)
	})
}

// startOneConnectionServer starts a hookServer with slowDisconnect whose
// app (serverWide: whose server) may have one connection.
func startOneConnectionServer(t *testing.T, serverWide bool) *hookServer {
	t.Helper()
	if serverWide {
		return startHookServerConfig(t, ws.Config{MaxConnections: 1}, slowDisconnect, &domain.ClientDisconnected{}, 0)
	}
	s := startHookServer(t, slowDisconnect, &domain.ClientDisconnected{}, 0)
	if err := os.WriteFile(filepath.Join(s.appDir, "app.json"), []byte(`{"limits":{"max_connections":1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// A connection whose onDisconnect is slow frees its slot without waiting
// for it: with the app's limit at one connection, a client that leaves
// is followed by the next at once, while the hook still runs (and then
// ends). Before, the connection held its socket and its slot until its
// hook was done, so that a mass reconnect (a network blip) met "maximum
// of connections" for as long as the onDisconnects of the ones that left
// took.
func TestASlowOnDisconnectHoldsNoSlot(t *testing.T) {
	s := startOneConnectionServer(t, false)
	a, aID := s.dial("?slow=5000")
	s.leave(a, aID)
	s.admitted("", 100)
	if s.done(aID) {
		t.Fatalf("the next client was admitted only once %s's onDisconnect had ended", aID)
	}
	s.events(func(ev domain.Event) bool { return s.done(aID) })
}

// As many onDisconnect runs wait on their own as the app, and the server,
// may have connections; past that, a connection runs its hook itself and
// holds its slot meanwhile: clients connecting and leaving in a loop
// cannot pile up runs in the app's queue, where its other hooks wait.
// With the app's limit (or the server's) at one connection, a's run
// waits on its own, and b's, the second, holds b's slot: the next client
// is refused until it ends.
func TestOnDisconnectRunsOnTheirOwnAreBounded(t *testing.T) {
	for _, serverWide := range []bool{false, true} {
		t.Run(fmt.Sprint("server-wide=", serverWide), func(t *testing.T) {
			s := startOneConnectionServer(t, serverWide)
			a, aID := s.dial("?slow=8000")
			s.leave(a, aID)
			b, bID, _ := s.admitted("?slow=3000", 100)
			s.leave(b, bID)
			if _, _, refused := s.admitted("", 1000); refused == 0 || !s.done(bID) || s.done(aID) {
				t.Fatalf("the next client refused %d times, b's hook done %v, a's %v; want refused until b's hook ended, a's still running", refused, s.done(bID), s.done(aID))
			}
		})
	}
}

// An onSubscribe hook that kicks its own client and then allows the
// subscription: the kick returns once it is applied, the connection is
// closing then, and the subscription is not recorded. It was, after the
// kick: the log held channel.subscribed.v1 after client.kicked.v1, and
// the presence channel's other members saw the kicked client join (and
// leave). The membership applies the kick late here, as it may under
// load: a kick that returned once committed left the connection open
// when the hook returned.
func TestAHookThatKicksItsOwnClientSubscribesNothing(t *testing.T) {
	s := startHookServer(t, `exports.onSubscribe = function (client, channel) {
  if (client.query.kick === "self") fazt.realtime.kick(client.id, "bye");
  return true;
};`, &domain.ClientKicked{}, 300*time.Millisecond)
	const room = domain.PresencePrefix + "room"

	b, bID := s.dial("")
	send(t, b, `{"type":"subscribe","channel":"`+room+`","id":"b"}`)
	if f := readFrame(t, b); f["type"] != "subscribed" {
		t.Fatalf("b: %v, want subscribed", f)
	}

	a, aID := s.dial("?kick=self")
	send(t, a, `{"type":"subscribe","channel":"`+room+`","id":"a"}`)
	untilKicked(t, a, `"subscribed"`)

	evs := s.events(func(ev domain.Event) bool {
		d, ok := ev.Fact.(*domain.ClientDisconnected)
		return ok && d.Client == aID
	})
	kicked := false
	for _, ev := range evs {
		switch f := ev.Fact.(type) {
		case *domain.ClientKicked:
			kicked = kicked || f.Client == aID
		case *domain.ChannelSubscribed:
			if f.Client == aID {
				t.Errorf("event %d: %s subscribed to %s (kicked before: %v)", ev.Seq, aID, f.Channel, kicked)
			}
		}
	}
	if !kicked {
		t.Fatalf("no client.kicked.v1 of %s in %v", aID, evs)
	}

	// Everything is applied: what b was sent is queued before its pong.
	send(t, b, `{"type":"ping","id":"p"}`)
	for {
		f := readFrame(t, b)
		if f["type"] == "pong" {
			break
		}
		if f["type"] == "presence" && f["client"] == aID {
			t.Errorf("%s (b) got %v", bID, f)
		}
	}
}

// onDisconnect reads the membership after the leaving client's end is
// applied: count() and subscribers() of a channel it was on no longer
// list it, nor count() its connection. The hook ran straight after the
// commit, and the membership, which applies the end late here (as it
// may under load), still had the client.
func TestOnDisconnectNoLongerSeesTheClient(t *testing.T) {
	s := startHookServer(t, `exports.onDisconnect = function (client, reason) {
  fazt.realtime.broadcast("left", {
    client: client.id,
    count: fazt.realtime.count("room"),
    subscribers: fazt.realtime.subscribers("room"),
    connections: fazt.realtime.count(),
  });
};`, &domain.ClientDisconnected{}, 300*time.Millisecond)

	b, bID := s.dial("")
	a, aID := s.dial("")
	for _, c := range []*websocket.Conn{b, a} {
		send(t, c, `{"type":"subscribe","channel":"room"}`)
		if f := readFrame(t, c); f["type"] != "subscribed" {
			t.Fatalf("%v, want subscribed", f)
		}
	}
	a.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	a.Close()

	var told *domain.MessageBroadcast
	s.events(func(ev domain.Event) bool {
		mb, ok := ev.Fact.(*domain.MessageBroadcast)
		if ok && mb.Channel == "left" && strings.Contains(string(mb.Data), aID) {
			told = mb
		}
		return told != nil
	})
	var got struct {
		Count       int      `json:"count"`
		Subscribers []string `json:"subscribers"`
		Connections int      `json:"connections"`
	}
	if err := json.Unmarshal(told.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Count != 1 || !slices.Equal(got.Subscribers, []string{bID}) || got.Connections != 1 {
		t.Fatalf("onDisconnect of %s saw %s; want only %s", aID, told.Data, bID)
	}
}

// So for onPublish: a hook that kicks its own client and returns the
// data broadcasts nothing after the kick.
func TestAnOnPublishThatKicksItsOwnClientPublishesNothing(t *testing.T) {
	s := startHookServer(t, `exports.onPublish = function (client, channel, data) {
  fazt.realtime.kick(client.id, "bye");
  return data;
};`, &domain.ClientKicked{}, 300*time.Millisecond)
	a, aID := s.dial("")
	send(t, a, `{"type":"publish","channel":"room","data":"hi","id":"a"}`)
	untilKicked(t, a, `"published"`)
	evs := s.events(func(ev domain.Event) bool {
		d, ok := ev.Fact.(*domain.ClientDisconnected)
		return ok && d.Client == aID
	})
	noBroadcasts(t, evs, "after the kick")
}

// noBroadcasts fails t for each broadcast among evs, which came when.
func noBroadcasts(t *testing.T, evs []domain.Event, when string) {
	t.Helper()
	for _, ev := range evs {
		if mb, ok := ev.Fact.(*domain.MessageBroadcast); ok {
			t.Errorf("event %d: %s broadcast %s %s", ev.Seq, mb.Publisher.ID, mb.Data, when)
		}
	}
}

// expiringToken gives the app a secret (with more of app.json's fields,
// when more is not empty), and returns a token for private-x that
// expires 4 to 5 s from now (JWT's exp is in whole seconds), and a query
// whose until is 300 ms past that, for a hook to spin until.
func (s *hookServer) expiringToken(more string) (token, query string) {
	s.t.Helper()
	const secret = "a secret of thirty-two bytes or more, for tests"
	settings := `{"secret":"` + secret + `"`
	if more != "" {
		settings += "," + more
	}
	if err := os.WriteFile(filepath.Join(s.appDir, "app.json"), []byte(settings+"}"), 0o644); err != nil {
		s.t.Fatal(err)
	}
	exp := time.Now().Add(5 * time.Second).Unix()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"channel": "private-x", "exp": exp}).SignedString([]byte(secret))
	if err != nil {
		s.t.Fatal(err)
	}
	until := time.Unix(exp, 0).Add(300 * time.Millisecond).UnixMilli()
	return token, "?until=" + strconv.FormatInt(until, 10)
}

// A publish to a private channel whose onPublish hook runs past the
// token's exp is refused, not committed: the token's end is recorded
// only after the request under way, and the publish had been let
// through by the subscription, there before it. The hook here spins
// until 300 ms past exp.
func TestAPublishRunningPastItsTokensExpiryIsRefused(t *testing.T) {
	s := startHookServer(t, `exports.onPublish = function (client, channel, data) {
  const until = Number(client.query.until);
  while (Date.now() < until) {}
  return data;
};`, &domain.ClientKicked{}, 0)
	token, query := s.expiringToken(`"client_publish":true`)
	a, aID := s.dial(query)
	send(t, a, `{"type":"subscribe","channel":"private-x","token":"`+token+`","id":"s"}`)
	if f := readFrame(t, a); f["type"] != "subscribed" {
		t.Fatalf("%v, want subscribed", f)
	}
	send(t, a, `{"type":"publish","channel":"private-x","data":"late","id":"p"}`)
	var refused, ended bool
	for !refused || !ended {
		f := readFrame(t, a)
		switch {
		case f["type"] == "error" && f["id"] == "p":
			if f["code"] != "not_allowed" || !strings.Contains(fmt.Sprint(f["error"]), "has expired") {
				t.Fatalf("publish: %v, want not_allowed, expired", f)
			}
			refused = true
		case f["type"] == "unsubscribed" && f["reason"] == "token_expired":
			ended = true
		case f["type"] == "published" || f["type"] == "message":
			t.Fatalf("got %v: the publish went through past the token's expiry", f)
		}
	}
	evs := s.events(func(ev domain.Event) bool {
		u, ok := ev.Fact.(*domain.ChannelUnsubscribed)
		return ok && u.Client == aID
	})
	noBroadcasts(t, evs, "past the token's expiry")
}

// So for a subscribe whose onSubscribe hook runs past its token's exp:
// it is refused (unavailable: the hook made it late, not the client), and
// no subscription is recorded (it was, and then
// ended at once by its expiry's timer).
func TestASubscribeRunningPastItsTokensExpiryIsRefused(t *testing.T) {
	s := startHookServer(t, `exports.onSubscribe = function (client, channel) {
  const until = Number(client.query.until);
  while (Date.now() < until) {}
  return true;
};`, &domain.ClientKicked{}, 0)
	token, query := s.expiringToken("")
	a, aID := s.dial(query)
	send(t, a, `{"type":"subscribe","channel":"private-x","token":"`+token+`","id":"s"}`)
	// unavailable: a client tries again, with a fresh token.
	if f := readFrame(t, a); f["type"] != "error" || f["code"] != "unavailable" || !strings.Contains(fmt.Sprint(f["error"]), "has expired") {
		t.Fatalf("%v, want unavailable, expired", f)
	}
	send(t, a, `{"type":"ping","id":"p"}`)
	if f := readFrame(t, a); f["type"] != "pong" {
		t.Fatalf("%v, want pong", f)
	}
	evs, err := s.log.Events(context.Background(), domain.AuditQuery{App: domain.DefaultApp})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if sub, ok := ev.Fact.(*domain.ChannelSubscribed); ok && sub.Client == aID {
			t.Errorf("event %d: %s subscribed to %s with an expired token", ev.Seq, aID, sub.Channel)
		}
	}
}

// A kick's wait for its event to be applied ends before the hook's own
// time limit: with the membership 6 s behind and a limit of 3 s, the
// kick throws unavailable in time for the hook to answer, rather than
// the hook being cut off as past its limit (which refuses for good).
func TestAKickInAHookWaitsNoLongerThanTheHooksLimit(t *testing.T) {
	s := startHookServer(t, `exports.onSubscribe = function (client, channel) {
  try {
    fazt.realtime.kick(client.id, "bye");
  } catch (e) {
    throw new Error("kick pending: " + e.code);
  }
  return true;
};`, &domain.ClientKicked{}, 6*time.Second)
	if err := os.WriteFile(filepath.Join(s.appDir, "app.json"), []byte(`{"js":{"hook_timeout_ms":3000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := s.dial("")
	send(t, a, `{"type":"subscribe","channel":"room","id":"s"}`)
	f := readFrame(t, a)
	if f["type"] != "error" || !strings.Contains(fmt.Sprint(f["error"]), "kick pending: unavailable") {
		t.Fatalf("%v, want the hook's own error, the kick unavailable", f)
	}
}

// A request to /_ws that is not a WebSocket upgrade is refused with a JSON
// error before anything of the app runs: its onConnect (which broadcasts
// here) does not run, and no slot is taken. Before, onConnect ran for each
// such request, for a connection that could never be, and the upgrader
// answered in plain text.
func TestANonUpgradeRunsNoOnConnect(t *testing.T) {
	s := startHookServer(t, `exports.onConnect = function (client) { fazt.realtime.broadcast("connects", {id: client.id}); };`, &domain.ClientConnected{}, 0)
	httpURL := "http" + strings.TrimPrefix(s.url, "ws")
	upgrade := http.Header{}
	upgrade.Set("Connection", "Upgrade")
	upgrade.Set("Upgrade", "websocket")
	upgrade.Set("Sec-WebSocket-Version", "13")
	upgrade.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	without := func(name, value string) http.Header {
		h := upgrade.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		method string
		header http.Header
		status int
		code   string
	}{
		{"a plain GET", "GET", nil, 400, "bad_request"},
		{"a POST", "POST", upgrade, 405, "method_not_allowed"},
		{"no Upgrade", "GET", without("Upgrade", ""), 400, "bad_request"},
		{"version 8", "GET", without("Sec-WebSocket-Version", "8"), 400, "bad_request"},
		{"no key", "GET", without("Sec-WebSocket-Key", ""), 400, "bad_request"},
		{"a short key", "GET", without("Sec-WebSocket-Key", "c2hvcnQ="), 400, "bad_request"},
	} {
		req, err := http.NewRequest(tc.method, httpURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(req.Header, tc.header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error, Code string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || body.Code != tc.code || body.Error == "" {
			t.Errorf("%s: %d %+v (%v), want %d %s", tc.name, resp.StatusCode, body, err, tc.status, tc.code)
		}
		if tc.method == "POST" && resp.Header.Get("Allow") != "GET" {
			t.Errorf("%s: Allow %q, want GET", tc.name, resp.Header.Get("Allow"))
		}
		// The version the server takes, told when the version is refused
		// (RFC 6455, 4.4), not when something else is.
		if v, want := resp.Header.Get("Sec-WebSocket-Version"), map[bool]string{true: "13"}[tc.name == "version 8"]; v != want {
			t.Errorf("%s: Sec-WebSocket-Version %q, want %q", tc.name, v, want)
		}
	}
	// A real connection runs it, once (before its upgrade is answered:
	// the broadcast is committed by then).
	_, id := s.dial("")
	if n := broadcastsTo(t, s, "connects"); n != 1 {
		t.Fatalf("%d onConnect broadcasts after one connection (%s), want 1", n, id)
	}
}

// broadcastsTo counts the broadcasts to channel in s's log.
func broadcastsTo(t *testing.T, s *hookServer, channel string) int {
	t.Helper()
	info, err := s.log.Channel(context.Background(), domain.DefaultApp, channel)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.Head)
}
