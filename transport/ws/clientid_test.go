package ws

import (
	"testing"
	"time"
)

// TestClientIDsSortByTime checks that client ids are unique hex strings
// and that an id made in a later millisecond sorts after an earlier one,
// which is what keeps the indexes by client appending at their end.
func TestClientIDsSortByTime(t *testing.T) {
	seen := map[string]bool{}
	prev := newClientID()
	for i := 0; i < 5; i++ {
		time.Sleep(2 * time.Millisecond)
		id := newClientID()
		if len(id) != 28 {
			t.Fatalf("id %q: want 28 hex digits", id)
		}
		for _, r := range id {
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
				t.Fatalf("id %q is not lower-case hex", id)
			}
		}
		if id <= prev {
			t.Fatalf("id %q made after %q sorts before it", id, prev)
		}
		prev = id
	}
	for i := 0; i < 10000; i++ {
		id := newClientID()
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
	}
}
