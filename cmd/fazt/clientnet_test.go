package main

import (
	"bufio"
	be "encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/transport/ws"
)

// TestBrowserClientBacksOffAServerThatDropsIt: a server (here a proxy)
// that closes each connection just after `connected` is backed off from
// more each time: the backoff starts again only after a connection that
// lasted. Before, each `connected` reset it, and such a server was tried
// every 10 to 20 ms for good. Meanwhile, an onState that throws stops
// neither the reconnects nor the joins (what it throws is reported as
// uncaught), a publish on a connection that ends before its answer is
// rejected with connection_lost, one before any connection with
// not_connected, and the joins cut off are told to no onError.
func TestBrowserClientBacksOffAServerThatDropsIt(t *testing.T) {
	tn := startTestNode(t, nil)
	const cuts = 4
	px := newCuttingProxy(t, strings.TrimPrefix(tn.srv.URL, "http://"), cuts, false)
	url := strings.Replace(tn.wsURL(), strings.TrimPrefix(tn.srv.URL, "http://"), px.addr(), 1)
	result := runNodeClient(t, "backoff.cjs", url)
	tn.publish("", "feed", "hello")
	var res struct {
		OK       bool
		Error    string
		Gaps     []float64 // ms from a connection's end to the next `connected`
		Codes    []string
		Early    string
		Uncaught int
		Errors   []any
		Data     string
		Joins    int
	}
	if err := result(&res); err != nil || !res.OK || res.Data != "hello" || res.Joins != 1 || len(res.Errors) != 0 {
		t.Fatalf("client: %+v, %v", res, err)
	}
	// The waits are at least half of 20 ms doubled at each try.
	if len(res.Gaps) != cuts {
		t.Fatalf("gaps %v, want %d", res.Gaps, cuts)
	}
	for i, gap := range res.Gaps {
		// Four fifths of it: Node times a timer from its loop's clock,
		// which may lag the Date.now() taken after the timer was set.
		if least := 0.8 * float64(int(10)<<i); gap < least {
			t.Errorf("reconnect %d after %.0f ms, want %.0f ms or more (gaps %v)", i+1, gap, least, res.Gaps)
		}
	}
	if want := []string{"connection_lost", "connection_lost", "connection_lost", "connection_lost", "not_allowed"}; !slices.Equal(res.Codes, want) || res.Early != "not_connected" {
		t.Errorf("publish codes %v and %q before connecting, want %v and not_connected", res.Codes, res.Early, want)
	}
	if res.Uncaught != 2*cuts+1 {
		t.Errorf("%d of onState's throws reported, want %d", res.Uncaught, 2*cuts+1)
	}
}

// TestBrowserClientTellsARefusedRejoin: a subscription without an onError
// of its own whose join after a reconnect is refused (its token, a
// string, was bound to the old client id) is told to the client's onError,
// as an error frame is, instead of ending in silence. And an unsubscribe
// refused for the inbound rate is asked again until it passes, the
// subscribe of the same channel after it waiting for it: before, the
// unsubscribe was dropped, the server kept the subscription, and the new
// subscribe was refused as a second one.
func TestBrowserClientTellsARefusedRejoin(t *testing.T) {
	const secret = "rejoin-secret"
	tn := startTestNode(t, map[string]string{"default": `{"secret":"` + secret + `","limits":{"inbound_rate":1,"inbound_burst":2}}`})
	result := runNodeClient(t, "rejoin.cjs", tn.wsURL(), secret)
	tn.publish("", "room", 1)
	var res struct {
		OK          bool
		Error       string
		Errors      []map[string]any
		Left        bool
		LeftFirst   bool
		PrivateKept bool
		Connects    int
		Data        int
	}
	if err := result(&res); err != nil || !res.OK || res.Data != 1 || res.Connects != 2 || !res.Left || !res.LeftFirst || res.PrivateKept {
		t.Fatalf("client: %+v, %v", res, err)
	}
	if len(res.Errors) != 1 || res.Errors[0]["type"] != "error" || res.Errors[0]["channel"] != "private-a" || res.Errors[0]["code"] != "not_allowed" {
		t.Fatalf("errors told: %v", res.Errors)
	}
	// The second subscription came after the first's end, and joined
	// again on the second connection (the first's end ended the rest).
	room := tn.audit("", "channel=room&type=subscribed,unsubscribed").types()
	if want := []string{"channel.subscribed.v1", "channel.unsubscribed.v1", "channel.subscribed.v1", "channel.subscribed.v1"}; !slices.Equal(room, want) {
		t.Fatalf("room's events %v, want %v", room, want)
	}
}

// TestBrowserClientLeavesInOrder: a subscribe of a channel whose
// unsubscribe the inbound rate refused waits for that unsubscribe to end
// (else the server would refuse it as a second subscription), and a
// subscription made and left meanwhile, never asked for, costs nothing:
// the third subscription joins and gets its messages, and nothing reaches
// onError.
func TestBrowserClientLeavesInOrder(t *testing.T) {
	tn := startTestNode(t, map[string]string{"default": `{"limits":{"inbound_rate":1,"inbound_burst":1}}`})
	result := runNodeClient(t, "leaves.cjs", tn.wsURL())
	// Past any late try of the first unsubscribe, were one left.
	time.Sleep(300 * time.Millisecond)
	tn.publish("", "room", 1)
	var res struct {
		OK     bool
		Error  string
		Errors []any
		Data   int
	}
	if err := result(&res); err != nil || !res.OK || res.Data != 1 || len(res.Errors) != 0 {
		t.Fatalf("client: %+v, %v", res, err)
	}
}

