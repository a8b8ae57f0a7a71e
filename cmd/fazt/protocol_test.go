package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestBadFrames sends every kind of bad request and checks its error code,
// the echoed id, and that the connection keeps working afterwards.
func TestBadFrames(t *testing.T) {
	tn := startTestNode(t, map[string]string{"tight": `{"limits":{"max_subscriptions":2,"max_message_bytes":1024}}`})
	c := tn.dial("tight", "")
	big := strings.Repeat("x", 2000)
	cases := []struct {
		name  string
		frame string
		code  string
		id    any
	}{
		{"malformed JSON", `{"type":"subscribe",`, "bad_request", nil},
		{"not an object", `[1,2]`, "bad_request", nil},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, "bad_request", nil},
		{"no type", `{"id":1}`, "bad_request", 1.0},
		{"unknown type", `{"type":"dance","id":"a"}`, "unknown_type", "a"},
		{"bad id", `{"type":"ping","id":{"x":1}}`, "bad_request", nil},
		{"empty channel", `{"type":"subscribe","channel":"","id":2}`, "invalid_channel", 2.0},
		{"bad channel chars", `{"type":"subscribe","channel":"a b","id":3}`, "invalid_channel", 3.0},
		{"long channel", `{"type":"subscribe","channel":"` + strings.Repeat("c", 256) + `","id":4}`, "invalid_channel", 4.0},
		{"two starts", `{"type":"subscribe","channel":"a","offset":1,"last":2,"id":5}`, "bad_request", 5.0},
		{"negative offset", `{"type":"subscribe","channel":"a","offset":-1,"id":6}`, "bad_request", 6.0},
		{"offset not a number", `{"type":"subscribe","channel":"a","offset":"x","id":7}`, "bad_request", 7.0},
		{"long epoch", `{"type":"subscribe","channel":"a","last":1,"epoch":"` + strings.Repeat("e", 65) + `","id":14}`, "bad_request", 14.0},
		{"too large", `{"type":"publish","channel":"a","data":"` + big + `","id":8}`, "too_large", 8.0},
		{"publish not allowed", `{"type":"publish","channel":"a","data":1,"id":9}`, "not_allowed", 9.0},
		{"publish without data", `{"type":"publish","channel":"a","id":10}`, "bad_request", 10.0},
		{"publish null data", `{"type":"publish","channel":"a","data":null,"id":13}`, "bad_request", 13.0},
		{"unsubscribe not subscribed", `{"type":"unsubscribe","channel":"a","id":11}`, "bad_request", 11.0},
		{"members of a plain channel", `{"type":"members","channel":"a","id":12}`, "bad_request", 12.0},
	}
	for _, tc := range cases {
		c.send(tc.frame)
		e := c.expect("error")
		if e.str("code") != tc.code || e.str("error") == "" || e["id"] != tc.id {
			t.Errorf("%s: got %v, want code %s id %v", tc.name, e, tc.code, tc.id)
		}
	}
	// A frame that is JSON but no request the server takes (a field of
	// the wrong kind, no type, too deep) has its error name the channel it
	// named, as a request that was read does; one whose channel is no
	// string names none.
	for _, tc := range []struct {
		frame   string
		id      any
		channel any
	}{
		{`{"type":"subscribe","channel":"room","offset":"5","id":30}`, 30.0, "room"},
		{`{"channel":"room","id":31}`, 31.0, "room"},
		{`{"type":"publish","channel":"room","data":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"id":32}`, 32.0, "room"},
		{`{"type":"subscribe","channel":5,"offset":"x","id":33}`, 33.0, nil},
	} {
		c.send(tc.frame)
		if e := c.expect("error"); e.str("code") != "bad_request" || e["id"] != tc.id || e["channel"] != tc.channel {
			t.Errorf("%s: got %v, want bad_request naming id %v and channel %v", tc.frame, e, tc.id, tc.channel)
		}
	}
	// A binary frame is refused the same way.
	c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	if e := c.expect("error"); e.str("code") != "bad_request" {
		t.Errorf("binary frame: %v", e)
	}
	// Subscription limit: the third is refused, and a duplicate too.
	c.subscribe(map[string]any{"channel": "one"})
	c.subscribe(map[string]any{"channel": "two"})
	c.send(`{"type":"subscribe","channel":"one","id":20}`)
	if e := c.expect("error"); e.str("code") != "bad_request" {
		t.Errorf("duplicate subscribe: %v", e)
	}
	c.send(`{"type":"subscribe","channel":"three","id":21}`)
	if e := c.expect("error"); e.str("code") != "too_many_subscriptions" {
		t.Errorf("third subscribe: %v", e)
	}
	// The connection still works: ping, and a message on a subscribed channel.
	c.send(`{"type":"ping","id":99}`)
	if p := c.expect("pong"); p["id"] != 99.0 {
		t.Errorf("pong %v", p)
	}
	tn.publish("tight", "one", "hello")
	if m := c.messages("one", 1)[0]; m["data"] != "hello" || m.num("offset") != 1 {
		t.Errorf("message after errors: %v", m)
	}
	// Unsubscribe frees a slot.
	c.send(`{"type":"unsubscribe","channel":"two","id":30}`)
	if u := c.expect("unsubscribed"); u.str("channel") != "two" || u["id"] != 30.0 {
		t.Errorf("unsubscribed %v", u)
	}
	c.subscribe(map[string]any{"channel": "three"})
	// A frame far past the limit ends the connection with 1009: the
	// disconnect frame says so, then the close frame.
	refused := tn.refusals("message_size")
	c.send(`{"type":"ping","pad":"` + strings.Repeat("y", 8000) + `"}`)
	if d := c.expect("disconnect"); d.num("code") != websocket.CloseMessageTooBig {
		t.Errorf("huge frame: disconnect %v, want code 1009", d)
	}
	if ce := c.waitClosed(); ce == nil || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("huge frame: close %v, want 1009", ce)
	}
	if n := tn.refusals("message_size") - refused; n != 1 {
		t.Errorf("huge frame: %v refusals counted in /metrics, want 1", n)
	}
}

