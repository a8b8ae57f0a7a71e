package ws

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the transport's Prometheus metrics, registered once with the
// default registry and shared by every Server in the process.
type metrics struct {
	open        prometheus.Gauge
	accepted    prometheus.Counter
	frames      prometheus.Counter
	writes      prometheus.Counter
	sendCalls   prometheus.Counter
	waits       prometheus.Counter
	inbound     prometheus.Counter
	refusals    *prometheus.CounterVec
	disconnects *prometheus.CounterVec
}

var wsMetrics = &metrics{
	open: promauto.NewGauge(prometheus.GaugeOpts{
		Name: "fazt_ws_connections", Help: "Open WebSocket connections.",
	}),
	accepted: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_ws_connections_total", Help: "WebSocket connections accepted.",
	}),
	frames: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_ws_frames_sent_total", Help: "Frames written to clients (messages, replies, replays).",
	}),
	writes: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_ws_writes_total", Help: "Socket writes; frames_sent/writes is the coalescing factor.",
	}),
	sendCalls: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_ws_write_calls_total", Help: "System calls that made the socket writes: through io_uring, every call made, retries and waits included (one per batch of up to 64 writes as a rule); one per write otherwise (send(2), or a connection's own writer for a full socket or a backlog, counted once however many calls it took).",
	}),
	waits: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_ws_full_socket_writes_total", Help: "Writes the client's socket did not take at once, finished by the connection's own writer; a high rate means slow clients.",
	}),
	inbound: promauto.NewCounter(prometheus.CounterOpts{
		Name: "fazt_ws_frames_received_total", Help: "Frames received from clients.",
	}),
	refusals: promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "fazt_limit_refusals_total", Help: "Requests refused by a limit, by limit.",
	}, []string{"limit"}),
	disconnects: promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "fazt_ws_disconnections_total", Help: "Connections ended, by reason.",
	}, []string{"reason"}),
}

func (m *metrics) refused(limit string) { m.refusals.WithLabelValues(limit).Inc() }
