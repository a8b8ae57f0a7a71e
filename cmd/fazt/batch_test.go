package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type batchResp struct {
	Results []struct {
		Channel string `json:"channel"`
		published
	} `json:"results"`
	Error, Code string
}

func batchOf(msgs ...any) map[string]any {
	out := make([]any, 0, len(msgs)/2)
	for i := 0; i+1 < len(msgs); i += 2 {
		out = append(out, map[string]any{"channel": msgs[i], "data": msgs[i+1]})
	}
	return map[string]any{"messages": out}
}

func TestPublishBatch(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": `{"api_keys":{"backend":"chat-key"}}`})
	c := tn.dial("chat", "")
	c.subscribe(map[string]any{"channel": "a"})
	c.subscribe(map[string]any{"channel": "b"})
	tn.publish("chat", "a", 0)

	var r batchResp
	if code := tn.api("chat", "chat-key", "POST", "/_api/publish-batch", batchOf("a", 1, "b", 2, "a", 3), &r); code != 200 {
		t.Fatalf("status %d: %s %s", code, r.Code, r.Error)
	}
	if len(r.Results) != 3 {
		t.Fatalf("results %+v", r.Results)
	}
	for i, want := range []struct {
		channel string
		offset  uint64
	}{{"a", 2}, {"b", 1}, {"a", 3}} {
		got := r.Results[i]
		if got.Channel != want.channel || got.Offset != want.offset || got.Epoch == "" {
			t.Errorf("result %d: %+v, want %s offset %d", i, got, want.channel, want.offset)
		}
		if i > 0 && got.Seq != r.Results[i-1].Seq+1 {
			t.Errorf("result %d: seq %d after %d; one transaction gives consecutive sequences", i, got.Seq, r.Results[i-1].Seq)
		}
	}

	// The subscriber gets each message on its channel, in order, once.
	byChannel := map[string][]frame{}
	for range 4 {
		f := c.expect("message")
		byChannel[f.str("channel")] = append(byChannel[f.str("channel")], f)
	}
	a, b := byChannel["a"], byChannel["b"]
	if got := offsets(a); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("a offsets %v", got)
	}
	if a[1]["data"] != float64(1) || a[2]["data"] != float64(3) {
		t.Fatalf("a data %v, %v", a[1]["data"], a[2]["data"])
	}
	if len(b) != 1 || b[0]["data"] != float64(2) || b[0].num("offset") != 1 {
		t.Fatalf("b %v", b)
	}
	c.quiet(100 * time.Millisecond)

	// The audit names the key that published each message.
	au := tn.audit("chat", "type=broadcast")
	if len(au.Events) != 4 {
		t.Fatalf("%d broadcasts in the audit", len(au.Events))
	}
	for _, e := range au.Events[1:] {
		if pub := e.Event["publisher"].(map[string]any); pub["id"] != "backend" {
			t.Fatalf("publisher %v", pub)
		}
	}
}

// A batch that fails a check is refused as a whole: nothing of it is
// committed, and the error names the message.
func TestPublishBatchRefusals(t *testing.T) {
	tn := startTestNode(t, map[string]string{"chat": ""})
	nested := func(depth int) any {
		var v any = 1
		for range depth {
			v = []any{v}
		}
		return v
	}
	many := make([]any, 0, 2002)
	for i := range 1001 {
		many = append(many, "c", i)
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		names  string
	}{
		{"bad channel", batchOf("c", 1, "c", 2, "bad channel", 3), 400, "invalid_channel", "messages[2]"},
		{"no data", map[string]any{"messages": []any{map[string]any{"channel": "c", "data": 1}, map[string]any{"channel": "c"}}}, 400, "bad_request", "messages[1]"},
		{"null data", batchOf("c", nil), 400, "bad_request", "messages[0]"},
		{"data over the limit", batchOf("c", 1, "c", strings.Repeat("x", 70000)), 413, "too_large", "messages[1]"},
		{"too many", batchOf(many...), 413, "too_large", "at most 1000"},
		{"empty", map[string]any{"messages": []any{}}, 400, "bad_request", "needs messages"},
		{"no messages", map[string]any{"channel": "c", "data": 1}, 400, "bad_request", "needs messages"},
		{"not an object", "x", 400, "bad_request", "not the JSON"},
		{"body over 4 MiB", batchOf(slices.Repeat([]any{"c", strings.Repeat("x", 60000)}, 80)...), 413, "too_large", "body is over"},
		{"data too deep", batchOf("c", nested(32)), 400, "bad_request", "deeper"},
		// What only the log checks is named by its index too.
		{"a number past a double", json.RawMessage(`{"messages":[{"channel":"c","data":1},{"channel":"c","data":{"n":1e400}}]}`), 400, "bad_request", "messages[1]: message data: the number 1e400"},
		{"data not UTF-8", json.RawMessage("{\"messages\":[{\"channel\":\"c\",\"data\":1},{\"channel\":\"c\",\"data\":2},{\"channel\":\"c\",\"data\":\"\xff\"}]}"), 400, "bad_request", "messages[2]: message data is not valid UTF-8"},
	} {
		var e struct{ Error, Code string }
		status, raw := tn.request(tn.srv.Client(), "chat", testAdminKey, "POST", "/_api/publish-batch", tc.body, nil)
		_ = json.Unmarshal([]byte(raw), &e)
		if status != tc.status || e.Code != tc.code || !strings.Contains(e.Error, tc.names) {
			t.Errorf("%s: %d %s %q; want %d %s naming %q", tc.name, status, e.Code, e.Error, tc.status, tc.code, tc.names)
		}
	}
	if a := tn.audit("chat", "type=broadcast"); len(a.Events) != 0 {
		t.Fatalf("refused batches committed %d broadcasts", len(a.Events))
	}
	var ch struct {
		Channels []map[string]any `json:"channels"`
	}
	tn.api("chat", testAdminKey, "GET", "/_api/channels", nil, &ch)
	if len(ch.Channels) != 0 {
		t.Fatalf("refused batches made channels %v", ch.Channels)
	}

	// Data as deep as a single publish takes is taken in a batch too.
	var r batchResp
	if code := tn.api("chat", testAdminKey, "POST", "/_api/publish-batch", batchOf("c", nested(31)), &r); code != 200 {
		t.Fatalf("data 31 deep: %d %s %s", code, r.Code, r.Error)
	}
	if code := tn.api("chat", testAdminKey, "POST", "/_api/publish", map[string]any{"channel": "c", "data": nested(31)}, nil); code != 200 {
		t.Fatalf("single publish of data 31 deep: %d", code)
	}
	var e struct{ Code string }
	if tn.api("chat", testAdminKey, "POST", "/_api/publish", map[string]any{"channel": "c", "data": nested(32)}, &e); e.Code != "bad_request" {
		t.Fatalf("single publish of data 32 deep: %s", e.Code)
	}
	if h := tn.history("chat", "c", ""); len(h.Messages) != 2 {
		t.Fatalf("history %d messages, want 2", len(h.Messages))
	}
}

// Data from stdin over what any server takes is refused as that, not cut
// at the limit and then called bad JSON.
func TestPublishOfTooMuchFromStdin(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "big.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	big := `"` + strings.Repeat("x", maxStdinData) + `"`
	if _, err := f.WriteString(big); err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekStart)
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	_, _, err = cli(t, "publish", "--server", "127.0.0.1:1", "--admin-key", "k", "--channel", "room", "--data", "-")
	if err == nil || !strings.Contains(err.Error(), "data from stdin is over 16778240 bytes") {
		t.Errorf("publish of %d bytes from stdin: %v", len(big), err)
	}
}
