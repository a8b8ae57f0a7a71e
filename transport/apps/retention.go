package apps

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Retention is an app's retention policy in app.json: how much of each
// channel's message history to keep, and how long to keep the audit trail.
// A field that is zero or absent takes the server's default (see
// Retention.Or); -1 for max_messages, or "forever" for an age, keeps
// everything whatever the default.
//
//	"retention": { "max_messages": 10000, "max_age": "7d", "audit_max_age": "90d" }
type Retention struct {
	// MaxMessages keeps at most this many newest messages per channel.
	MaxMessages int `json:"max_messages,omitempty"`
	// MaxAge drops messages older than this.
	MaxAge Age `json:"max_age,omitempty"`
	// AuditMaxAge drops audit events (connections, subscriptions, kicks)
	// older than this, once the session they belong to has ended.
	AuditMaxAge Age `json:"audit_max_age,omitempty"`
}

// check refuses what no policy means: max_messages below -1 (a sign
// typed by mistake would otherwise keep every channel whole), as a
// negative age other than -1 is refused where it is read.
func (r Retention) check() error {
	if r.MaxMessages < -1 {
		return fmt.Errorf("retention.max_messages: %d; want 0 (the server's default) or more, or -1 to keep everything", r.MaxMessages)
	}
	return nil
}

// Forever is the Age that keeps everything, whatever the server's default.
const Forever Age = -1

// Or returns r with each zero field taken from def, the server's default.
// Negative fields (keep everything) stay as they are.
func (r Retention) Or(def Retention) Retention {
	if r.MaxMessages == 0 {
		r.MaxMessages = def.MaxMessages
	}
	if r.MaxAge == 0 {
		r.MaxAge = def.MaxAge
	}
	if r.AuditMaxAge == 0 {
		r.AuditMaxAge = def.AuditMaxAge
	}
	return r
}

// Age is a duration written as in Go ("90s", "36h") or in days and weeks
// ("7d", "2w"); in JSON, a string of that form or a number of seconds.
type Age time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (a *Age) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err == nil {
		// -1 keeps everything, as it does for max_messages. Any other
		// negative Age would be Forever too, and a float past
		// time.Duration's range converts to anything: neither may come
		// from a number.
		if secs == -1 {
			*a = Forever
			return nil
		}
		// A positive number under a nanosecond (1e-10) would become 0,
		// which is the server's default, not what was written.
		if secs < 0 || secs > maxAgeSeconds || secs > 0 && secs*float64(time.Second) < 1 {
			return fmt.Errorf("age: %v seconds; want 0 (the server's default) to %d, or -1 or \"forever\" to keep everything", secs, int64(maxAgeSeconds))
		}
		*a = Age(secs * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("age: want a string such as \"7d\" or \"forever\", or a number of seconds")
	}
	if s == "forever" {
		*a = Forever
		return nil
	}
	d, err := ParseAge(s)
	if err != nil {
		return err
	}
	*a = Age(d)
	return nil
}

// maxAgeSeconds is the longest age a number of seconds may give: about
// 290 years, time.Duration's range.
const maxAgeSeconds = float64(math.MaxInt64 / int64(time.Second))

// MarshalJSON implements json.Marshaler.
func (a Age) MarshalJSON() ([]byte, error) {
	if a < 0 {
		return json.Marshal("forever")
	}
	return json.Marshal(time.Duration(a).String())
}

// ParseAge reads a positive duration: Go's syntax ("90s", "1h30m") plus
// days ("7d") and weeks ("2w"), alone or leading ("1d12h").
func ParseAge(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	var total time.Duration
	rest := in
	for _, unit := range []struct {
		suffix string
		d      time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		i := strings.Index(rest, unit.suffix)
		if i <= 0 {
			continue
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || !(n >= 0) { // NaN too
			return 0, fmt.Errorf("%q is not a duration (such as 90s, 2h, 7d)", s)
		}
		// A float past time.Duration's range (1e300, Inf) converts to
		// whatever the platform makes of it: on amd64 a negative
		// duration, elsewhere the largest.
		f := n * float64(unit.d)
		if f >= math.MaxInt64-float64(total) {
			return 0, fmt.Errorf("%q is longer than a duration can be (about 290 years)", s)
		}
		total += time.Duration(f)
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 && total > 0 { // 1d-1h: no part is negative
			return 0, fmt.Errorf("%q is not a duration (such as 90s, 2h, 7d)", s)
		}
		if d > 0 && total > math.MaxInt64-d {
			return 0, fmt.Errorf("%q is longer than a duration can be (about 290 years)", s)
		}
		total += d
	}
	if in == "" || total <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (such as 90s, 2h, 7d)", s)
	}
	return total, nil
}
