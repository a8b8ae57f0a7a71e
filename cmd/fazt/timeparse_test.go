package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.Local)
	local := func(y int, mo time.Month, d, h, mi, s int) int64 {
		return time.Date(y, mo, d, h, mi, s, 0, time.Local).UnixMilli()
	}
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"90s", now.Add(-90 * time.Second).UnixMilli()},
		{"2h", now.Add(-2 * time.Hour).UnixMilli()},
		{"7d", now.Add(-7 * 24 * time.Hour).UnixMilli()},
		{"1d12h", now.Add(-36 * time.Hour).UnixMilli()},
		{"2w", now.Add(-14 * 24 * time.Hour).UnixMilli()},
		{"1700000000123", 1700000000123},
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC).UnixMilli()},
		{"2026-01-02T15:04:05+02:00", time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC).UnixMilli()},
		{"2026-01-02T15:04", local(2026, 1, 2, 15, 4, 0)},
		{"2026-01-02 15:04:05", local(2026, 1, 2, 15, 4, 5)},
		{"2026-01-02", local(2026, 1, 2, 0, 0, 0)},
	} {
		got, err := parseTime(tc.in, now)
		if err != nil || got != tc.want {
			t.Errorf("parseTime(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	// 1700000000 is unix seconds, which read as milliseconds was a time in
	// January 1970.
	for _, bad := range []string{"yesterday", "-5", "2h ago", "0s", "2026-13-01", "d", "1700000000", "1969-12-31T00:00:00Z", "1969-06-01", "30000d"} {
		if _, err := parseTime(bad, now); err == nil {
			t.Errorf("parseTime(%q) succeeded, want an error", bad)
		}
	}
}

// A number no one means as unix milliseconds says what it looks like,
// where it was read as a time a few hours into 1970 or thousands of years
// ahead, and the command found nothing.
func TestTimesInOtherUnitsSayWhatTheyLookLike(t *testing.T) {
	now := time.Now()
	for in, want := range map[string]string{
		"20260102":            "looks like a date; write it 2026-01-02",
		"+20260102":           "looks like a date; write it 2026-01-02",
		"1767312000000000":    "looks like unix microseconds or nanoseconds; give unix milliseconds (1767312000000 or 1767312000)",
		"1767312000000000000": "give unix milliseconds (1767312000000000 or 1767312000000)",
	} {
		if _, err := parseTime(in, now); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseTime(%s): %v; want %q", in, err, want)
		}
	}
	// Milliseconds of any year to 5138 are taken, and 8 digits that are
	// no date from 1970 on.
	for _, in := range []string{"99999999999999", "1767312000000", "19691231", "12345678"} {
		if _, err := parseTime(in, now); err != nil {
			t.Errorf("parseTime(%s): %v", in, err)
		}
	}
}
