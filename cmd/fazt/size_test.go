package main

import (
	"testing"
)

// TestParseMemory: --js-memory's sizes, and what is refused rather than
// taken for a default.
func TestParseMemory(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"", 0}, {"off", -1}, {"512MiB", 512 << 20}, {"4GiB", 4 << 30}, {"1 TiB", 1 << 40}, {"1024", 1024}, {"64KiB", 64 << 10}, {"10B", 10}} {
		if got, err := parseMemory(c.in); err != nil || got != c.want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"abc", "0", "-1MiB", "1.5GiB", "10PB", "512MB", "99999999TiB", "MiB"} {
		if got, err := parseMemory(in); err == nil {
			t.Errorf("parseMemory(%q) = %d, want an error", in, got)
		}
	}
}

// TestServeRefusesABadJSMemory: a size serve cannot read is an error at
// start, from the flag or from FAZT_JS_MEMORY.
func TestServeRefusesABadJSMemory(t *testing.T) {
	serveRefuses(t, "--js-memory", "FAZT_JS_MEMORY", "lots", "2GB")
}