func TestClientPublishAndPresence(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": `{"client_publish":true}`})
	a := tn.dial("chat", "")
	b := tn.dial("chat", "")
	a.subscribe(map[string]any{"channel": "presence-room"})
	b.subscribe(map[string]any{"channel": "presence-room"})
	if j := a.expect("presence"); j.str("event") != "join" || j.str("client") != b.id {
		t.Fatalf("presence %v", j)
	}
	a.send(`{"type":"members","channel":"presence-room","id":1}`)
	m := a.expect("members")
	got := fmt.Sprint(m["members"])
	want := fmt.Sprint([]any{min(a.id, b.id), max(a.id, b.id)})
	if got != want {
		t.Fatalf("members %s, want %s", got, want)
	}
	b.send(`{"type":"publish","channel":"presence-room","data":{"text":"hi"},"id":"p1"}`)
	// The publisher is a subscriber too: it gets the reply and the message,
	// in either order.
	for _, f := range []frame{b.next(), b.next()} {
		switch f.str("type") {
		case "published":
			if f.num("offset") != 1 || f["id"] != "p1" {
				t.Fatalf("published %v", f)
			}
		case "message":
		default:
			t.Fatalf("publisher got %v", f)
		}
	}
	if msg := a.messages("presence-room", 1)[0]; msg["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("message %v", msg)
	}
	b.conn.Close()
	if l := a.expect("presence"); l.str("event") != "leave" || l.str("client") != b.id {
		t.Fatalf("presence %v", l)
	}
	// The audit names the client as publisher.
	au := tn.audit("chat", "type=broadcast")
	if len(au.Events) != 1 || au.Events[0].Client != b.id || au.Events[0].Event["publisher"].(map[string]any)["kind"] != "client" {
		t.Fatalf("audit %+v", au.Events)
	}
}

