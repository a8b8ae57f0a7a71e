package main

import (
	"encoding/csv"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// auditScenario drives a real server through connections, subscriptions,
// broadcasts, an unsubscribe, a kick and a disconnect in app chat, with
// noise in app default, and returns the node and the two clients.
func auditScenario(t *testing.T) (*testNode, *client, *client) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	a := tn.dial("chat", "")
	b := tn.dial("chat", "")
	a.subscribe(map[string]any{"channel": "x"})
	b.subscribe(map[string]any{"channel": "y"})
	tn.publish("chat", "x", map[string]any{"text": "hello, x"})
	tn.publish("chat", "y", 2)
	a.messages("x", 1)
	a.send(`{"type":"unsubscribe","channel":"x"}`)
	a.expect("unsubscribed")
	kick(t, tn, "chat", b.id, "spam")
	b.waitClosed()
	a.conn.Close()
	waitFor(t, func() bool { return len(tn.audit("chat", "type=disconnected").Events) == 2 })
	other := tn.dial("", "")
	other.subscribe(map[string]any{"channel": "x"})
	tn.publish("", "x", "noise")
	return tn, a, b
}

func auditSeqs(t testing.TB, out string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, e := range jsonLines(t, out) {
		seqs = append(seqs, uint64(e["seq"].(float64)))
	}
	return seqs
}

