package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
// which gets a new client id, joins with a token bound to it.
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
	}
	if err := result(&res); err != nil || !res.OK || res.Got != 20 || res.Connects != 2 || res.Tokens != 2 {
		t.Fatalf("client: %+v, %v", res, err)
	}
}

// runNodeClient starts a Node script of testdata/ against fazt.js and
// waits for it to say "ready". The caller reads its result with result.
func runNodeClient(t *testing.T, script string, args ...string) (result func(v any) error) {
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
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("client did not start: %q %s", lines.Text(), stderr.String())
	}
	return func(v any) error {
		if !lines.Scan() {
			return fmt.Errorf("no result from the client: %s", stderr.String())
		}
		if err := json.Unmarshal(lines.Bytes(), v); err != nil {
			return fmt.Errorf("client said %q", lines.Text())
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("client exit %v, stderr %s", err, stderr.String())
		}
		return nil
	}
}
