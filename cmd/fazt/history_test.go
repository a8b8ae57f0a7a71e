package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
)

// cli runs the fazt command line in-process, as main would, and returns
// what it printed.
func cli(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = run(ctx, args, &out, &errb)
	return out.String(), errb.String(), err
}

// mustCLI is cli that fails the test on an error.
func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, errs, err := cli(t, args...)
	if err != nil {
		t.Fatalf("fazt %s: %v\nstderr: %s", strings.Join(args, " "), err, errs)
	}
	return out
}

// jsonLines decodes each line of out into a map.
func jsonLines(t testing.TB, out string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		res = append(res, m)
	}
	return res
}

func lineOffsets(t testing.TB, lines []map[string]any) []uint64 {
	t.Helper()
	var out []uint64
	for _, l := range lines {
		out = append(out, uint64(l["offset"].(float64)))
	}
	return out
}

func TestHistoryCLI(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	var times []int64
	for i := 1; i <= 12; i++ {
		tn.publish("chat", "room", map[string]any{"n": i})
		if i == 6 {
			// A gap so that --since can split the history by time.
			time.Sleep(20 * time.Millisecond)
		}
	}
	tn.publish("chat", "other", "not this channel")
	tn.publish("", "room", "not this app")
	var hist struct {
		Messages []struct {
			Offset    uint64 `json:"offset"`
			Timestamp int64  `json:"timestamp"`
		} `json:"messages"`
	}
	tn.api("chat", testAdminKey, "GET", "/_api/channels/room/history", nil, &hist)
	for _, m := range hist.Messages {
		times = append(times, m.Timestamp)
	}
	db := tn.cfg.DBPath
	base := []string{"history", "--db", db, "--app", "chat", "--channel", "room", "--json"}
	for _, tc := range []struct {
		name string
		args []string
		want []uint64
	}{
		{"all", nil, seqRange(1, 12)},
		{"offset", []string{"--offset", "9"}, seqRange(10, 12)},
		{"offset and limit", []string{"--offset", "2", "--limit", "3"}, seqRange(3, 5)},
		{"last", []string{"--last", "4"}, seqRange(9, 12)},
		{"since unix ms", []string{"--since", strconv.FormatInt(times[6], 10)}, seqRange(7, 12)},
		{"since RFC 3339", []string{"--since", time.UnixMilli(times[6]).UTC().Format(time.RFC3339Nano)}, seqRange(7, 12)},
		{"since relative", []string{"--since", "1h"}, seqRange(1, 12)},
		{"since after the newest", []string{"--since", strconv.FormatInt(times[11]+1, 10)}, nil},
	} {
		got := lineOffsets(t, jsonLines(t, mustCLI(t, append(base, tc.args...)...)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: offsets %v, want %v", tc.name, got, tc.want)
		}
	}
	// The table form shows every message of the channel and its data.
	table := mustCLI(t, "history", "--db", db, "--app", "chat", "--channel", "room", "--last", "1")
	if !strings.HasPrefix(table, "OFFSET") || !strings.Contains(table, `{"n":12}`) || strings.Contains(table, `{"n":11}`) {
		t.Errorf("table:\n%s", table)
	}
	// The newest none is nothing.
	if none := mustCLI(t, "history", "--db", db, "--app", "chat", "--channel", "room", "--last", "0"); none != "" {
		t.Errorf("--last 0 printed:\n%s", none)
	}
	// Errors are one line and fail the command.
	for _, args := range [][]string{
		{"history", "--db", db, "--channel", "room", "--offset", "1", "--last", "2"},
		{"history", "--db", db, "--channel", "room", "--since", "last tuesday"},
		{"history", "--db", db, "--channel", "bad channel!"},
		{"history", "--db", db},
	} {
		_, _, err := cli(t, args...)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("fazt %v: error %v, want one line", args, err)
		}
	}
}

