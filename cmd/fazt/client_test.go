package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// TestBrowserClientResumes runs the browser client, fazt.js, under Node's
// WebSocket against a real server: it subscribes from offset 0, its
// connection is dropped twice mid-stream while messages keep coming, and it
// must deliver every message exactly once, in order.
func TestBrowserClientResumes(t *testing.T) {
	tn := startTestNode(t, nil)
	const total = 120
	result := runNodeClient(t, "client.cjs", tn.wsURL(), "120")
	for i := 1; i <= total; i++ {
		tn.publish("", "feed", map[string]int{"n": i})
		// Just after the client drops its first connection (at message
		// 40), during its reconnect delay of 10 to 20 ms: the first
		// messages ever of a channel it follows live only.
		if i > total/3 && i <= total/3+5 {
			tn.publish("", "quiet", i)
		}
		time.Sleep(2 * time.Millisecond)
	}
	var res struct {
		OK       bool
		Error    string
		Got      int
		Drops    int
		Connects int
		Quiet    []uint64
	}
	if err := result(&res); err != nil || !res.OK || res.Got != total || res.Drops != 2 || res.Connects != 3 || !slices.Equal(res.Quiet, seqRange(1, 5)) {
		t.Fatalf("client: %+v, %v", res, err)
	}
	// Each reconnect resumed from the last offset delivered rather than
	// replaying from the start, and named the epoch: the channel was empty,
	// so had none, at the start; its first message told it.
	subs := tn.audit("", "type=subscribed&channel=feed").Events
	if len(subs) != 3 {
		t.Fatalf("%d subscriptions, want 3", len(subs))
	}
	for i, e := range subs[1:] {
		start := e.Event["start"].(map[string]any)
		if start["mode"] != "offset" || start["value"].(float64) < float64((i+1)*total/3) || start["epoch"] == nil {
			t.Fatalf("reconnect %d subscribed with %v", i+1, start)
		}
	}
	// The client is served by every app at /_fazt/fazt.js.
	resp, err := tn.srv.Client().Get(tn.srv.URL + "/_fazt/fazt.js")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("GET /_fazt/fazt.js: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestBrowserClientRenewsTokens: a private channel's token given to
// fazt.js as a function is asked for again at each join, so a reconnect,
// which gets a new client id, joins with a token bound to it; a fetch
// that fails at the reconnect is told to onError and tried again.
func TestBrowserClientRenewsTokens(t *testing.T) {
	const secret = "renew-secret"
	tn := startTestNode(t, map[string]string{"default": `{"secret":"` + secret + `"}`})
	result := runNodeClient(t, "private.cjs", tn.wsURL(), secret, "20")
	for i := 1; i <= 20; i++ {
		tn.publish("", "private-feed", i)
		time.Sleep(2 * time.Millisecond)
	}
	var res struct {
		OK               bool
		Error            string
		Got              int
		Tokens, Connects int
		TokenErrors      int
	}
	if err := result(&res); err != nil || !res.OK || res.Got != 20 || res.Connects != 2 || res.Tokens != 3 || res.TokenErrors != 1 {
		t.Fatalf("client: %+v, %v", res, err)
	}
}

// TestBrowserClientRenewsExpiredTokens: when the server ends a private
// subscription because its token expired, fazt.js joins again with a
// fresh token from its token function, from the last offset it
// delivered: every message arrives once, in order, across the expiries,
// on one connection. A subscription whose token is a string ends, and
// onError gets the code token_expired.
func TestBrowserClientRenewsExpiredTokens(t *testing.T) {
	const secret = "expiry-secret"
	tn := startTestNode(t, map[string]string{"default": `{"secret":"` + secret + `"}`})
	result := runNodeClient(t, "expiry.cjs", tn.wsURL(), secret, "40")
	for i := 1; i <= 40; i++ { // over four seconds: past the first token's expiry, two seconds at most
		tn.publish("", "private-feed", i)
		time.Sleep(100 * time.Millisecond)
	}
	var res struct {
		OK               bool
		Error            string
		Got              int
		Tokens, Connects int
		FixedError       string
	}
	if err := result(&res); err != nil || !res.OK || res.Got != 40 || res.Connects != 1 || res.Tokens < 2 || res.FixedError != domain.ReasonTokenExpired {
		t.Fatalf("client: %+v, %v", res, err)
	}
	a := tn.audit("", "type=unsubscribed")
	if len(a.Events) < 2 {
		t.Fatalf("%d unsubscriptions recorded, want one per expired token (1 or more of private-feed, 1 of private-fixed)", len(a.Events))
	}
	for _, e := range a.Events {
		if e.Event["reason"] != domain.ReasonTokenExpired {
			t.Fatalf("unsubscription recorded %v, want reason %s", e.Event, domain.ReasonTokenExpired)
		}
	}
}

// TestBrowserClientRejoinsAReplayNotYetDelivered: a subscription from
// {last: 2} whose connection is lost after `subscribed`, before any of
// its replay was delivered, joins again from where that replay started,
// not from the last 2 of a later head: the messages published meanwhile
// are not skipped.
func TestBrowserClientRejoinsAReplayNotYetDelivered(t *testing.T) {
	tn := startTestNode(t, nil)
	for i := 1; i <= 5; i++ {
		tn.publish("", "room", i)
	}
	result := runNodeClient(t, "lastrejoin.cjs", tn.wsURL(), tn.srv.URL, testAdminKey)
	var res struct {
		OK    bool
		Error string
		Got   []uint64
	}
	if err := result(&res); err != nil || !res.OK || !slices.Equal(res.Got, seqRange(4, 8)) {
		t.Fatalf("client: %+v, %v; want offsets 4 to 8", res, err)
	}
}

// TestBrowserClientMembersCountsPresenceMeanwhile: fazt.members()
// applies to the server's reply the joins and leaves of the channel that
// came while it was on its way, which the reply may not count (it is not
// ordered with them); those of other channels are left out, and
// onPresence still gets each.
func TestBrowserClientMembersCountsPresenceMeanwhile(t *testing.T) {
	tn := startTestNode(t, nil)
	other := tn.dial("", "")
	other.subscribe(map[string]any{"channel": "presence-room"})
	result := runNodeClient(t, "members.cjs", tn.wsURL(), other.id)
	var res struct {
		OK      bool
		Error   string
		Members []string
		Self    string
		Told    []string
	}
	if err := result(&res); err != nil || !res.OK {
		t.Fatalf("client: %+v, %v", res, err)
	}
	want := []string{res.Self, "ghost"}
	slices.Sort(want)
	if !slices.Equal(res.Members, want) || !slices.Equal(res.Told, []string{"join:ghost", "leave:" + other.id}) {
		t.Fatalf("members %v, told %v; want %v and the join and the leave", res.Members, res.Told, want)
	}
}

// TestBrowserClientGivesMembersAgainAfterAReconnect: presence is live
// only, so a client that was away missed who joined and left meanwhile:
// fazt.js gives onMembers the list again at each join, its own new id in
// it. Before, an app that listed the members once kept a list that was
// wrong after every reconnect.
func TestBrowserClientGivesMembersAgainAfterAReconnect(t *testing.T) {
	tn := startTestNode(t, nil)
	other := tn.dial("", "")
	other.subscribe(map[string]any{"channel": "presence-room"})
	lines, result := runNodeClientLines(t, "resync.cjs", tn.wsURL())
	var first struct {
		Members []string
		Self    string
	}
	if err := json.Unmarshal([]byte(lines()), &first); err != nil || !slices.Contains(first.Members, other.id) || !slices.Contains(first.Members, first.Self) {
		t.Fatalf("first list: %+v, %v", first, err)
	}
	if l := lines(); l != "closed" {
		t.Fatalf("client: %s", l)
	}
	// While it is away: one leaves, another joins.
	other.conn.Close()
	third := tn.dial("", "")
	third.subscribe(map[string]any{"channel": "presence-room"})
	var res struct {
		OK      bool
		Error   string
		Members []string
		Self    string
	}
	if err := result(&res); err != nil || !res.OK {
		t.Fatalf("client: %+v, %v", res, err)
	}
	// The server ends other's session when its socket's close is read:
	// by the rejoin, a second later, it has.
	want := []string{res.Self, third.id}
	slices.Sort(want)
	if !slices.Equal(res.Members, want) || res.Self == first.Self {
		t.Fatalf("members after the reconnect %v (self %s, before %s); want %v", res.Members, res.Self, first.Self, want)
	}
}

// TestBrowserClientHandles: a channel is subscribed once at a time (a
// second subscribe throws); a handle whose subscription ended leaves a
// later one alone; a handle gives the offset and epoch to resume from, and
// a start with an epoch that is not the channel's replays its history; a
// token function that fails at the first join drops its subscription,
// which may be made again (TestBrowserClientRenewsTokens: at a rejoin it
// is kept).
func TestBrowserClientHandles(t *testing.T) {
	tn := startTestNode(t, nil)
	for i := 1; i <= 3; i++ {
		tn.publish("", "room", i)
	}
	tn.publish("", "other", 1)
	tn.publish("", "other", 2)
	epoch := tn.history("", "room", "").Epoch
	result := runNodeClient(t, "handles.cjs", tn.wsURL())
	tn.publish("", "room", 4)
	var res struct {
		OK      bool
		Error   string
		Second  string
		First   []uint64
		Epoch   string
		Offset  uint64
		Resumed struct {
			Replay       int
			EpochChanged bool `json:"epoch_changed"`
		}
		Live         uint64
		Other        []uint64
		OtherChanged bool
		TokenError   string
		Again        string
	}
	if err := result(&res); err != nil || !res.OK {
		t.Fatalf("client: %+v, %v", res, err)
	}
	if res.Second != "already subscribed to room" || !slices.Equal(res.First, seqRange(1, 3)) || res.Epoch != epoch || res.Offset != 3 ||
		res.Resumed.Replay != 0 || res.Resumed.EpochChanged || res.Live != 4 || !res.OtherChanged || !slices.Equal(res.Other, seqRange(1, 2)) ||
		res.TokenError != "no token for you" || res.Again != "allowed" {
		t.Fatalf("client: %+v (epoch %s)", res, epoch)
	}
}

// TestBrowserClientLeavesASilentConnection: when the path to the server
// goes silent without closing (a proxy here stops forwarding, as a network
// that vanished would), fazt.js gives the connection up once no frame has
// come for the heartbeat the server announced plus its margin, connects
// anew and resumes: every message once, in order. Before, it waited on the
// dead socket for as long as TCP would.
func TestBrowserClientLeavesASilentConnection(t *testing.T) {
	tn := startTestNode(t, nil, withWS(ws.Config{Heartbeat: time.Second, PongTimeout: 900 * time.Millisecond}))
	px := newFreezingProxy(t, strings.TrimPrefix(tn.srv.URL, "http://"))
	const total = 20
	url := strings.Replace(tn.wsURL(), strings.TrimPrefix(tn.srv.URL, "http://"), px.addr(), 1)
	lines, result := runNodeClientLines(t, "silent.cjs", url, strconv.Itoa(total))
	for i := 1; i <= total/2; i++ {
		tn.publish("", "feed", map[string]int{"n": i})
	}
	if l := lines(); l != "silence" {
		t.Fatalf("client said %q", l)
	}
	px.freeze() // the connections open now: no byte goes either way
	for i := total/2 + 1; i <= total; i++ {
		tn.publish("", "feed", map[string]int{"n": i})
	}
	var res struct {
		OK       bool
		Error    string
		Got      int
		Connects int
		States   []string
	}
	// At least two connections: a loaded machine may cost one more to a
	// missed heartbeat, which this test does not mind.
	if err := result(&res); err != nil || !res.OK || res.Got != total || res.Connects < 2 || !slices.Contains(res.States, "disconnected 1006 no frame for 2 s") {
		t.Fatalf("client: %+v, %v", res, err)
	}
}

// freezingProxy forwards TCP connections to a server until freeze, after
// which the connections it carries stay open and silent; new ones are
// forwarded as before.
type freezingProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen chan struct{} // closed by freeze, for the connections open then
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, frozen: make(chan struct{})}
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, in, out)
			cmu.Unlock()
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			go p.pipe(in, out, frozen)
			go p.pipe(out, in, frozen)
		}
	}()
	return p
}

