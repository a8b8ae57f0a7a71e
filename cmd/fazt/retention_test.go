package main

import (
	"slices"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/transport/apps"
)

type historyResp struct {
	Head        uint64 `json:"head"`
	FirstOffset uint64 `json:"first_offset"`
	Epoch       string `json:"epoch"`
	Messages    []struct {
		Offset uint64 `json:"offset"`
	} `json:"messages"`
}

func (tn *testNode) history(app, channel, query string) historyResp {
	tn.t.Helper()
	var h historyResp
	if code := tn.api(app, testAdminKey, "GET", "/_api/channels/"+channel+"/history?"+query, nil, &h); code != 200 {
		tn.t.Fatalf("history of %s: status %d", channel, code)
	}
	return h
}

func TestRetentionTrimsAndLateSubscribersAreTold(t *testing.T) {
	tn := startTestNode(t, map[string]string{
		"chat": `{"retention": {"max_messages": 5}}`,
		"keep": `{"retention": {"max_messages": -1, "max_age": "forever"}}`,
	}, func(c *nodeConfig) {
		c.Retention = apps.Retention{MaxMessages: 3} // the server default
		c.RetentionInterval = 20 * time.Millisecond
	})
	// A subscriber that stays through the trimming sees every message.
	early := tn.dial("chat", "")
	early.subscribe(map[string]any{"channel": "room", "offset": 0})
	for i := 1; i <= 12; i++ {
		tn.publish("chat", "room", i)
		tn.publish("keep", "room", i)
		tn.publish("", "room", i)
	}
	if got := offsets(early.messages("room", 12)); !slices.Equal(got, seqRange(1, 12)) {
		t.Fatalf("early subscriber got %v", got)
	}
	waitFor(t, func() bool {
		return tn.history("chat", "room", "").FirstOffset == 8 && tn.history("", "room", "").FirstOffset == 10
	})
	// What stays keeps its offsets; the head does not move.
	h := tn.history("chat", "room", "offset=0")
	var kept []uint64
	for _, m := range h.Messages {
		kept = append(kept, m.Offset)
	}
	if h.Head != 12 || !slices.Equal(kept, seqRange(8, 12)) {
		t.Fatalf("chat/room after retention: head %d, offsets %v", h.Head, kept)
	}
	if h := tn.history("keep", "room", ""); h.FirstOffset != 1 || len(h.Messages) != 12 {
		t.Fatalf("keep/room (no retention): first %d, %d messages", h.FirstOffset, len(h.Messages))
	}
	// The next broadcast continues the offsets.
	if p := tn.publish("chat", "room", 13); p.Offset != 13 {
		t.Fatalf("offset after trimming: %d", p.Offset)
	}
	waitFor(t, func() bool { return tn.history("chat", "room", "").FirstOffset == 9 })

	// A late subscriber asking for a trimmed offset is told, and gets what
	// is retained, from first_offset on.
	late := tn.dial("chat", "")
	s := late.subscribe(map[string]any{"channel": "room", "offset": 2})
	if s["truncated"] != true || s.num("first_offset") != 9 || s.num("replay") != 5 {
		t.Fatalf("late subscribe: %v", s)
	}
	if got := offsets(late.messages("room", 5)); !slices.Equal(got, seqRange(9, 13)) {
		t.Fatalf("late subscriber replay: %v", got)
	}
	fresh := tn.dial("chat", "")
	if s := fresh.subscribe(map[string]any{"channel": "room", "offset": 10}); s["truncated"] != false || s.num("replay") != 3 {
		t.Fatalf("subscribe within retention: %v", s)
	}
	if s := tn.dial("chat", "").subscribe(map[string]any{"channel": "room", "last": 7}); s["truncated"] != true || s.num("replay") != 5 {
		t.Fatalf("subscribe last 7 of 5 retained: %v", s)
	}

	// By time: a subscribe since a time at or before the newest dropped
	// message (offset 8) is told; one after it is not, whether or not
	// offset 9 shares its millisecond.
	var dropped int64
	for _, e := range tn.audit("chat", "type=broadcast&limit=1000").Events {
		if e.Event["offset"] == float64(8) {
			dropped = e.Time
		}
	}
	for _, tc := range []struct {
		since     int64
		truncated bool
	}{{0, true}, {dropped - 1, true}, {dropped, true}, {dropped + 1, false}} {
		s := tn.dial("chat", "").subscribe(map[string]any{"channel": "room", "since": tc.since})
		if s["truncated"] != tc.truncated {
			t.Errorf("subscribe since %d (offset 8 at %d): %v", tc.since, dropped, s)
		}
	}

	// The audit keeps every broadcast event and every session event.
	if n := len(tn.audit("chat", "type=broadcast&limit=1000").Events); n != 13 {
		t.Errorf("audit has %d broadcasts of chat, want 13", n)
	}
	if n := len(tn.audit("chat", "type=connected&limit=1000").Events); n != 8 {
		t.Errorf("audit has %d connections of chat, want 8", n)
	}
	// fazt stats counts what is retained.
	st := jsonLines(t, mustCLI(t, "stats", "--db", tn.cfg.DBPath, "--json"))[0]
	if st["messages"] != float64(5+12+3) || st["channels"] != float64(3) {
		t.Errorf("stats: %v", st)
	}
	chat := jsonLines(t, mustCLI(t, "stats", "--db", tn.cfg.DBPath, "--app", "chat", "--json"))[0]
	if chat["messages"] != float64(5) || chat["oldest_message_time"].(float64) <= 0 {
		t.Errorf("stats of chat: %v", chat)
	}
}
