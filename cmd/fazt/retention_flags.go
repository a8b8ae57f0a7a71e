package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/fazt-realtime/fazt/transport/apps"
)

// retentionFlags are `fazt serve`'s default retention, which each app's
// app.json "retention" overrides field by field.
type retentionFlags struct {
	maxMessages      string
	maxAge, auditAge string
	interval         time.Duration
}

func (r *retentionFlags) add(f *pflag.FlagSet) {
	f.StringVar(&r.maxMessages, "retain-messages", envOr("FAZT_RETAIN_MESSAGES", "0"), "keep at most this many messages per channel; 0 keeps all (FAZT_RETAIN_MESSAGES)")
	f.StringVar(&r.maxAge, "retain-age", envOr("FAZT_RETAIN_AGE", ""), "drop messages older than this, e.g. 7d; empty keeps all (FAZT_RETAIN_AGE)")
	f.StringVar(&r.auditAge, "retain-audit", envOr("FAZT_RETAIN_AUDIT", ""), "drop audit events of ended sessions older than this, e.g. 90d; empty keeps all (FAZT_RETAIN_AUDIT)")
	f.DurationVar(&r.interval, "retention-interval", time.Minute, "time between retention passes")
}

// policy checks the flags and returns the server's default retention.
func (r *retentionFlags) policy() (apps.Retention, error) {
	var out apps.Retention
	n, err := strconv.Atoi(r.maxMessages)
	if err != nil || n < 0 {
		return out, fmt.Errorf("--retain-messages %q: want a whole number, 0 for no limit", r.maxMessages)
	}
	out.MaxMessages = n
	for _, a := range []struct {
		flag, val string
		dst       *apps.Age
	}{{"--retain-age", r.maxAge, &out.MaxAge}, {"--retain-audit", r.auditAge, &out.AuditMaxAge}} {
		if a.val == "" || a.val == "0" {
			continue
		}
		d, err := apps.ParseAge(a.val)
		if err != nil {
			return out, fmt.Errorf("%s: %w", a.flag, err)
		}
		*a.dst = apps.Age(d)
	}
	if r.interval <= 0 {
		return out, fmt.Errorf("--retention-interval must be positive")
	}
	return out, nil
}