func TestAppIsolation(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": "", "games": ""})
	chat := tn.dial("chat", "")
	games := tn.dial("games", "")
	def := tn.dial("", "")
	for _, c := range []*client{chat, games, def} {
		c.subscribe(map[string]any{"channel": "lobby"})
	}
	tn.publish("chat", "lobby", "for chat")
	tn.publish("games", "lobby", "for games")
	if m := chat.messages("lobby", 1)[0]; m["data"] != "for chat" || m.num("offset") != 1 {
		t.Fatalf("chat got %v", m)
	}
	if m := games.messages("lobby", 1)[0]; m["data"] != "for games" || m.num("offset") != 1 {
		t.Fatalf("games got %v", m)
	}
	def.quiet(100e6)
	// History and audit are per app.
	var h struct{ Messages []map[string]any }
	tn.api("games", testAdminKey, "GET", "/_api/channels/lobby/history", nil, &h)
	if len(h.Messages) != 1 || h.Messages[0]["data"] != "for games" {
		t.Fatalf("games history %v", h.Messages)
	}
	for _, e := range tn.audit("chat", "").Events {
		if e.App != "chat" {
			t.Fatalf("chat audit shows %+v", e)
		}
	}
	// An unknown app is a 404, for WebSockets and the API alike.
	if _, err := tn.tryDial("nosuchapp", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("dial unknown app: %v", err)
	}
	if code := tn.api("nosuchapp", testAdminKey, "GET", "/_api/channels", nil, nil); code != 404 {
		t.Fatalf("api unknown app: %d", code)
	}
}

