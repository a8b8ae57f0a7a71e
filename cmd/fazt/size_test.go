package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// serveRefuses checks that serve stops at start on a bad value of flag,
// given on the command line (bad) or by its variable env (badEnv), with an
// error that names both.
func serveRefuses(t *testing.T, flag, env, bad, badEnv string) {
	t.Helper()
	for _, c := range []struct{ env, flag string }{{"", bad}, {badEnv, ""}} {
		t.Run(c.env+c.flag, func(t *testing.T) {
			t.Setenv(env, c.env)
			args := []string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "f.db")}
			if c.flag != "" {
				args = append(args, flag, c.flag)
			}
			// Bounded: a serve that took the value would run until cancelled.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out strings.Builder
			err := run(ctx, args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), flag+" ("+env+")") {
				t.Fatalf("serve %v with %s=%q: %v", args, env, c.env, err)
			}
		})
	}
}