// TestHistoryCLILastPastOneRead asks for more of the newest messages than
// one read of the log returns (events.MaxPage): all of them are printed,
// in order, and --limit keeps the newest.
func TestHistoryCLILastPastOneRead(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	const n = events.MaxPage + 50
	fillChannel(t, tn, "chat", "room", n)
	base := []string{"history", "--db", tn.cfg.DBPath, "--app", "chat", "--channel", "room", "--json"}
	for _, tc := range []struct {
		args     []string
		from, to uint64
	}{
		{[]string{"--last", strconv.Itoa(n - 30)}, 31, n},
		{[]string{"--last", strconv.Itoa(n - 30), "--limit", strconv.Itoa(n - 40)}, 41, n},
		{[]string{"--last", strconv.Itoa(2 * n)}, 1, n},
	} {
		lines := jsonLines(t, mustCLI(t, append(base, tc.args...)...))
		got := lineOffsets(t, lines)
		if len(got) == 0 {
			t.Fatalf("%v printed no messages, want %d to %d", tc.args, tc.from, tc.to)
		}
		if !slices.Equal(got, seqRange(tc.from, tc.to)) {
			t.Errorf("%v: %d offsets from %d to %d, want %d to %d", tc.args, len(got), got[0], got[len(got)-1], tc.from, tc.to)
		}
		if d := lines[0]["data"]; d != float64(tc.from) {
			t.Errorf("%v: the first message's data is %v, want %d", tc.args, d, tc.from)
		}
	}
	if out := mustCLI(t, "history", "--db", tn.cfg.DBPath, "--app", "chat", "--channel", "empty", "--json", "--last", strconv.Itoa(n)); out != "" {
		t.Errorf("--last %d of a channel without history printed %q", n, out)
	}
}

// TestHistoryLastGivesTheNewestK reads the newest K of 150 messages
// through the server API and JS: K of them (all 150 for K = 5000) unless
// limit says fewer (with the default page of 100, last=120 gave 100),
// and none for K = 0 (it gave the oldest 100). last and since each
// filter with offset in both (JS refused two of them), and an offset past
// 63 bits is refused. The page's cap of 1000 is not reached here.
func TestHistoryLastGivesTheNewestK(t *testing.T) {
	tn := startTestNode(t, map[string]string{"rt": ""})
	tn.writeFiles(map[string]string{"rt/api/main.js": callerJS})
	fillChannel(t, tn, "rt", "room", 150)
	viaJS := func(opts map[string]any) []uint64 { t.Helper(); return tn.jsHistory("rt", "room", opts) }
	viaAPI := func(query string) []uint64 {
		t.Helper()
		var offs []uint64
		for _, m := range tn.history("rt", "room", query).Messages {
			offs = append(offs, m.Offset)
		}
		return offs
	}
	for _, tc := range []struct {
		query    string
		opts     map[string]any
		from, to uint64
	}{
		{"last=120", map[string]any{"last": 120}, 31, 150},
		{"last=120&limit=10", map[string]any{"last": 120, "limit": 10}, 141, 150},
		{"last=5000", map[string]any{"last": 5000}, 1, 150},
		{"offset=0", map[string]any{"offset": 0}, 1, 100},
		// last filters with offset: the newest 5 after 147.
		{"last=5&offset=147", map[string]any{"last": 5, "offset": 147}, 148, 150},
	} {
		if got := viaAPI(tc.query); !slices.Equal(got, seqRange(tc.from, tc.to)) {
			t.Errorf("API %s: %d offsets %v..., want %d to %d", tc.query, len(got), got[:min(3, len(got))], tc.from, tc.to)
		}
		if got := viaJS(tc.opts); !slices.Equal(got, seqRange(tc.from, tc.to)) {
			t.Errorf("JS %v: %d offsets %v..., want %d to %d", tc.opts, len(got), got[:min(3, len(got))], tc.from, tc.to)
		}
	}
	// since filters with offset: each narrows what the other gives, so a
	// page of messages since a time continues from its next_offset. Five
	// messages a few milliseconds apart; since is the third's time.
	for i := 1; i <= 5; i++ {
		tn.publish("rt", "timed", i)
		time.Sleep(3 * time.Millisecond)
	}
	var timed struct {
		Messages []struct {
			Timestamp int64 `json:"timestamp"`
		} `json:"messages"`
	}
	tn.api("rt", testAdminKey, "GET", "/_api/channels/timed/history", nil, &timed)
	since := timed.Messages[2].Timestamp
	if timed.Messages[1].Timestamp >= since {
		t.Fatalf("messages 2 and 3 share a time: %v", timed.Messages)
	}
	for _, tc := range []struct {
		offset   uint64
		from, to uint64
	}{{1, 3, 5}, {3, 4, 5}} { // since leaves out 2; offset leaves out 3
		var h historyResp
		tn.api("rt", testAdminKey, "GET", fmt.Sprintf("/_api/channels/timed/history?since=%d&offset=%d", since, tc.offset), nil, &h)
		var got []uint64
		for _, m := range h.Messages {
			got = append(got, m.Offset)
		}
		if !slices.Equal(got, seqRange(tc.from, tc.to)) {
			t.Errorf("API since and offset %d: %v, want %d to %d", tc.offset, got, tc.from, tc.to)
		}
		if got := tn.jsHistory("rt", "timed", map[string]any{"since": since, "offset": tc.offset}); !slices.Equal(got, seqRange(tc.from, tc.to)) {
			t.Errorf("JS since and offset %d: %v, want %d to %d", tc.offset, got, tc.from, tc.to)
		}
	}
	// last=0 is the newest none, as a subscribe's is.
	if got := viaAPI("last=0"); len(got) != 0 {
		t.Errorf("API last=0: %v", got)
	}
	if got := viaJS(map[string]any{"last": 0}); len(got) != 0 {
		t.Errorf("JS last 0: %v", got)
	}
	// No offset or sequence goes past 63 bits; a larger one is refused
	// rather than read as a negative number.
	for _, path := range []string{"/_api/channels/room/history?offset=18446744073709551615", "/_api/audit?after=9223372036854775808"} {
		var e struct{ Error, Code string }
		if code := tn.api("rt", testAdminKey, "GET", path, nil, &e); code != 400 || e.Code != "bad_request" {
			t.Errorf("%s: %d %+v, want 400 bad_request", path, code, e)
		}
	}
}

