package events

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// logMetrics are the event log's Prometheus metrics, registered once with
// the default registry and shared by every Log in the process. They count
// the writer's transactions of appends, not retention's.
var logMetrics = struct {
	commits, events, failed prometheus.Counter
	commitSeconds           prometheus.Histogram
}{
	commits: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_log_commits_total", Help: "Transactions of appends the log's writer committed; events/commits is how many events a commit carries.",
	}),
	events: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_log_events_total", Help: "Events committed to the log.",
	}),
	failed: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_log_failed_commits_total", Help: "Transactions of appends that failed and were rolled back (a batch that fails is tried again one append at a time).",
	}),
	commitSeconds: promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "fazt_log_commit_seconds",
		Help:    "Time of a transaction of appends, from its begin to its commit.",
		Buckets: prometheus.ExponentialBuckets(100e-6, 2, 14), // 100 us to 0.8 s
	}),
}
