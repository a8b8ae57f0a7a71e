package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// absoluteLayouts are the absolute time forms the CLI accepts besides RFC
// 3339. They carry no zone, so they are read in the local time zone of the
// machine running the command, as an operator typing them means.
var absoluteLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads a time given on the command line and returns it in unix
// milliseconds; "" is 0 (no bound). Accepted: a relative age counted back
// from now ("90s", "2h", "7d", "1d12h"), RFC 3339
// ("2026-01-02T15:04:05Z"), a local date and time ("2026-01-02T15:04",
// "2026-01-02 15:04", "2026-01-02"), or unix milliseconds.
func parseTime(s string, now time.Time) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		// Unix seconds, or a negative time, are refused as the server
		// refuses them.
		if err := domain.CheckUnixMillis("time", n); err != nil {
			return 0, err
		}
		if err := checkMillis(s, n); err != nil {
			return 0, err
		}
		return n, nil
	}
	ms, ok := parseWhen(s, now)
	switch {
	case !ok:
		return 0, fmt.Errorf("time %q: want an age such as 90s, 2h or 7d, a date such as 2026-01-02T15:04, RFC 3339, or unix milliseconds", s)
	case ms < 0: // a bound of 0 or less is none
		return 0, fmt.Errorf("time %q: before 1970", s)
	}
	return ms, nil
}

// checkMillis refuses a number that no one means as unix milliseconds, a
// time the command would then read quietly as a few hours into 1970 or
// thousands of years ahead, finding nothing: a compact date (20260102),
// or unix microseconds or nanoseconds (16 or 19 digits now; anything from
// 1e14, the year 5138, on).
func checkMillis(s string, n int64) error {
	if n >= 1e7 && n < 1e9 {
		if t, err := time.ParseInLocation("20060102", strings.TrimPrefix(s, "+"), time.Local); err == nil && t.Year() >= 1970 {
			return fmt.Errorf("time %s: looks like a date; write it %s (a number is unix milliseconds)", s, t.Format("2006-01-02"))
		}
	}
	if n >= 1e14 {
		return fmt.Errorf("time %s: looks like unix microseconds or nanoseconds; give unix milliseconds (%d or %d)", s, n/1e3, n/1e6)
	}
	return nil
}

// parseWhen reads s as RFC 3339, a local date and time, or an age counted
// back from now, in that order, as unix milliseconds.
func parseWhen(s string, now time.Time) (ms int64, ok bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), true
	}
	for _, layout := range absoluteLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.UnixMilli(), true
		}
	}
	if d, err := apps.ParseAge(s); err == nil {
		return now.Add(-d).UnixMilli(), true
	}
	return 0, false
}

// formatTime shows unix milliseconds as a local time with milliseconds.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).Local().Format("2006-01-02 15:04:05.000")
}