// failingWriter takes n bytes, then fails every write.
type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// TestHistoryTableFailsLoudly prints 2,500 messages, three pages, as a
// table, and a write that fails, at once or on the second page, is the
// command's error (the table's last flush went unchecked, and the command
// exited 0). That the table now goes out page by page, rather than wait
// whole in memory, is not checked here.
func TestHistoryTableFailsLoudly(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	fillChannel(t, tn, "chat", "room", 2500)
	l, err := events.Open(context.Background(), events.Config{Path: tn.cfg.DBPath, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	if err := printHistory(context.Background(), &out, l, "chat", "room", domain.HistoryQuery{}, 0, false); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 2501 {
		t.Fatalf("%d lines, want the header and 2,500 rows", n)
	}
	firstPage := strings.Index(out.String(), "\n1001 ") // the second page's first row
	if firstPage < 0 {
		t.Fatalf("no row 1001:\n%.300s", out.String())
	}
	// The newest K past one read, of a channel with none, is the header
	// alone, written by the last flush: the one the command did not check.
	if err := printHistory(context.Background(), &failingWriter{}, l, "chat", "empty", domain.HistoryQuery{Last: events.MaxPage + 1}, 0, false); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("the header alone, to a writer that fails: %v", err)
	}
	for _, room := range []int{0, firstPage + 100} { // fails at once; fails on the second page
		w := &failingWriter{n: room}
		err := printHistory(context.Background(), w, l, "chat", "room", domain.HistoryQuery{}, 0, false)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("a writer that fails after %d bytes: %v", room, err)
		}
	}
}