func (p *freezingProxy) addr() string { return p.ln.Addr().String() }

// pipe copies from src to dst until frozen is closed; from then on it
// drops what it reads, and both connections stay open until closed.
func (p *freezingProxy) pipe(src, dst net.Conn, frozen chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			io.Copy(io.Discard, src) // until the test's end closes it
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
}

// runNodeClient starts a Node script of testdata/ against fazt.js and
// waits for it to say "ready". The caller reads its result with result.
func runNodeClient(t *testing.T, script string, args ...string) (result func(v any) error) {
	t.Helper()
	_, result = runNodeClientLines(t, script, args...)
	return result
}

// runNodeClientLines is runNodeClient for a script that says more before
// its result: lines returns its next line.
func runNodeClientLines(t *testing.T, script string, args ...string) (lines func() string, result func(v any) error) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is needed for the browser client tests: %v", err)
	}
	path, _ := filepath.Abs(filepath.Join("testdata", script))
	client, _ := filepath.Abs("../../transport/web/assets/fazt.js")
	cmd := exec.Command("node", append([]string{"--experimental-websocket", "--no-warnings", path, client}, args...)...)
	out, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("client did not start: %q %s", sc.Text(), stderr.String())
	}
	lines = func() string {
		if !sc.Scan() {
			return "(nothing more) " + stderr.String()
		}
		return sc.Text()
	}
	return lines, func(v any) error {
		if !sc.Scan() {
			return fmt.Errorf("no result from the client: %s", stderr.String())
		}
		if err := json.Unmarshal(sc.Bytes(), v); err != nil {
			return fmt.Errorf("client said %q", sc.Text())
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("client exit %v, stderr %s", err, stderr.String())
		}
		return nil
	}
}
