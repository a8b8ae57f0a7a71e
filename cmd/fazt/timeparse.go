package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

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
		if n < 0 {
			return 0, fmt.Errorf("time %q: must not be negative", s)
		}
		// Unix seconds (10 digits since 2001, 11 from 2286) read as
		// milliseconds would be a time before March 1973: say so, rather
		// than bound the query there in silence.
		if n >= 1e9 && n < 1e11 {
			return 0, fmt.Errorf("time %q: looks like unix seconds; give unix milliseconds (%s000)", s, s)
		}
		return n, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), nil
	}
	for _, layout := range absoluteLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.UnixMilli(), nil
		}
	}
	if d, err := apps.ParseAge(s); err == nil {
		return now.Add(-d).UnixMilli(), nil
	}
	return 0, fmt.Errorf("time %q: want an age such as 90s, 2h or 7d, a date such as 2026-01-02T15:04, RFC 3339, or unix milliseconds", s)
}

// formatTime shows unix milliseconds as a local time with milliseconds.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).Local().Format("2006-01-02 15:04:05.000")
}