// TestTimesThatWouldBoundNothingAreRefused: a time of 0 or less bounds
// nothing, and unix seconds read as milliseconds are a time in 1970 to
// 1973, so a history, audit or member list asked for since=1700000000, or
// until a date before 1970, answered as if no bound had been given (or, at
// that time, nobody). The server API, a subscribe and JS refuse them with
// bad_request, as the CLI does.
func TestTimesThatWouldBoundNothingAreRefused(t *testing.T) {
	tn := startTestNode(t, map[string]string{"rt": ""})
	tn.writeFiles(map[string]string{"rt/api/main.js": callerJS})
	fillChannel(t, tn, "rt", "room", 3)
	for _, path := range []string{
		"/_api/channels/room/history?since=1700000000",
		"/_api/channels/room/history?until=1969-12-31T23:00:00Z",
		"/_api/channels/room/history?until=-1",
		"/_api/audit?since=1700000000",
		"/_api/audit?until=1960-01-01T00:00:00Z",
		"/_api/channels/room/subscribers?at=1700000000",
	} {
		var e struct{ Error, Code string }
		if code := tn.api("rt", testAdminKey, "GET", path, nil, &e); code != 400 || e.Code != "bad_request" {
			t.Errorf("%s: %d %+v, want 400 bad_request", path, code, e)
		}
	}
	if h := tn.history("rt", "room", "since=1700000000000"); len(h.Messages) != 3 {
		t.Errorf("since unix ms: %d messages", len(h.Messages))
	}
	c := tn.dial("rt", "")
	c.send(map[string]any{"type": "subscribe", "channel": "room", "since": 1700000000, "id": 1})
	if e := c.expect("error"); e.str("code") != "bad_request" || !strings.Contains(e.str("error"), "unix seconds") {
		t.Errorf("subscribe since unix seconds: %v", e)
	}
	for _, opts := range []map[string]any{{"since": 1700000000}, {"until": 99999999999}} {
		if code, out := tn.callJS("rt", "history", "room", opts); code != 400 || out["code"] != "bad_request" {
			t.Errorf("JS history %v: %d %v", opts, code, out)
		}
	}
}

// TestChannelPathsAreTakenAsGiven: channel names may hold "/", so a
// channel's routes can have "//", "." and ".." segments, which Go's mux
// cleans, answering a redirect to another channel's path: GET
// /_api/channels//orders/history went to channel "orders". The routes
// now take the path as given, encoded or not.
func TestChannelPathsAreTakenAsGiven(t *testing.T) {
	tn := startTestNode(t, nil)
	names := []string{"orders", "/orders", "orders/", "a//b", "a/./b", "a/../b", "b", ".", ".."}
	for i, ch := range names {
		for range i + 1 {
			tn.publish("", ch, i)
		}
	}
	for i, ch := range names {
		for _, p := range []string{ch, url.PathEscape(ch)} {
			var h struct {
				Channel string
				Head    uint64
			}
			if code, body := tn.request(http.DefaultClient, "", testAdminKey, "GET", "/_api/channels/"+p+"/history", nil, &h); code != 200 || h.Channel != ch || h.Head != uint64(i+1) {
				t.Errorf("history of %q as %q: %d %s", ch, p, code, body)
			}
			var s struct{ Channel string }
			if code, body := tn.request(http.DefaultClient, "", testAdminKey, "GET", "/_api/channels/"+p+"/subscribers", nil, &s); code != 200 || s.Channel != ch {
				t.Errorf("subscribers of %q as %q: %d %s", ch, p, code, body)
			}
		}
	}
	// Other methods get the API's JSON 405, odd paths included (the mux
	// would redirect those).
	for _, p := range []string{"/_api/channels/orders/history", "/_api/channels//orders/history"} {
		var e struct{ Code string }
		if code, body := tn.request(noRedirects, "", testAdminKey, "POST", p, nil, &e); code != http.StatusMethodNotAllowed || e.Code != "method_not_allowed" {
			t.Errorf("POST %s: %d %s, want 405 method_not_allowed", p, code, body)
		}
	}
	// Other routes are the mux's, which cleans as before.
	if code, _ := tn.request(noRedirects, "", testAdminKey, "GET", "/_api//channels", nil, nil); code != http.StatusMovedPermanently && code != http.StatusTemporaryRedirect {
		t.Errorf("GET /_api//channels: %d, want the mux's redirect", code)
	}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// A method that an API route does not take gets 405, with the methods it
// takes in Allow and a JSON error as every other answer of the API; a
// path no route has gets 404. Before, both were 404 not_found, which
// told someone who sent GET /_api/publish that there was no such
// endpoint.
func TestWrongMethodIsNotAllowed(t *testing.T) {
	tn := startTestNode(t, nil)
	for _, c := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/_api/publish", 405, "POST"},
		{"PUT", "/_api/publish-batch", 405, "POST"},
		{"GET", "/_api/broadcast-all", 405, "POST"},
		{"POST", "/_api/channels", 405, "GET, HEAD"},
		{"DELETE", "/_api/audit", 405, "GET, HEAD"},
		{"GET", "/_api/clients/c1/kick", 405, "POST"},
		{"DELETE", "/_api/channels/room/subscribers", 405, "GET, HEAD"},
		{"POST", "/_api/channels/room/nothing", 404, ""},
		{"POST", "/_api/nothing", 404, ""},
		{"GET", "/_api/", 404, ""},
	} {
		req, err := http.NewRequest(c.method, tn.srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error, Code string }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		want := "not_found"
		if c.code == 405 {
			want = "method_not_allowed"
		}
		if resp.StatusCode != c.code || err != nil || e.Code != want || e.Error == "" || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q, %+v (%v); want %d, Allow %q, code %s", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), e, err, c.code, c.allow, want)
		}
	}
}

