package main

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/projections"
)

// busyLog drives a real server with many clients that connect, subscribe,
// unsubscribe, publish, are kicked and leave, in parallel, and calls during
// (at most once per round, while the load runs) before returning. It
// leaves some sessions open.
func busyLog(t *testing.T, tn *testNode, during func()) {
	t.Helper()
	const workers, rounds = 8, 6
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				c, err := tn.tryDial("", "")
				if err != nil {
					t.Error(err)
					return
				}
				for ch := 0; ch < 3; ch++ {
					c.send(map[string]any{"type": "subscribe", "channel": fmt.Sprintf("ch-%d", (w+r+ch)%5)})
				}
				tn.publish("", fmt.Sprintf("ch-%d", (w+r)%5), map[string]any{"w": w, "r": r})
				c.send(map[string]any{"type": "unsubscribe", "channel": fmt.Sprintf("ch-%d", (w+r+1)%5)})
				switch {
				case r == rounds-1 && w%2 == 0:
					// left open
				case (w+r)%4 == 0:
					kick(t, tn, "", c.id, "busy")
					c.waitClosed()
				default:
					c.conn.Close()
				}
			}
		}()
	}
	for r := 0; r < rounds; r++ {
		during()
	}
	wg.Wait()
}

// kick kicks a client through the API. The `connected` frame can reach a
// client before its session is in the membership the API checks, so a 404
// is retried for a bounded time.
func kick(t *testing.T, tn *testNode, app, id, reason string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		code := tn.api(app, testAdminKey, "POST", "/_api/clients/"+id+"/kick", map[string]any{"reason": reason}, nil)
		if code == 200 {
			return
		}
		if code != 404 || time.Now().After(deadline) {
			t.Errorf("kick %s: status %d", id, code)
			return
		}
	}
}

func rebuildOK(t *testing.T, db string) string {
	t.Helper()
	out, errs, err := cli(t, "rebuild", "--db", db)
	if err != nil || !strings.Contains(out, "differences: none") {
		t.Fatalf("rebuild: %v\n%s%s", err, out, errs)
	}
	return out
}

func TestRebuildFindsNoDifferenceOnABusyLogAndFindsCorruption(t *testing.T) {
	tn := startTestNode(t, nil)
	db := tn.cfg.DBPath
	// Rebuild runs beside the live server, during the load.
	busyLog(t, tn, func() { rebuildOK(t, db) })
	out := rebuildOK(t, db)
	if !strings.Contains(out, "open sessions") {
		t.Errorf("rebuild summary: %s", out)
	}
	// The stored projection agrees with the live membership of the server.
	stored, err := projections.LoadSubscriptionState(t.Context(), tn.node.log)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		stored, _ = projections.LoadSubscriptionState(t.Context(), tn.node.log)
		return stored.Applied >= lastMembershipSeq(t, tn)
	})
	live := 0
	for _, ids := range tn.node.members.Sessions() {
		live += len(ids)
	}
	if live == 0 || len(stored.Sessions) != live {
		t.Errorf("stored sessions %d, live sessions %d", len(stored.Sessions), live)
	}

	// Damage the stored projection three ways, beside the running server.
	raw := openRaw(t, db)
	var client, channel string
	if err := raw.QueryRow(`SELECT client, channel FROM subscriptions ORDER BY seq LIMIT 1`).Scan(&client, &channel); err != nil {
		t.Fatal(err)
	}
	mustExec(t, raw, `UPDATE subscriptions SET seq = seq + 1 WHERE client = ? AND channel = ?`, client, channel)
	mustExec(t, raw, `INSERT INTO subscriptions (app, channel, client, seq, ts) VALUES ('default', 'ch-0', 'ghost', 1, 1)`)
	var gone string
	if err := raw.QueryRow(`SELECT client FROM sessions ORDER BY client DESC LIMIT 1`).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	mustExec(t, raw, `DELETE FROM sessions WHERE client = ?`, gone)
	out, _, err = cli(t, "rebuild", "--db", db)
	var ec interface{ ExitCode() int }
	if err == nil || !strings.Contains(err.Error(), "3 difference") || errors.As(err, &ec) {
		t.Fatalf("rebuild of a damaged projection: err %v\n%s; want 3 differences, exit status 1", err, out)
	}
	// One that cannot check says so apart: exit status 2, as diff(1).
	if _, _, err := cli(t, "rebuild", "--db", filepath.Join(t.TempDir(), "none.db")); !errors.As(err, &ec) || ec.ExitCode() != 2 {
		t.Fatalf("rebuild of no database: %v; want exit status 2", err)
	}
	for _, want := range []string{
		"subscription of " + client + " to default/" + channel + " opened at seq",
		"subscription of ghost to default/ch-0 (seq 1) is not open in the log",
		"session default/" + gone + " (opened at seq",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rebuild output lacks %q:\n%s", want, out)
		}
	}
}

