package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/testutil"
)

// TestPurgeARemovedApp: `fazt purge` deletes the messages of an app whose
// folder has been gone for the grace, and with --audit its ended
// sessions' events, leaving other apps alone. An app still hosted (on
// the defaults, on its settings within the grace, not served for a
// broken app.json, or default), or one whose folder has just gone, is
// refused, as is a key other than the admin key. The channels' heads
// stay: the app made again goes on from its old offsets.
func TestPurgeARemovedApp(t *testing.T) {
	const grace = 3 * time.Second // more than the registry's second between looks
	tn := startTestNode(t, map[string]string{"old": "", "keep": `{"api_keys":{"ci":"keep-key"}}`, "parsed": `{"client_publish":true}`, "broken": `{bad`},
		func(c *nodeConfig) { c.AppGrace = grace })
	server := strings.TrimPrefix(tn.srv.URL, "http://")
	for i := 0; i < 3; i++ {
		tn.publish("old", "room", i)
	}
	tn.publish("old", "other", 1)
	tn.publish("keep", "room", 1)
	c := tn.dial("old", "")
	c.subscribe(map[string]any{"channel": "room"})
	c.conn.Close()
	purgeApp := func(app string, args ...string) (string, error) {
		out, _, err := cli(t, append([]string{"purge", "--server", server, "--app", app}, args...)...)
		return out, err
	}
	purge := func(args ...string) (string, error) { return purgeApp("old", args...) }
	if _, err := purge("--admin-key", testAdminKey); err == nil || !strings.Contains(err.Error(), "still on this server") {
		t.Fatalf("purge of a hosted app: %v", err)
	}
	if _, err := purgeApp("broken", "--admin-key", testAdminKey); err == nil || !strings.Contains(err.Error(), "still on this server") {
		t.Fatalf("purge of an app not served for its broken app.json: %v", err)
	}
	if _, err := purgeApp("default", "--admin-key", testAdminKey); err == nil || !strings.Contains(err.Error(), "still on this server") {
		t.Fatalf("purge of default: %v", err)
	}
	// An app whose settings were read keeps them for the grace after its
	// folder goes: hosted still.
	tn.api("parsed", testAdminKey, "GET", "/_api/channels", nil, nil)
	if err := os.RemoveAll(filepath.Join(tn.cfg.AppsDir, "parsed")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the registry's second
	if _, err := purgeApp("parsed", "--admin-key", testAdminKey); err == nil || !strings.Contains(err.Error(), "still on this server") {
		t.Fatalf("purge of an app within its grace: %v", err)
	}
	tn.api("old", testAdminKey, "GET", "/_api/channels", nil, nil)
	if err := os.RemoveAll(filepath.Join(tn.cfg.AppsDir, "old")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	// Gone, but seen so for less than the grace: a deploy writing the
	// folder again looks the same.
	if _, err := purge("--admin-key", testAdminKey); err == nil || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("purge of an app gone a moment: %v", err)
	}
	// The CLI checks the name itself; the API answers 400 too.
	if code, body := tn.request(http.DefaultClient, "", testAdminKey, "POST", "/_api/apps/Old_App/purge", nil, nil); code != http.StatusBadRequest || !strings.Contains(body, "not a DNS label") {
		t.Fatalf("purge of a name no app can have: %d %s", code, body)
	}
	for _, key := range []string{"wrong", "keep-key"} { // an app's key is not the admin's
		if _, err := purge("--admin-key", key); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("purge with key %s: %v", key, err)
		}
	}
	time.Sleep(grace)
	out, err := purge("--admin-key", testAdminKey)
	if err != nil || !strings.HasPrefix(out, "purged app old: 4 messages, 0 events; left 0 messages, ") || !strings.HasSuffix(out, "its events are kept: --audit drops them\n") {
		t.Fatalf("purge: %q, %v", out, err)
	}
	// A name the log never saw (a typo) is said to be one, not purged
	// of nothing.
	if out, err := purgeApp("olf", "--admin-key", testAdminKey); err != nil || !strings.HasPrefix(out, "the log holds nothing of app olf: ") {
		t.Fatalf("purge of an app never hosted: %q, %v", out, err)
	}
	ctx := context.Background()
	for _, ch := range []string{"room", "other"} {
		msgs, err := tn.node.log.Messages(ctx, "old", ch, domain.HistoryQuery{Limit: 10})
		if err != nil || len(msgs) != 0 {
			t.Fatalf("%s after the purge: %d messages, %v", ch, len(msgs), err)
		}
	}
	if msgs, _ := tn.node.log.Messages(ctx, "keep", "room", domain.HistoryQuery{Limit: 10}); len(msgs) != 1 {
		t.Fatalf("another app's channel after the purge: %d messages", len(msgs))
	}
	// The session has ended by now: its end is written when its socket
	// closes, which the purge above does not wait for.
	for deadline := time.Now().Add(10 * time.Second); tn.node.members.Connected("old", c.id) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// The log's newest event is never deleted (sequence numbers are not
	// reused): here it is another app's.
	tn.publish("keep", "room", 2)
	// The events the projections have yet to apply stay for a later
	// call (the stored subscriptions are written on their own clock).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out, err = purge("--admin-key", testAdminKey, "--audit"); err != nil || !strings.HasPrefix(out, "purged app old: 0 messages, ") {
			t.Fatalf("purge --audit: %q, %v", out, err)
		}
		evs, err := tn.node.log.Events(ctx, domain.AuditQuery{App: "old"})
		if err != nil {
			t.Fatal(err)
		}
		if left := fmt.Sprintf("; left 0 messages, %d events\n", len(evs)); !strings.Contains(out, left) || len(evs) == 0 && !strings.HasSuffix(out, left) {
			t.Fatalf("purge --audit said %q; %d events are left", out, len(evs))
		}
		if len(evs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of the app after purge --audit: %d", len(evs))
		}
	}
	if evs, _ := tn.node.log.Events(ctx, domain.AuditQuery{App: "keep"}); len(evs) != 2 {
		t.Fatalf("another app's events after purge --audit: %d", len(evs))
	}
	if err := os.MkdirAll(filepath.Join(tn.cfg.AppsDir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var p published
		if code := tn.api("old", testAdminKey, "POST", "/_api/publish", map[string]any{"channel": "room", "data": 4}, &p); code == 200 {
			if p.Offset != 4 {
				t.Fatalf("the app made again published at offset %d, want 4", p.Offset)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the app made again is not served")
		}
	}
}

// TestPurgeOneAtATime: while a purge of an app runs, a second one of the
// same app is refused at once, saying so, and the first goes on to the
// end. The first is held inside its deletes by a write lock another
// connection to the file takes, as an operator's sqlite3 shell would.
func TestPurgeOneAtATime(t *testing.T) {
	tn := startTestNode(t, map[string]string{"old": ""}, func(c *nodeConfig) { c.AppGrace = time.Second })
	for i := 0; i < 3; i++ {
		tn.publish("old", "room", i)
	}
	tn.api("old", testAdminKey, "GET", "/_api/channels", nil, nil)
	if err := os.RemoveAll(filepath.Join(tn.cfg.AppsDir, "old")); err != nil {
		t.Fatal(err)
	}
	// Past the registry's second between looks; the grace counts from
	// the refusal.
	time.Sleep(1100 * time.Millisecond)
	if code, body := tn.request(http.DefaultClient, "", testAdminKey, "POST", "/_api/apps/old/purge", nil, nil); code == http.StatusOK || !strings.Contains(body, "try again in") {
		t.Fatalf("purge of an app gone a moment: %d %s", code, body)
	}
	time.Sleep(tn.cfg.AppGrace)
	release := testutil.HoldWriteLock(t, tn.cfg.DBPath)
	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, 2)
	for i := 0; i < 2; i++ {
		go func() {
			code, body := tn.request(http.DefaultClient, "", testAdminKey, "POST", "/_api/apps/old/purge", nil, nil)
			answers <- answer{code, body}
		}()
	}
	// The purge that came first waits for the lock (for up to the
	// writer's five seconds); the other has its answer meanwhile.
	var first answer
	select {
	case first = <-answers:
	case <-time.After(4 * time.Second):
		t.Fatal("no purge answered while the first was held")
	}
	if first.code != http.StatusForbidden || !strings.Contains(first.body, "a purge of app old is running") {
		t.Fatalf("the second purge: %d %s", first.code, first.body)
	}
	release()
	var p struct{ Messages int }
	if a := <-answers; a.code != http.StatusOK || json.Unmarshal([]byte(a.body), &p) != nil || p.Messages != 3 || !strings.Contains(a.body, `"messages_left":0`) {
		t.Fatalf("the first purge: %d %s", a.code, a.body)
	}
}