// History's parameters as clients send them: an RFC 3339 time with its
// "+" unencoded, which the query string makes a space, is the time meant
// (it was refused as no time); a reverse that is neither true nor false
// is refused (reverse=TRUE was read as false, oldest first).
func TestHistoryParametersAsSent(t *testing.T) {
	tn := startTestNode(t, nil)
	fillChannel(t, tn, "", "room", 3)
	offsets := func(h historyResp) (o []uint64) {
		for _, m := range h.Messages {
			o = append(o, m.Offset)
		}
		return o
	}
	for q, want := range map[string][]uint64{
		"since=2000-01-01T02:00:00+02:00":   {1, 2, 3},
		"since=2000-01-01T02:00:00%2B02:00": {1, 2, 3},
		"until=2000-01-01T02:00:00+02:00":   nil,
		"reverse=1":                         {3, 2, 1},
		"reverse=true":                      {3, 2, 1},
		"reverse=0":                         {1, 2, 3},
		"reverse=false":                     {1, 2, 3},
	} {
		if got := offsets(tn.history("", "room", q)); !slices.Equal(got, want) {
			t.Errorf("history?%s: offsets %v, want %v", q, got, want)
		}
	}
	for _, q := range []string{"reverse=TRUE", "reverse=yes"} {
		var e struct{ Error, Code string }
		if code := tn.api("", testAdminKey, "GET", "/_api/channels/room/history?"+q, nil, &e); code != 400 || e.Code != "bad_request" {
			t.Errorf("history?%s: %d %+v, want 400 bad_request", q, code, e)
		}
	}
}