// TestRebuildChecksChannelHeads: rebuild finds a channel whose newest
// messages are gone (its head, the newest retained offset, went back, and
// the offsets above it would be given again) and one with a message
// missing from the middle of its retained run; a whole channel checks
// clean.
func TestRebuildChecksChannelHeads(t *testing.T) {
	tn := startTestNode(t, nil)
	for _, ch := range []string{"lost-end", "lost-middle", "fine"} {
		for i := 1; i <= 5; i++ {
			tn.publish("", ch, i)
		}
	}
	out := rebuildOK(t, tn.cfg.DBPath)
	if !strings.Contains(out, "channels: 3, each head checked") {
		t.Errorf("rebuild summary: %s", out)
	}
	tn.stop()
	raw := openRaw(t, tn.cfg.DBPath)
	mustExec(t, raw, `DELETE FROM messages WHERE channel = 'lost-end' AND "offset" >= 4`)
	mustExec(t, raw, `DELETE FROM messages WHERE channel = 'lost-middle' AND "offset" = 3`)
	out, _, err := cli(t, "rebuild", "--db", tn.cfg.DBPath)
	if err == nil || !strings.Contains(err.Error(), "2 difference") {
		t.Fatalf("rebuild of damaged channels: err %v\n%s", err, out)
	}
	for _, want := range []string{
		"channel default/lost-end: head 3, but a broadcast was given offset 5: offsets 4 to 5 would be given again",
		"channel default/lost-middle: retains 4 messages between offsets 1 and 5: 1 are missing from the run",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rebuild output lacks %q:\n%s", want, out)
		}
	}
}

func TestSubscriptionsProjectionCatchesUpFromZero(t *testing.T) {
	tn := startTestNode(t, nil)
	busyLog(t, tn, func() {})
	waitFor(t, func() bool { return tn.node.subs.Applied() == lastMembershipSeq(t, tn) })
	tn.stop()

	// A projection that starts from checkpoint 0 catches up with the log.
	raw := openRaw(t, tn.cfg.DBPath)
	mustExec(t, raw, `DELETE FROM sessions`)
	mustExec(t, raw, `DELETE FROM subscriptions`)
	mustExec(t, raw, `UPDATE projection_checkpoints SET seq = 0`)
	tn = startOn(t, tn.cfg)
	waitFor(t, func() bool { return tn.node.subs.Applied() == lastMembershipSeq(t, tn) })
	rebuildOK(t, tn.cfg.DBPath)

}

// lastMembershipSeq is the sequence of the newest membership event.
func lastMembershipSeq(t *testing.T, tn *testNode) uint64 {
	t.Helper()
	a := tn.audit("", "type=connected,disconnected,subscribed,unsubscribed&limit=1000")
	for a.NextAfter != 0 {
		a = tn.audit("", fmt.Sprintf("type=connected,disconnected,subscribed,unsubscribed&limit=1000&after=%d", a.NextAfter))
	}
	if len(a.Events) == 0 {
		return 0
	}
	return a.Events[len(a.Events)-1].Seq
}

// openRaw opens the database file directly, as an operator's sqlite3 shell
// would, to damage it on purpose.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// A check rebuild could not make, for a flag or an argument it did not
// understand, exits 2 like one it could not read for: 1 is for
// differences found, which a script may page someone for.
func TestRebuildRefusesItsUsageWithStatusTwo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "none.db")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--max-diffs", "x"}, `invalid argument "x" for "--max-diffs"`},
		{[]string{"--dbb", db}, "unknown flag: --dbb"},
		{[]string{"extra"}, `unknown command "extra"`},
		{[]string{"--max-diffs", "-1"}, "--max-diffs -1: want 0 or more"},
		{[]string{"--progress", "sometimes"}, `--progress "sometimes"`},
	} {
		_, _, err := cli(t, append([]string{"rebuild", "--db", db}, tc.args...)...)
		var ec interface{ ExitCode() int }
		if !errors.As(err, &ec) || ec.ExitCode() != 2 || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("rebuild %v: %v; want exit status 2 saying %q", tc.args, err, tc.says)
		}
	}
}

// TestRebuildNotesAProjectionBehind: a stored projection whose checkpoint
// is behind membership events of the log (here set back by hand, as a
// stuck one's would be) is noted, with how many were not compared; one
// behind by broadcasts alone is not (they do not move it).
func TestRebuildNotesAProjectionBehind(t *testing.T) {
	tn := startTestNode(t, nil)
	db := tn.cfg.DBPath
	tn.dial("", "").subscribe(map[string]any{"channel": "room"})
	waitFor(t, func() bool {
		stored, _ := projections.LoadSubscriptionState(t.Context(), tn.node.log)
		return stored.Applied >= lastMembershipSeq(t, tn)
	})
	tn.publish("", "room", 1)
	if out := rebuildOK(t, db); strings.Contains(out, "yet to apply") {
		t.Fatalf("a projection behind by a broadcast only is noted:\n%s", out)
	}
	mustExec(t, openRaw(t, db), `UPDATE projection_checkpoints SET seq = 0`)
	out, _, _ := cli(t, "rebuild", "--db", db)
	if !strings.Contains(out, "has 2 membership events of the log yet to apply") {
		t.Fatalf("a projection set back to 0 is not noted:\n%s", out)
	}
}