// TestBrowserClientLeavesWithItsConnection: an unsubscribe waiting to try
// again ends when its connection does (the server ended the subscription
// with it), before the next connection is up, rather than at its next try.
// And the unsubscribe of a subscription the server holds nothing of (its
// join waits for its token, or was refused for the inbound rate and waits
// to try again) sends nothing.
func TestBrowserClientLeavesWithItsConnection(t *testing.T) {
	// One frame each 5 s: the unsubscribe is refused until the drop.
	tn := startTestNode(t, map[string]string{"default": `{"limits":{"inbound_rate":0.2,"inbound_burst":1}}`})
	result := runNodeClient(t, "leavelost.cjs", tn.wsURL())
	tn.publish("", "room", 1)
	var res struct {
		OK     bool
		Error  string
		Order  []string
		Errors []any
		Sent   []string
		Data   int
	}
	if err := result(&res); err != nil || !res.OK || res.Data != 1 || len(res.Errors) != 0 || strings.Join(res.Order, " ") != "waiting left left connected" {
		t.Fatalf("client: %+v, %v", res, err)
	}
	if slices.Contains(res.Sent, "unsubscribe private-x") || slices.Contains(res.Sent, "subscribe private-x") || slices.Contains(res.Sent, "unsubscribe other") || !slices.Contains(res.Sent, "subscribe other") {
		t.Fatalf("frames for a subscription never asked for: %v", res.Sent)
	}
}

// TestBrowserClientKnowsAKickWithoutItsCloseFrame: a kicked client does
// not reconnect even when the close frame (4000) is lost, whether the
// socket then just ends (1006) or stays open and silent until the
// watchdog gives it up: the `disconnect` frame before it said 4000. And
// a publish whose data is no JSON (a BigInt) is refused as bad_request,
// leaving no request waiting.
func TestBrowserClientKnowsAKickWithoutItsCloseFrame(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(map[bool]string{false: "ends", true: "silent"}[hold], func(t *testing.T) {
			tn := startTestNode(t, nil, withWS(ws.Config{Heartbeat: time.Second, PongTimeout: 900 * time.Millisecond}))
			px := newCuttingProxy(t, strings.TrimPrefix(tn.srv.URL, "http://"), 0, true)
			px.holdAtClose = hold
			url := strings.Replace(tn.wsURL(), strings.TrimPrefix(tn.srv.URL, "http://"), px.addr(), 1)
			lines, result := runNodeClientLines(t, "kicked.cjs", url)
			id := lines()
			if code := tn.api("", testAdminKey, "POST", "/_api/clients/"+id+"/kick", nil, nil); code != 200 {
				t.Fatalf("kick %s: %d", id, code)
			}
			var res struct {
				OK      bool
				Error   string
				States  []string
				BigInt  string
				Pending int
			}
			if err := result(&res); err != nil || !res.OK || len(res.States) != 2 || !strings.HasPrefix(res.States[0], "connected ") ||
				res.States[1] != "disconnected 4000 kicked" || res.BigInt != "bad_request" || res.Pending != 0 {
				t.Fatalf("client: %+v, %v", res, err)
			}
		})
	}
}

// cuttingProxy forwards WebSocket connections to a server, reading the
// server's side frame by frame: it closes each of its first connections
// (as many as cut) just after the server's first frame, `connected`, and
// with dropClose it ends a connection in place of forwarding the
// server's close frame, as a path that breaks then would.
type cuttingProxy struct {
	ln        net.Listener
	cut       atomic.Int32
	dropClose bool
	// holdAtClose, with dropClose, keeps the client's side open and
	// silent from the close frame on, as a path that died then would.
	holdAtClose bool
}

func newCuttingProxy(t *testing.T, target string, cut int, dropClose bool) *cuttingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, dropClose: dropClose}
	p.cut.Store(int32(cut))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 10*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() {
				defer wg.Done()
				if !p.serverSide(out, in) {
					in.Close()
				}
				out.Close()
			}()
		}
	}()
	return p
}

func (p *cuttingProxy) addr() string { return p.ln.Addr().String() }

// serverSide forwards the server's upgrade answer and then its frames to
// the client, until it cuts the connection or either side ends. It says
// whether to hold the client's side open.
func (p *cuttingProxy) serverSide(server, client net.Conn) (hold bool) {
	br := bufio.NewReader(server)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if _, err := client.Write([]byte(line)); err != nil || line == "\r\n" {
			if err != nil {
				return false
			}
			break
		}
	}
	cutThis := p.cut.Add(-1) >= 0
	for {
		head := make([]byte, 2, 10)
		if _, err := io.ReadFull(br, head); err != nil {
			return false
		}
		n := uint64(head[1] & 0x7f) // the server's frames are not masked
		switch n {
		case 126, 127:
			ext := make([]byte, map[uint64]int{126: 2, 127: 8}[n])
			if _, err := io.ReadFull(br, ext); err != nil {
				return false
			}
			head = append(head, ext...)
			if len(ext) == 2 {
				n = uint64(be.BigEndian.Uint16(ext))
			} else {
				n = be.BigEndian.Uint64(ext)
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return false
		}
		if p.dropClose && head[0]&0x0f == 0x8 {
			return p.holdAtClose
		}
		if _, err := client.Write(append(head, payload...)); err != nil {
			return false
		}
		if cutThis {
			return false
		}
	}
}
