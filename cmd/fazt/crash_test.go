package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// binary builds the fazt binary once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "fazt-bin")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "fazt")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
})

type proc struct {
	cmd     *exec.Cmd
	addr    string
	serving string // the log's "fazt serving" line
}

var servingRE = regexp.MustCompile(`fazt serving" addr=(\S+).*`)

// startBinary runs `fazt serve` on db, with env added to the test's
// environment, and waits until it listens.
func startBinary(t *testing.T, db, apps string, env ...string) *proc {
	t.Helper()
	return startServe(t, serveCommand(t, db, apps, env...))
}

// serveCommand is the command startBinary runs.
func serveCommand(t *testing.T, db, apps string, env ...string) *exec.Cmd {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", db, "--apps", apps, "--admin-key", testAdminKey)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// startServe starts cmd, a `fazt serve`, and waits until it listens.
func startServe(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	select {
	case m := <-found:
		p.serving, p.addr = m[0], m[1]
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start within 30s")
	}
	return p
}

func (p *proc) publish(channel string, data any) (uint64, error) {
	b, _ := json.Marshal(map[string]any{"channel": channel, "data": data})
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/_api/publish", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var out published
	return out.Offset, json.NewDecoder(resp.Body).Decode(&out)
}

// TestKill9LosesNothingAcknowledged kills the server with SIGKILL while
// publishers are writing and a subscriber is reading, restarts it on the
// same file, and checks that every acknowledged publish and every message
// the subscriber saw is in history, with contiguous offsets, and that the
// dead sessions were closed.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	db, apps := filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps")
	p := startBinary(t, db, apps)

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"crash"}`))
	var clientID string
	seen := map[uint64]string{}
	var seenMu sync.Mutex
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f struct {
				Type     string          `json:"type"`
				ClientID string          `json:"client_id"`
				Offset   uint64          `json:"offset"`
				Data     json.RawMessage `json:"data"`
			}
			json.Unmarshal(b, &f)
			seenMu.Lock()
			switch f.Type {
			case "connected":
				clientID = f.ClientID
			case "message":
				seen[f.Offset] = string(f.Data)
			}
			seenMu.Unlock()
		}
	}()

	acked := map[uint64]string{}
	var ackMu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := fmt.Sprintf(`"w%d-%d"`, w, i)
				off, err := p.publish("crash", json.RawMessage(data))
				if err != nil {
					return // the server died under us: not acknowledged
				}
				ackMu.Lock()
				acked[off] = data
				ackMu.Unlock()
			}
		}()
	}
	// Let the load run, then kill -9 in the middle of it.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ackMu.Lock()
		n := len(acked)
		ackMu.Unlock()
		if n >= 1500 {
			break
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	close(stop)
	wg.Wait()
	<-readerDone

	p2 := startBinary(t, db, apps)
	var hist struct {
		Head     uint64 `json:"head"`
		Messages []struct {
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		} `json:"messages"`
	}
	var all []uint64
	got := map[uint64]string{}
	for after := uint64(0); ; {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/_api/channels/crash/history?offset=%d&limit=1000", p2.addr, after), nil)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		hist.Messages = nil
		json.NewDecoder(resp.Body).Decode(&hist)
		resp.Body.Close()
		for _, m := range hist.Messages {
			all = append(all, m.Offset)
			got[m.Offset] = string(m.Data)
		}
		if len(hist.Messages) < 1000 {
			break
		}
		after = hist.Messages[len(hist.Messages)-1].Offset
	}
	for i, o := range all {
		if o != uint64(i+1) {
			t.Fatalf("offsets not contiguous after restart at %d: %d", i, o)
		}
	}
	for off, data := range acked {
		if got[off] != data {
			t.Fatalf("acknowledged offset %d (%s) is %q in history", off, data, got[off])
		}
	}
	for off, data := range seen {
		if got[off] != data {
			t.Fatalf("seen offset %d (%s) is %q in history", off, data, got[off])
		}
	}
	if len(acked) < 1000 || len(seen) == 0 {
		t.Fatalf("too little load to mean anything: %d acknowledged, %d seen", len(acked), len(seen))
	}
	// New publishes continue the sequence.
	off, err := p2.publish("crash", "after")
	if err != nil || off != uint64(len(all))+1 {
		t.Fatalf("publish after restart: offset %d, %v; want %d", off, err, len(all)+1)
	}
	// The subscriber's session was closed by the restart.
	req, _ := http.NewRequest("GET", "http://"+p2.addr+"/_api/audit?type=disconnected&client="+clientID, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a auditResp
	json.NewDecoder(resp.Body).Decode(&a)
	if len(a.Events) != 1 || a.Events[0].Event["reason"] != "server_restart" {
		t.Fatalf("dead session's disconnection: %+v", a.Events)
	}
	t.Logf("killed after %d acknowledged publishes (%d in history, %d seen live); none lost", len(acked), len(all), len(seen))
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
}

// TestSIGTERMUnderLoad stops the server gracefully while publishers write
// and a subscriber reads: every publish either commits or fails visibly, the
// subscriber is told (disconnect, 1001), and after a restart it resumes
// from the last offset it saw with nothing missing.
func TestSIGTERMUnderLoad(t *testing.T) {
	dir := t.TempDir()
	db, apps := filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps")
	p := startBinary(t, db, apps)
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","channel":"q","offset":0}`))
	var last uint64
	var disconnect string
	var closeCode int
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					closeCode = ce.Code
				}
				return
			}
			var f struct {
				Type   string `json:"type"`
				Offset uint64 `json:"offset"`
			}
			json.Unmarshal(b, &f)
			switch f.Type {
			case "message":
				if f.Offset != last+1 {
					t.Errorf("live offset %d after %d", f.Offset, last)
				}
				last = f.Offset
			case "disconnect":
				disconnect = string(b)
			}
		}
	}()
	acked := map[uint64]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				data := fmt.Sprintf(`"w%d-%d"`, w, i)
				off, err := p.publish("q", json.RawMessage(data))
				if err != nil {
					return
				}
				mu.Lock()
				acked[off] = data
				mu.Unlock()
			}
		}()
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 500 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful exit: %v", err)
	}
	wg.Wait()
	<-readerDone
	if closeCode != 1001 || !strings.Contains(disconnect, `"code":1001`) {
		t.Fatalf("subscriber got disconnect %q and close %d, want 1001", disconnect, closeCode)
	}

	p2 := startBinary(t, db, apps)
	conn2, _, err := websocket.DefaultDialer.Dial("ws://"+p2.addr+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"subscribe","channel":"q","offset":%d}`, last)))
	got := map[uint64]string{}
	var head uint64
	for {
		conn2.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := conn2.ReadMessage()
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		var f struct {
			Type   string          `json:"type"`
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		}
		json.Unmarshal(b, &f)
		if f.Type == "subscribed" {
			head = f.Offset
			if head == last {
				break
			}
		}
		if f.Type == "message" {
			if f.Offset != last+uint64(len(got))+1 {
				t.Fatalf("resumed offset %d, want %d", f.Offset, last+uint64(len(got))+1)
			}
			got[f.Offset] = string(f.Data)
			if f.Offset == head {
				break
			}
		}
	}
	for off, data := range acked {
		if off > last && got[off] != data {
			t.Fatalf("acknowledged offset %d (%s) missing after restart (got %q)", off, data, got[off])
		}
	}
	t.Logf("SIGTERM after %d acknowledged publishes; subscriber saw up to %d live, resumed %d more up to head %d", len(acked), last, len(got), head)
}

// TestShutdownDespiteAStalledRequest: an HTTP client that sends a request's
// headers and stalls its body does not hold the shutdown: the WebSocket
// client is still told (1001), its disconnection recorded, and the server
// exits 0.
func TestShutdownDespiteAStalledRequest(t *testing.T) {
	dir := t.TempDir()
	db, apps := filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps")
	p := startBinary(t, db, apps)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var hello struct {
		ClientID string `json:"client_id"`
	}
	if err := ws.ReadJSON(&hello); err != nil {
		t.Fatal(err)
	}
	stallRequest(t, p.addr)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var code int
	for {
		_, _, err := ws.ReadMessage()
		if ce, ok := err.(*websocket.CloseError); ok {
			code = ce.Code
			break
		}
		if err != nil {
			t.Fatalf("waiting for the close: %v", err)
		}
	}
	if code != websocket.CloseGoingAway {
		t.Fatalf("close %d, want 1001", code)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	q := startBinary(t, db, apps)
	var a auditResp
	req, _ := http.NewRequest("GET", "http://"+q.addr+"/_api/audit?type=disconnected&client="+hello.ClientID, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&a)
	if len(a.Events) != 1 || a.Events[0].Event["reason"] != "server_shutdown" {
		t.Fatalf("disconnection recorded: %+v, want one with reason server_shutdown", a.Events)
	}
}

// TestSecondSignalEndsAShutdown: a shutdown that waits (here for a stalled
// request) is ended by a second SIGTERM, which the process no longer
// handles: it dies of it.
func TestSecondSignalEndsAShutdown(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps"))
	stallRequest(t, p.addr)
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the shutdown has begun, and waits for the request
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("after a second SIGTERM: %v, want killed by it", p.cmd.ProcessState)
	}
}

// stallRequest sends the headers of an API publish and one byte of its
// 100-byte body, then nothing: a handler waits on it until the connection
// closes, at the end of the test.
func stallRequest(t *testing.T, addr string) {
	t.Helper()
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stalled.Close() })
	fmt.Fprintf(stalled, "POST /_api/publish HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", addr, testAdminKey)
	time.Sleep(100 * time.Millisecond) // the request is being read
}

// A hang-up (SIGHUP: the terminal of the SSH session that started it
// closes) stops a serve gracefully, as SIGTERM does: its subscriber gets
// disconnect 1001, and the process exits 0. Before, the signal's default
// killed it, with no close for anyone.
func TestSIGHUPStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, filepath.Join(dir, "fazt.db"), filepath.Join(dir, "apps"))
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/_ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadMessage(); err != nil { // connected
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGHUP: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("after SIGHUP: %v; want close 1001", err)
			}
			break
		}
	}
}