// TestHistoryNotesAGap: asked from an offset or a time before what the
// channel retains, history prints what is retained, and says on stderr
// which offsets are gone, as a subscribe says truncated. Before, it
// printed from the oldest retained message without a word.
func TestHistoryNotesAGap(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": `{"retention":{"max_messages":5}}`}, func(c *nodeConfig) { c.RetentionInterval = 50 * time.Millisecond })
	start := time.Now().UnixMilli()
	for i := 1; i <= 12; i++ {
		tn.publish("chat", "room", map[string]any{"n": i})
		if i == 7 {
			// The oldest retained message, 8, later than the trimmed.
			time.Sleep(20 * time.Millisecond)
		}
	}
	base := []string{"history", "--db", tn.cfg.DBPath, "--app", "chat", "--channel", "room", "--json"}
	var kept []map[string]any
	waitFor(t, func() bool {
		kept = jsonLines(t, mustCLI(t, base...))
		got := lineOffsets(t, kept)
		return len(got) > 0 && got[0] == 8
	})
	eighth := strconv.FormatInt(int64(kept[0]["timestamp"].(float64)), 10)
	for _, tc := range []struct {
		name string
		args []string
		note string // "" for none
	}{
		{"offset before", []string{"--offset", "2"}, "fazt history: offsets 3 to 7 of room are no longer retained (dropped by retention or a purge); printing from 8\n"},
		{"offset just before", []string{"--offset", "7"}, ""},
		{"offset two before", []string{"--offset", "6"}, "fazt history: offset 7 of room is no longer retained (dropped by retention or a purge); printing from 8\n"},
		{"since before", []string{"--since", strconv.FormatInt(start, 10)}, "fazt history: messages of room at or after --since were dropped (by retention or a purge), up to offset 7; printing from 8\n"},
		{"since the oldest retained", []string{"--since", eighth}, ""},
		{"all", nil, ""},
	} {
		out, errs, err := cli(t, append(base, tc.args...)...)
		if got := lineOffsets(t, jsonLines(t, out)); err != nil || errs != tc.note || !slices.Equal(got, seqRange(8, 12)) {
			t.Errorf("%s: offsets %v, stderr %q, %v; want 8 to 12 and %q", tc.name, got, errs, err, tc.note)
		}
	}
}

// A page of history stops at the message that takes its data to 8 MiB
// (domain.MaxPageBytes), and says where to go on (next_offset) though it
// holds fewer messages than asked for; `fazt history` pages on past it.
// Before, a page of 1000 messages of 16 MiB was read whole into memory:
// 16 GiB for one request.
func TestHistoryPagesStopAtTheirBytes(t *testing.T) {
	tn := startTestNode(t, map[string]string{"big": `{"limits":{"max_message_bytes":1048576}}`})
	const n, size = 20, 600_000
	for sent := 0; sent < n; sent += 5 {
		var msgs []any
		for i := sent + 1; i <= sent+5; i++ {
			msgs = append(msgs, "files", fmt.Sprintf("%d%s", i, strings.Repeat("x", size-2-len(fmt.Sprint(i)))))
		}
		if code := tn.api("big", testAdminKey, "POST", "/_api/publish-batch", batchOf(msgs...), nil); code != 200 {
			t.Fatalf("publish: status %d", code)
		}
	}
	perPage := (domain.MaxPageBytes + size - 1) / size // the message that reaches the bound is in
	var got []uint64
	for after := uint64(0); ; {
		var page struct {
			Messages []struct {
				Offset uint64 `json:"offset"`
			} `json:"messages"`
			NextOffset *uint64 `json:"next_offset"`
		}
		if code := tn.api("big", testAdminKey, "GET", fmt.Sprintf("/_api/channels/files/history?limit=1000&offset=%d", after), nil, &page); code != 200 {
			t.Fatalf("history: status %d", code)
		}
		if len(got) == 0 && len(page.Messages) != perPage {
			t.Fatalf("the first page holds %d messages, want %d", len(page.Messages), perPage)
		}
		for _, m := range page.Messages {
			got = append(got, m.Offset)
		}
		if page.NextOffset == nil {
			break
		}
		if *page.NextOffset != got[len(got)-1] {
			t.Fatalf("next_offset %d after offset %d", *page.NextOffset, got[len(got)-1])
		}
		after = *page.NextOffset
	}
	if !slices.Equal(got, seqRange(1, n)) {
		t.Fatalf("paged through %v, want 1 to %d", got, n)
	}
	cliOffsets := lineOffsets(t, jsonLines(t, mustCLI(t, "history", "--db", tn.cfg.DBPath, "--app", "big", "--channel", "files", "--json")))
	if !slices.Equal(cliOffsets, seqRange(1, n)) {
		t.Fatalf("fazt history printed %v, want 1 to %d", cliOffsets, n)
	}
}
