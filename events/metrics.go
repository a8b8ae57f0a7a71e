package events

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// logMetrics are the event log's Prometheus metrics, registered once with
// the default registry and shared by every Log in the process. They count
// the writer's transactions of appends, not retention's. The commit
// histogram's _count is the number of commits, so events over it is how
// many events a commit carries.
var logMetrics = struct {
	events, failedAppends prometheus.Counter
	commitSeconds         prometheus.Histogram
	clockBehind           prometheus.Gauge
}{
	clockBehind: promauto.NewGauge(prometheus.GaugeOpts{
		Name: "fazt_log_clock_behind_seconds",
		Help: "How far this machine's clock was behind the log's last event time at the last commit (0 normally): events keep that time, which never goes back, until the clock catches up, so history and audit by time see them all at one instant meanwhile.",
	}),
	events: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_log_events_total", Help: "Events committed to the log; over fazt_log_commit_seconds_count, the events a commit carries.",
	}),
	failedAppends: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_log_failed_appends_total", Help: "Appends whose transaction failed and whose caller got an error, each logged (a batch that fails is tried again one append at a time: only the appends that fail alone count).",
	}),
	commitSeconds: promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "fazt_log_commit_seconds",
		Help:    "Time of each committed transaction of appends, from its begin to its commit.",
		Buckets: prometheus.ExponentialBuckets(100e-6, 2, 14), // 100 us to 0.8 s
	}),
}
