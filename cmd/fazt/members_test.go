package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// tick makes sure the next event commits in a later millisecond than the
// previous one, so that a time between two phases exists.
func tick() { time.Sleep(3 * time.Millisecond) }

// lastEventTime returns the commit time of the newest event of app.
func (tn *testNode) lastEventTime(app string) int64 {
	tn.t.Helper()
	evs := tn.audit(app, "limit=1000").Events
	return evs[len(evs)-1].Time
}

// membersAt asks both the API and the CLI who was subscribed to channel at
// time at, checks that they agree, and returns the answer sorted.
func membersAt(t *testing.T, tn *testNode, channel string, at int64) []string {
	t.Helper()
	var api struct{ Subscribers []string }
	if code := tn.api("", testAdminKey, "GET", fmt.Sprintf("/_api/channels/%s/subscribers?at=%d", channel, at), nil, &api); code != 200 {
		t.Fatalf("subscribers at %d: status %d", at, code)
	}
	out := mustCLI(t, "members", "--db", tn.cfg.DBPath, "--channel", channel, "--at", fmt.Sprint(at))
	cliIDs := strings.Fields(out)
	sort.Strings(cliIDs)
	if api.Subscribers == nil {
		api.Subscribers = []string{}
	}
	if cliIDs == nil {
		cliIDs = []string{}
	}
	if !slices.Equal(api.Subscribers, cliIDs) {
		t.Fatalf("at %d the API says %v, the CLI %v", at, api.Subscribers, cliIDs)
	}
	return cliIDs
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func TestMembersAtTime(t *testing.T) {
	tn := startTestNode(t, nil)
	tn.publish("", "other", "so that the log is not empty")
	tick()
	t0 := tn.lastEventTime("")

	a, b := tn.dial("", ""), tn.dial("", "")
	a.subscribe(map[string]any{"channel": "room"})
	b.subscribe(map[string]any{"channel": "room"})
	b.subscribe(map[string]any{"channel": "other"})
	t1 := tn.lastEventTime("")
	tick()

	// A kick ends b's subscriptions at the kick's disconnection.
	kick(t, tn, "", b.id, "test")
	b.waitClosed()
	waitFor(t, func() bool { return len(tn.audit("", "type=disconnected&client="+b.id).Events) == 1 })
	t2 := tn.lastEventTime("")
	tick()

	// An unsubscribe ends a's; subscribing again starts it again.
	a.send(`{"type":"unsubscribe","channel":"room"}`)
	a.expect("unsubscribed")
	t3 := tn.lastEventTime("")
	tick()
	a.subscribe(map[string]any{"channel": "room"})
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "room"})
	t4 := tn.lastEventTime("")
	tick()

	// A crash: the sessions of a and c are closed as server_restart by the
	// next start.
	tn.node.ws = nil
	tn2 := tn.restart()
	a.conn.Close()
	c.conn.Close()
	tick()
	d := tn2.dial("", "")
	d.subscribe(map[string]any{"channel": "room"})
	t5 := tn2.lastEventTime("")

	for _, tc := range []struct {
		name string
		at   int64
		want []string
	}{
		{"before anyone", t0, nil},
		{"a and b joined", t1, sorted(a.id, b.id)},
		{"just before the kick", t2 - 1, sorted(a.id, b.id)},
		{"after the kick", t2, sorted(a.id)},
		{"after a left", t3, nil},
		{"a rejoined, c joined", t4, sorted(a.id, c.id)},
		{"after the restart", t5, sorted(d.id)},
	} {
		got := membersAt(t, tn2, "room", tc.at)
		if tc.want == nil {
			tc.want = []string{}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s (at %d): %v, want %v", tc.name, tc.at, got, tc.want)
		}
	}
	// b was in "other" until the kick too.
	if got := membersAt(t, tn2, "other", t1); !slices.Equal(got, []string{b.id}) {
		t.Errorf("other at t1: %v", got)
	}
	if got := membersAt(t, tn2, "other", t2); len(got) != 0 {
		t.Errorf("other after the kick: %v", got)
	}
	// Times in every accepted form; JSON output.
	out := mustCLI(t, "members", "--db", tn2.cfg.DBPath, "--channel", "room", "--json", "--at",
		time.UnixMilli(t1).UTC().Format(time.RFC3339Nano))
	if got := jsonLines(t, out); len(got) != 1 || len(got[0]["subscribers"].([]any)) != 2 {
		t.Errorf("members --json at %d: %s", t1, out)
	}
	if now := strings.Fields(mustCLI(t, "members", "--db", tn2.cfg.DBPath, "--channel", "room")); !slices.Equal(now, []string{d.id}) {
		t.Errorf("members now: %v, want [%s]", now, d.id)
	}
	if got := strings.Fields(mustCLI(t, "members", "--db", tn2.cfg.DBPath, "--channel", "room", "--at", "1h")); len(got) != 0 {
		t.Errorf("members an hour ago: %v", got)
	}
}
