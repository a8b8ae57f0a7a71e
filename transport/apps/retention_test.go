package apps

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRetentionSettings(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "chat"), 0o755)
	os.WriteFile(filepath.Join(dir, "chat", "app.json"), []byte(`{"retention": {"max_messages": 100, "max_age": "7d", "audit_max_age": 3600}}`), 0o644)
	os.MkdirAll(filepath.Join(dir, "keep"), 0o755)
	os.WriteFile(filepath.Join(dir, "keep", "app.json"), []byte(`{"retention": {"max_messages": -1, "max_age": "forever"}}`), 0o644)
	os.MkdirAll(filepath.Join(dir, "bad"), 0o755)
	os.WriteFile(filepath.Join(dir, "bad", "app.json"), []byte(`{"retention": {"max_age": "a week"}}`), 0o644)
	reg := NewRegistry(dir)
	def := Retention{MaxMessages: 10, MaxAge: Age(time.Hour), AuditMaxAge: Age(24 * time.Hour)}

	chat, err := reg.Lookup("chat")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := chat.Settings.Retention.Or(def), (Retention{100, Age(7 * 24 * time.Hour), Age(time.Hour)}); got != want {
		t.Errorf("chat: %+v, want %+v", got, want)
	}
	keep, _ := reg.Lookup("keep")
	if got, want := keep.Settings.Retention.Or(def), (Retention{-1, Forever, Age(24 * time.Hour)}); got != want {
		t.Errorf("keep: %+v, want %+v", got, want)
	}
	if d, _ := reg.Lookup("default"); d.Settings.Retention.Or(def) != def {
		t.Errorf("default app does not take the server default: %+v", d.Settings.Retention)
	}
	if _, err := reg.Lookup("bad"); err == nil {
		t.Error("an app.json with a bad age loaded")
	}
	b, _ := json.Marshal(keep.Settings.Retention)
	if string(b) != `{"max_messages":-1,"max_age":"forever"}` {
		t.Errorf("marshal: %s", b)
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "2h": 2 * time.Hour, "7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "1h30m": 90 * time.Minute,
		"106751d": 106751 * 24 * time.Hour, "15250w": 15250 * 7 * 24 * time.Hour,
	} {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// Past time.Duration's range (Inf, 1e300d, 106752d with 1h more) is
	// refused on every platform: its float converted as the platform
	// would, negative on amd64 and the largest elsewhere.
	for _, bad := range []string{"", "0s", "-2h", "d", "7", "1h2d", "week", "Infd", "+Infw", "NaNd", "1e300d", "-1d48h",
		"106752d", "106751d23h47m17s", "9e18w", "150000w100000d2562047h", "NaNd1h", "NaNw7d", "1d-1h"} {
		if _, err := ParseAge(bad); err == nil {
			t.Errorf("ParseAge(%q) succeeded", bad)
		}
	}
}

// TestAgeInSeconds reads ages given as numbers: 0 is the server's default,
// a positive number that many seconds, -1 forever as for max_messages;
// another negative one, or one past about 290 years, is refused (both
// were read as "forever": a negative Age is, and the second overflowed
// into one).
func TestAgeInSeconds(t *testing.T) {
	for in, want := range map[string]Age{"0": 0, "3600": Age(time.Hour), "1.5": Age(1500 * time.Millisecond), "9e9": Age(9e9 * float64(time.Second)), "-1": Forever} {
		var a Age
		if err := json.Unmarshal([]byte(in), &a); err != nil || a != want {
			t.Errorf("%s: %v, %v; want %v", in, time.Duration(a), err, time.Duration(want))
		}
	}
	// 1e-10 s is under a nanosecond: it was read as 0, the server's default.
	for _, bad := range []string{"-3600", "-2", "-0.5", "1e10", "1e300", "1e-10"} {
		var a Age
		if err := json.Unmarshal([]byte(bad), &a); err == nil {
			t.Errorf("%s: read as %v", bad, time.Duration(a))
		}
	}
}