// A new key in app.json takes over from the old one once the app is read
// again: the API hashes an app's keys once per version of its settings,
// not once per server.
func TestAPIKeyChangeApplies(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": `{"api_keys":{"backend":"old-key"}}`})
	body := map[string]any{"channel": "c", "data": 1}
	if code := tn.api("chat", "old-key", "POST", "/_api/publish", body, nil); code != 200 {
		t.Fatalf("old key: status %d", code)
	}
	file := filepath.Join(tn.cfg.AppsDir, "chat", "app.json")
	if err := os.WriteFile(file, []byte(`{"api_keys":{"backend":"new-key"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute) // a modification time of its own
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return tn.api("chat", "new-key", "POST", "/_api/publish", body, nil) == 200 })
	if code := tn.api("chat", "old-key", "POST", "/_api/publish", body, nil); code != 401 {
		t.Fatalf("old key after the change: status %d, want 401", code)
	}
}

func TestAPIAuth(t *testing.T) {
	tn := startTestNode(t, map[string]string{
		"chat":  `{"api_keys":{"backend":"chat-key"}}`,
		"games": `{"api_keys":{"backend":"games-key"}}`,
	})
	body := map[string]any{"channel": "c", "data": 1}
	var e struct{ Error, Code string }
	for _, tc := range []struct {
		name, app, key string
		want           int
	}{
		{"no key", "chat", "", 401},
		{"wrong key", "chat", "nope", 401},
		{"other app's key", "chat", "games-key", 401},
		{"app key", "chat", "chat-key", 200},
		{"admin key", "games", testAdminKey, 200},
	} {
		e.Code = ""
		if code := tn.api(tc.app, tc.key, "POST", "/_api/publish", body, &e); code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
		}
		if tc.want == 401 && e.Code != "unauthorized" {
			t.Errorf("%s: code %q", tc.name, e.Code)
		}
	}
	// The scheme's name is case-insensitive; anything else is not Bearer.
	for header, want := range map[string]int{"bearer games-key": 200, "BEARER  games-key": 200, "Basic games-key": 401, "Bearer": 401, "games-key": 401} {
		req, _ := http.NewRequest("POST", tn.srv.URL+"/_api/publish", strings.NewReader(`{"channel":"c","data":1}`))
		req.Host = "games.localhost"
		req.Header.Set("Authorization", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization: %s: status %d, want %d", header, resp.StatusCode, want)
		}
	}
	// The app key's name is the publisher in the audit.
	a := tn.audit("chat", "type=broadcast")
	if pub := a.Events[0].Event["publisher"].(map[string]any); pub["kind"] != "api_key" || pub["id"] != "backend" {
		t.Fatalf("publisher %v", pub)
	}
	// Bad bodies get clear errors.
	for _, tc := range []struct {
		path string
		body any
		code string
	}{
		{"publish", map[string]any{"channel": "bad channel", "data": 1}, "invalid_channel"},
		{"publish", map[string]any{"channel": "c"}, "bad_request"},
		{"publish", map[string]any{"channel": "c", "data": nil}, "bad_request"},
		{"publish", "not an object", "bad_request"},
		{"publish", map[string]any{"channel": "c", "data": strings.Repeat("x", 70000)}, "too_large"},
		{"broadcast-all", map[string]any{}, "bad_request"},
		{"broadcast-all", map[string]any{"data": nil}, "bad_request"},
		{"broadcast-all", map[string]any{"data": strings.Repeat("x", 70000)}, "too_large"},
	} {
		e.Code = ""
		tn.api("chat", "chat-key", "POST", "/_api/"+tc.path, tc.body, &e)
		if e.Code != tc.code {
			t.Errorf("%s %.40v: code %q, want %q", tc.path, tc.body, e.Code, tc.code)
		}
	}
	// None of them reached the log: the one broadcast is the first call's.
	if a := tn.audit("chat", "type=broadcast"); len(a.Events) != 1 {
		t.Errorf("%d broadcasts in the audit after refused bodies, want 1", len(a.Events))
	}
	if a := tn.audit("chat", "type=broadcast_all"); len(a.Events) != 0 {
		t.Errorf("%d broadcasts to all in the audit after refused bodies, want 0", len(a.Events))
	}
}

func TestAuditFilters(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	a := tn.dial("chat", "")
	b := tn.dial("chat", "")
	a.subscribe(map[string]any{"channel": "x"})
	b.subscribe(map[string]any{"channel": "y"})
	tn.publish("chat", "x", 1)
	tn.publish("chat", "y", 2)
	a.messages("x", 1)
	a.send(`{"type":"unsubscribe","channel":"x"}`)
	a.expect("unsubscribed")
	b.conn.Close()
	waitFor(t, func() bool { return len(tn.audit("chat", "type=disconnected").Events) == 1 })

	all := tn.audit("chat", "")
	if want := []string{
		"client.connected.v1", "client.connected.v1", "channel.subscribed.v1", "channel.subscribed.v1",
		"message.broadcast.v1", "message.broadcast.v1", "channel.unsubscribed.v1", "client.disconnected.v1",
	}; !slices.Equal(all.types(), want) {
		t.Fatalf("all events %v", all.types())
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"type=subscribed", []string{"channel.subscribed.v1", "channel.subscribed.v1"}},
		{"type=subscribed,unsubscribed&channel=x", []string{"channel.subscribed.v1", "channel.unsubscribed.v1"}},
		{"channel=y", []string{"channel.subscribed.v1", "message.broadcast.v1"}},
		{"client=" + b.id, []string{"client.connected.v1", "channel.subscribed.v1", "client.disconnected.v1"}},
		{"type=message.broadcast.v1", []string{"message.broadcast.v1", "message.broadcast.v1"}},
		{fmt.Sprintf("since=%d", all.Events[4].Time), nil}, // checked below
		{fmt.Sprintf("until=%d", all.Events[0].Time), []string{}},
	} {
		got := tn.audit("chat", tc.query)
		if tc.want != nil && !slices.Equal(got.types(), tc.want) && !(len(tc.want) == 0 && len(got.Events) == 0) {
			t.Errorf("%s: %v, want %v", tc.query, got.types(), tc.want)
		}
		for _, e := range got.Events {
			if strings.HasPrefix(tc.query, "since=") && e.Time < all.Events[4].Time {
				t.Errorf("%s returned event at %d", tc.query, e.Time)
			}
		}
	}
	// Paging by `after` returns every event exactly once.
	var seen []uint64
	after := uint64(0)
	for {
		p := tn.audit("chat", fmt.Sprintf("limit=3&after=%d", after))
		for _, e := range p.Events {
			seen = append(seen, e.Seq)
		}
		if p.NextAfter == 0 {
			break
		}
		after = p.NextAfter
	}
	var want []uint64
	for _, e := range all.Events {
		want = append(want, e.Seq)
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("paged %v, want %v", seen, want)
	}
	var e struct{ Code string }
	if tn.api("chat", testAdminKey, "GET", "/_api/audit?type=nonsense", nil, &e); e.Code != "bad_request" {
		t.Fatalf("unknown type: %v", e)
	}
}
