package ws

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestSubscribedMatchesMarshal checks appendSubscribed against the reply
// json.Marshal makes of the same fields: the same bytes, or for an id with
// characters Marshal escapes for HTML, the same JSON.
func TestSubscribedMatchesMarshal(t *testing.T) {
	type reply struct {
		Type         string          `json:"type"`
		ID           json.RawMessage `json:"id,omitempty"`
		Channel      string          `json:"channel"`
		Offset       uint64          `json:"offset"`
		Epoch        string          `json:"epoch"`
		Replay       int             `json:"replay"`
		Truncated    bool            `json:"truncated"`
		FirstOffset  uint64          `json:"first_offset"`
		EpochChanged bool            `json:"epoch_changed,omitempty"`
	}
	cases := []struct {
		r        reply
		sameByte bool
	}{
		{reply{Channel: "c", Epoch: ""}, true},
		{reply{ID: json.RawMessage(`7`), Channel: "room:1/a=b@c.d_e-f", Offset: 18446744073709551615, Epoch: "54b6e972b8023243", Replay: 1000, Truncated: true, FirstOffset: 12, EpochChanged: true}, true},
		{reply{ID: json.RawMessage(`-1.5e3`), Channel: "x", Offset: 3, Epoch: "ab", FirstOffset: 1}, true},
		{reply{ID: json.RawMessage(`"req-1"`), Channel: "presence-lobby", Offset: 9, Epoch: "00", Replay: 2, FirstOffset: 8}, true},
		{reply{ID: json.RawMessage(`"a\"b\\c\u00e9 <&>"`), Channel: "y", Epoch: "ff"}, false},
	}
	for _, c := range cases {
		c.r.Type = "subscribed"
		want, err := json.Marshal(c.r)
		if err != nil {
			t.Fatal(err)
		}
		got := appendSubscribed(nil, c.r.ID, c.r.Channel, c.r.Offset, c.r.Epoch, c.r.Replay, c.r.Truncated, c.r.FirstOffset, c.r.EpochChanged)
		if c.sameByte {
			if string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			continue
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

func BenchmarkSubscribedReply(b *testing.B) {
	id := json.RawMessage(`12`)
	b.ReportAllocs()
	for b.Loop() {
		appendSubscribed(make([]byte, 0, 192+len(id)+9), id, "room-0001", 0, "", 0, false, 1, false)
	}
}
