package main

import (
	"fmt"
	"testing"
)

// The channel listings, GET /_api/channels and fazt.realtime.channels(),
// page by name through the channels with history, those with subscribers
// only, and those with both, each once with its head and subscriber count;
// a full page says where the next one starts.
func TestChannelListingPages(t *testing.T) {
	tn := startTestNode(t, map[string]string{"rt": ""})
	tn.writeFiles(map[string]string{"rt/api/main.js": callerJS})
	for _, ch := range []string{"a", "c", "e", "e"} {
		tn.publish("rt", ch, "x")
	}
	c1, c2 := tn.dial("rt", ""), tn.dial("rt", "")
	for _, ch := range []string{"b", "c", "d"} {
		c1.subscribe(map[string]any{"channel": ch})
	}
	c2.subscribe(map[string]any{"channel": "d"})
	// Another app's channel is not listed.
	tn.publish("", "zz", "x")

	type row struct {
		channel           string
		subscribers, head int
	}
	all := []row{{"a", 0, 1}, {"b", 1, 0}, {"c", 1, 1}, {"d", 2, 0}, {"e", 0, 2}}
	decode := func(list []any) []row {
		var rows []row
		for _, r := range list {
			m := r.(map[string]any)
			// A channel without history has an empty epoch, given in the
			// API as in JS (the API left it out).
			if epoch, ok := m["epoch"].(string); !ok || (m["head"] == 0.0) != (epoch == "") || m["first_offset"] != 1.0 {
				t.Fatalf("row %v", m)
			}
			rows = append(rows, row{m["channel"].(string), int(m["subscribers"].(float64)), int(m["head"].(float64))})
		}
		return rows
	}
	// Each lister returns a page and the after of the next one, "" at the
	// end.
	viaAPI := func(after string, limit int) ([]row, string) {
		var out map[string]any
		if code := tn.api("rt", testAdminKey, "GET", fmt.Sprintf("/_api/channels?after=%s&limit=%d", after, limit), nil, &out); code != 200 {
			t.Fatalf("GET /_api/channels after %q limit %d: %d %v", after, limit, code, out)
		}
		rows := decode(out["channels"].([]any))
		next, _ := out["next_after"].(string)
		if (len(rows) == limit) != (next != "") || next != "" && next != rows[len(rows)-1].channel {
			t.Fatalf("API, limit %d, after %q: %d rows, next_after %q", limit, after, len(rows), next)
		}
		return rows, next
	}
	viaJS := func(after string, limit int) ([]row, string) {
		code, out := tn.callJS("rt", "channels", map[string]any{"after": after, "limit": limit})
		if code != 200 {
			t.Fatalf("channels({after: %q, limit: %d}): %d %v", after, limit, code, out)
		}
		rows := decode(out["result"].([]any))
		if len(rows) < limit {
			return rows, ""
		}
		return rows, rows[len(rows)-1].channel
	}
	for name, list := range map[string]func(string, int) ([]row, string){"API": viaAPI, "JS": viaJS} {
		for _, limit := range []int{1, 2, 4, 5, 6} {
			var got []row
			after, pages := "", 0
			for pages = 1; ; pages++ {
				rows, next := list(after, limit)
				got = append(got, rows...)
				if next == "" {
					break
				}
				after = next
			}
			if fmt.Sprint(got) != fmt.Sprint(all) || pages != len(all)/limit+1 {
				t.Fatalf("%s, limit %d: %d pages give %v, want %v", name, limit, pages, got, all)
			}
		}
	}

	// Without options: the first 100.
	if code, out := tn.callJS("rt", "channels"); code != 200 || len(out["result"].([]any)) != len(all) {
		t.Fatalf("channels(): %d %v", code, out)
	}
	var out map[string]any
	if code := tn.api("rt", testAdminKey, "GET", "/_api/channels", nil, &out); code != 200 || len(out["channels"].([]any)) != len(all) || out["next_after"] != nil {
		t.Fatalf("GET /_api/channels: %d %v", code, out)
	}
	// A bad limit is refused.
	if code := tn.api("rt", testAdminKey, "GET", "/_api/channels?limit=many", nil, &out); code != 400 || out["code"] != "bad_request" {
		t.Fatalf("limit=many: %d %v", code, out)
	}
	for _, bad := range []any{-1, 1.5, "many", "5", true} {
		if code, out := tn.callJS("rt", "channels", map[string]any{"limit": bad}); code != 400 || out["code"] != "bad_request" {
			t.Fatalf("channels({limit: %v}): %d %v", bad, code, out)
		}
	}
	// Over 1000 is 1000.
	if code, out := tn.callJS("rt", "channels", map[string]any{"limit": 1e15}); code != 200 || len(out["result"].([]any)) != len(all) {
		t.Fatalf("channels({limit: 1e15}): %d %v", code, out)
	}
	if code, out := tn.callJS("rt", "channels", "a"); code != 400 || out["code"] != "bad_request" {
		t.Fatalf(`channels("a"): %d %v`, code, out)
	}
}