func TestAuditCLI(t *testing.T) {
	tn, a, b := auditScenario(t)
	db := tn.cfg.DBPath
	all := tn.audit("chat", "limit=1000")
	if len(all.Events) != 10 {
		t.Fatalf("scenario has %d events in chat, want 10: %v", len(all.Events), all.types())
	}
	mid := all.Events[6].Time
	for _, q := range []struct{ cli, api string }{
		{"", ""},
		{"--type subscribed", "type=subscribed"},
		{"--type subscribed,unsubscribed --channel x", "type=subscribed,unsubscribed&channel=x"},
		{"--type kicked", "type=kicked"},
		{"--type client.kicked.v1,disconnected", "type=kicked,disconnected"},
		{"--channel y", "channel=y"},
		{"--client " + b.id, "client=" + b.id},
		{"--client " + a.id + " --type connected", "client=" + a.id + "&type=connected"},
		{fmt.Sprintf("--since %d", mid), fmt.Sprintf("since=%d", mid)},
		{fmt.Sprintf("--until %d", mid), fmt.Sprintf("until=%d", mid)},
		{"--since " + time.UnixMilli(mid).UTC().Format(time.RFC3339Nano), fmt.Sprintf("since=%d", mid)},
		{"--since " + time.UnixMilli(mid).Local().Format("2006-01-02T15:04:05.000"), fmt.Sprintf("since=%d", mid)},
		{"--since 1h", ""},
		{"--until 1h", "until=1"},
		{"--after 5", "after=5"},
	} {
		args := append([]string{"audit", "--db", db, "--app", "chat", "--json"}, strings.Fields(q.cli)...)
		got := auditSeqs(t, mustCLI(t, args...))
		var want []uint64
		for _, e := range tn.audit("chat", "limit=1000&"+q.api).Events {
			want = append(want, e.Seq)
		}
		if !slices.Equal(got, want) {
			t.Errorf("audit %s: %v, want %v", q.cli, got, want)
		}
	}
	// Some answers checked by hand, not against the API.
	kicks := jsonLines(t, mustCLI(t, "audit", "--db", db, "--app", "chat", "--type", "kicked", "--json"))
	if len(kicks) != 1 || kicks[0]["client"] != b.id || kicks[0]["type"] != "client.kicked.v1" ||
		kicks[0]["event"].(map[string]any)["reason"] != "spam" {
		t.Errorf("kicks: %v", kicks)
	}
	// Without --app, every app's events; with --app default, only the noise.
	if n := len(auditSeqs(t, mustCLI(t, "audit", "--db", db, "--json"))); n != 10+3 {
		t.Errorf("audit of every app: %d events, want 13", n)
	}
	if got := auditSeqs(t, mustCLI(t, "audit", "--db", db, "--app", "default", "--type", "broadcast", "--json")); len(got) != 1 {
		t.Errorf("default app broadcasts: %v", got)
	}

	// The table: a header and one row per event, with the summary.
	table := mustCLI(t, "audit", "--db", db, "--app", "chat")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 11 || !regexp.MustCompile(`^TIME\s+SEQ\s+TYPE\s+APP\s+CHANNEL\s+CLIENT\s+SUMMARY$`).MatchString(lines[0]) {
		t.Fatalf("table:\n%s", table)
	}
	kickRow := regexp.MustCompile(`\d+\s+kicked\s+chat\s+-\s+` + b.id + `\s+reason=spam by=admin_key`)
	if !kickRow.MatchString(table) || !strings.Contains(table, `data={"text":"hello, x"}`) {
		t.Errorf("table lacks the kick or the broadcast summary:\n%s", table)
	}

	// CSV: a header, one record per event, the event as JSON.
	recs, err := csv.NewReader(strings.NewReader(mustCLI(t, "audit", "--db", db, "--app", "chat", "--csv", "--type", "disconnected"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "seq" || recs[1][2] != "client.disconnected.v1" || !strings.Contains(recs[1][7], `"reason"`) {
		t.Errorf("csv: %v", recs)
	}

	// Paging with --after and --limit returns every event exactly once; the
	// next --after is printed on stderr while more follow.
	var paged []uint64
	after := "0"
	next := regexp.MustCompile(`--after (\d+)`)
	for i := 0; i < 20; i++ {
		out, errs, err := cli(t, "audit", "--db", db, "--app", "chat", "--json", "--limit", "5", "--after", after)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, auditSeqs(t, out)...)
		m := next.FindStringSubmatch(errs)
		if m == nil {
			break
		}
		after = m[1]
	}
	var want []uint64
	for _, e := range all.Events {
		want = append(want, e.Seq)
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged %v, want %v", paged, want)
	}
	// A limit that takes exactly what is left says nothing more follows.
	if _, errs, err := cli(t, "audit", "--db", db, "--app", "chat", "--json", "--limit", strconv.Itoa(len(want))); err != nil || strings.Contains(errs, "more events follow") {
		t.Errorf("--limit %d of %d events: %q, %v", len(want), len(want), errs, err)
	}
	if _, errs, _ := cli(t, "audit", "--db", db, "--app", "chat", "--json", "--limit", strconv.Itoa(len(want)-1)); !strings.Contains(errs, "more events follow") {
		t.Errorf("--limit %d of %d events: %q", len(want)-1, len(want), errs)
	}
	if _, _, err := cli(t, "audit", "--db", db, "--type", "nonsense"); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("unknown type: %v", err)
	}
	if _, _, err := cli(t, "audit", "--db", db, "--json", "--csv"); err == nil {
		t.Errorf("--json with --csv succeeded")
	}
}

// The audit's table says why the server ended a subscription; a client's
// own unsubscribe has nothing to say.
func TestAuditSummaryOfAnUnsubscribe(t *testing.T) {
	if s := summary(&domain.ChannelUnsubscribed{App: "a", Channel: "private-x", Client: "c", Reason: domain.ReasonTokenExpired}); s != "reason=token_expired" {
		t.Errorf("summary of an expired subscription's end: %q", s)
	}
	if s := summary(&domain.ChannelUnsubscribed{App: "a", Channel: "x", Client: "c"}); s != "" {
		t.Errorf("summary of a client's unsubscribe: %q", s)
	}
}

// A kick's reason is anyone's text with an app key or an app's JS: in the
// table it cannot make up rows, shift columns or reach the terminal.
func TestAuditSummaryShowsTextAsText(t *testing.T) {
	reason := "spam\n2026-01-02 10:00:00.000  5  connected  chat\t\x1b[2J\u202eevil\xff ok é \ufffd"
	got := summary(&domain.ClientKicked{App: "a", Client: "c", Reason: reason, By: domain.Actor{Kind: "admin_key"}})
	want := `reason=spam\n2026-01-02 10:00:00.000  5  connected  chat\t\x1b[2J\u202eevil\xff ok é ` + "\ufffd by=admin_key"
	if got != want {
		t.Errorf("summary:\n got %s\nwant %s", got, want)
	}
	for _, s := range []string{"", "plain text", "é and 漢字", "\ufffd", `a\x1b`} {
		if p := printable(s); p != s {
			t.Errorf("printable(%q) = %q, want it as it was", s, p)
		}
	}
	if p := oneLine("a\n\tb\x1b[0m\x7f", 80); p != `a b\x1b[0m\x7f` {
		t.Errorf("oneLine: %q", p)
	}
}
