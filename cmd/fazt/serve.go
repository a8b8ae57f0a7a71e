package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/realip"
	jsrt "github.com/fazt-realtime/fazt/transport/js"
	"github.com/fazt-realtime/fazt/transport/web"
	"github.com/fazt-realtime/fazt/transport/ws"
)

func serveCmd() *cobra.Command {
	var (
		addr, db, appsDir, durability, admin, logLevel, debugAddr   string
		jsMemory, trustedProxies, domains                           string
		heartbeat, pongTimeout, writeDelay, maxWriteDelay, appGrace time.Duration
		bodyTimeout, writeTimeout                                   time.Duration
		retention                                                   retentionFlags
		ioURing                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the server: WebSocket at /_ws, server API at /_api, app JS at /api,
app files at /. The flags that name an environment variable in their help
can be set by it.

On Linux, FAZT_TIMER_SLACK sets the timer slack of the server's threads
(default 500us on one processor, the system's with more; 0 keeps the
system's): it is read before the Go runtime starts, so it has no flag.
See docs/operators.md, "One processor".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, key := range []string{"FAZT_WRITE_DELAY", "FAZT_WRITE_DELAY_MAX", "FAZT_APP_GRACE", "FAZT_BODY_TIMEOUT", "FAZT_WRITE_TIMEOUT"} {
				if err := checkEnvDuration(key); err != nil {
					return err
				}
			}
			if err := checkEnvBool("FAZT_IO_URING"); err != nil {
				return err
			}
			if err := checkTimes(heartbeat, pongTimeout, writeDelay, maxWriteDelay); err != nil {
				return err
			}
			if appGrace < time.Second {
				// Less would let an editor's save by renaming, or a
				// deploy's rewrite, open an app to every origin.
				return fmt.Errorf("--app-grace %s: want 1s or more", appGrace)
			}
			if bodyTimeout < time.Second {
				return fmt.Errorf("--body-timeout %s: want 1s or more", bodyTimeout)
			}
			if writeTimeout < time.Second {
				return fmt.Errorf("--write-timeout %s: want 1s or more", writeTimeout)
			}
			proxies, err := realip.Parse(trustedProxies)
			if err != nil {
				return fmt.Errorf("--trusted-proxies (FAZT_TRUSTED_PROXIES): %w", err)
			}
			serverDomains, err := parseDomains(domains)
			if err != nil {
				return fmt.Errorf("--domain (FAZT_DOMAIN): %w", err)
			}
			memoryLimit, err := parseMemory(jsMemory)
			if err != nil {
				return fmt.Errorf("--js-memory (FAZT_JS_MEMORY) %q: %w", jsMemory, err)
			}
			slack, err := timerSlack()
			if err != nil {
				return err
			}
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			retain, err := retention.policy()
			if err != nil {
				return err
			}
			return serve(cmd.Context(), serveOptions{
				addr: addr, debugAddr: debugAddr, timerSlack: slack,
				node: nodeConfig{
					DBPath: db, AppsDir: appsDir, Durability: events.Durability(durability), AdminKey: admin,
					WS:        ws.Config{Heartbeat: heartbeat, PongTimeout: pongTimeout, WriteDelay: writeDelay, MaxWriteDelay: maxWriteDelay, PlainWrites: !ioURing},
					JS:        jsrt.Config{MemoryLimit: memoryLimit},
					Logger:    logger,
					Retention: retain, RetentionInterval: retention.interval, AppGrace: appGrace, BodyTimeout: bodyTimeout, WriteTimeout: writeTimeout,
					Proxies: proxies, Domains: serverDomains,
				},
			}, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", envOr("FAZT_ADDR", "127.0.0.1:8080"), "listen address (FAZT_ADDR)")
	f.StringVar(&db, "db", envOr("FAZT_DB", "fazt.db"), "SQLite database file (FAZT_DB)")
	f.StringVar(&appsDir, "apps", envOr("FAZT_APPS", "apps"), "apps folder, one subfolder per app (FAZT_APPS)")
	f.StringVar(&durability, "durability", envOr("FAZT_DURABILITY", "normal"), "normal (survives a process crash) or full (fsync per commit, survives power loss) (FAZT_DURABILITY)")
	keyFlag(f, &admin, "admin-key", "server API admin key; default: generated on first start and stored (FAZT_ADMIN_KEY)")
	f.StringVar(&domains, "domain", os.Getenv("FAZT_DOMAIN"), "the domains the server serves its apps under, comma-separated (example.com): the domain itself and www. are app default, one label under it an app (chat.example.com); a request for any other name, but an IP address and localhost, reaches no app (404), as one a proxy's default server or a DNS rebinding page sends; by default any name is served (FAZT_DOMAIN)")
	f.StringVar(&trustedProxies, "trusted-proxies", os.Getenv("FAZT_TRUSTED_PROXIES"), "reverse proxies in front of the server, as addresses or CIDR ranges (127.0.0.1,10.0.0.0/8): for a request that comes from one, the client's address, recorded in the log and given to JS, is taken from X-Forwarded-For; by default the header is ignored, as any client can send it (FAZT_TRUSTED_PROXIES)")
	f.StringVar(&logLevel, "log-level", envOr("FAZT_LOG_LEVEL", "info"), "debug, info, warn or error (FAZT_LOG_LEVEL)")
	f.DurationVar(&appGrace, "app-grace", envDuration("FAZT_APP_GRACE", 10*time.Second), "how long an app whose app.json or folder vanished keeps its settings (a deploy rewriting the folder), and how long the apps folder must stay unchanged before an app whose folder is gone counts as removed: its connections closed, its history open to fazt purge (FAZT_APP_GRACE)")
	f.DurationVar(&bodyTimeout, "body-timeout", envDuration("FAZT_BODY_TIMEOUT", web.DefaultBodyTimeout), "how long an HTTP request may take, once its headers are in, to send its body; slower ones are answered 400 (FAZT_BODY_TIMEOUT)")
	f.DurationVar(&writeTimeout, "write-timeout", envDuration("FAZT_WRITE_TIMEOUT", web.DefaultWriteTimeout), "how long an HTTP answer may wait for its client to take each 64 KiB of it; a client that takes less in that long is cut off (FAZT_WRITE_TIMEOUT)")
	f.DurationVar(&heartbeat, "heartbeat", 30*time.Second, "how often clients are pinged")
	f.DurationVar(&pongTimeout, "pong-timeout", 10*time.Second, "how long a pinged client may stay silent")
	f.DurationVar(&writeDelay, "write-delay", envDuration("FAZT_WRITE_DELAY", defaultWriteDelay), "hold broadcasts back so that each connection gets them at most once per this long, and frames share socket writes (replies are never held): more deliveries per core for up to that much latency under load (up to --write-delay-max under heavy load); 0 writes at once (FAZT_WRITE_DELAY)")
	f.DurationVar(&maxWriteDelay, "write-delay-max", envDuration("FAZT_WRITE_DELAY_MAX", defaultMaxWriteDelay), "under load, hold broadcasts back for up to this long instead of --write-delay: a connection writer that spent over a fifth of its time in rounds lately waits longer between them, in step with that share and as far as its writes go to connections it wrote for lately, so each socket write carries more frames; no more than --write-delay, or --write-delay 0, turns this off (FAZT_WRITE_DELAY_MAX)")
	f.BoolVar(&ioURing, "io-uring", envBool("FAZT_IO_URING", true), "on Linux, where the kernel allows io_uring, write the connections' sockets in batches through it, one system call for up to 64 writes; false: one send(2) per write (FAZT_IO_URING)")
	f.StringVar(&jsMemory, "js-memory", os.Getenv("FAZT_JS_MEMORY"), "a limit on the server's heap, checked every 10 ms while app scripts run (512MiB, 4GiB): past it after a collection, or past twice it, every JS run under way is interrupted and fails; default an eighth of the memory the process may have (its cgroups' limit, or the machine's); off: no limit (FAZT_JS_MEMORY)")
	f.StringVar(&debugAddr, "debug-addr", os.Getenv("FAZT_DEBUG_ADDR"), "if set, serve Go's pprof profiles at http://<addr>/debug/pprof/, and /metrics without the admin key, on this separate address, e.g. 127.0.0.1:6060; keep it private (FAZT_DEBUG_ADDR)")
	retention.add(f)
	return cmd
}

// checkTimes refuses durations the server would otherwise take for
// defaults or bend quietly: a heartbeat under a second (at 1ns, the pong
// timeout cut to half of it dropped every client at its first ping), a
// pong timeout that is not positive, and a negative write delay.
func checkTimes(heartbeat, pongTimeout, writeDelay, maxWriteDelay time.Duration) error {
	switch {
	case heartbeat < time.Second:
		return fmt.Errorf("--heartbeat %s: want 1s or more", heartbeat)
	case pongTimeout <= 0:
		return fmt.Errorf("--pong-timeout %s: want more than 0", pongTimeout)
	case writeDelay < 0 || maxWriteDelay < 0:
		return fmt.Errorf("--write-delay (FAZT_WRITE_DELAY) %s, --write-delay-max (FAZT_WRITE_DELAY_MAX) %s: want 0 or more", writeDelay, maxWriteDelay)
	}
	return nil
}

// defaultWriteDelay is the write delay of a server started without one.
// A flusher whose last round started less than this long ago waits for
// the rest of it, so frames queued meanwhile share one socket write; after a
// longer pause it starts at once, so light traffic gains no latency. On
// one pinned core it raised unthrottled fan-out to 1,000 subscribers from
// 809,000 to 892,000 deliveries/s and cut the server's CPU at 200,000/s
// from 99% to 81%, with p99 within the runs' noise (BENCHMARKS.md).
const defaultWriteDelay = 2 * time.Millisecond

// defaultMaxWriteDelay is how long a busy server holds broadcasts back
// unless told otherwise. At 200,000 deliveries/s to 1,000 subscribers on
// one pinned core, flushers that kept to 2 ms wrote 1.2 frames per write,
// used 67% of the core and gave a p99 of 12.7 ms in an earlier build.
// Since a flusher's round lets the process read its sockets (netyield.Yield)
// and sends without the file layer, three runs each of a754c99's build
// (BENCHMARKS.md, stop 22): holding for up to 8 ms under load used 57%
// (p99 13.7 ms), 10 ms 52% (14.7 ms), 11 ms 50% (15.7 ms), 12 ms 50%
// (17.2 ms: past the p99 we aim for, 17 ms). At a quarter of that rate,
// a publish every 20 ms, the p99 did not move with the setting. With 11
// ms and netyield.Yield's wait bounded (7d3eb8c): 49.5% and 15.2 ms.
const defaultMaxWriteDelay = 11 * time.Millisecond

// httpIdleTimeout is how long a kept-alive HTTP connection may wait for
// its next request: without it, idle connections (a proxy's pool, a
// client that never closes) held a goroutine and a descriptor for good.
// WebSocket connections are not HTTP's once upgraded.
var httpIdleTimeout = 2 * time.Minute

type serveOptions struct {
	addr string
	// debugAddr, when set, is where the pprof handlers listen.
	debugAddr string
	// timerSlack is the process's timer slack, for the log (0: unknown).
	timerSlack time.Duration
	node       nodeConfig
	// ready, when set, receives the bound address once the server listens.
	ready func(addr string)
}

func serve(ctx context.Context, opts serveOptions, stderr interface{ Write([]byte) (int, error) }) error {
	logger := opts.node.Logger
	n, err := startNode(ctx, opts.node)
	if err != nil {
		return err
	}
	if n.newAdminKey != "" {
		fmt.Fprintf(stderr, "\n  Admin key (shown once; store it, e.g. export FAZT_ADMIN_KEY=...):\n\n    %s\n\n", n.newAdminKey)
	}
	ln, err := ws.ListenTCP(context.Background(), opts.addr)
	if err != nil {
		n.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	if opts.debugAddr != "" {
		dln, err := net.Listen("tcp", opts.debugAddr)
		if err != nil {
			ln.Close()
			n.Close(context.Background())
			return fmt.Errorf("listen (debug): %w", err)
		}
		dsrv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		go dsrv.Serve(dln)
		defer dsrv.Close()
		logger.Info("pprof serving", "addr", dln.Addr().String())
	}
	srv := &http.Server{Handler: n.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: httpIdleTimeout,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	// WebSocket upgrades are taken off the listener before net/http, which
	// serves the rest (ws.Server.Listener).
	go func() { errc <- srv.Serve(n.ws.Listener(ln, "/_ws", srv.ReadHeaderTimeout)) }()
	attrs := []any{"addr", ln.Addr().String(), "db", opts.node.DBPath, "apps", opts.node.AppsDir, "durability", string(opts.node.Durability)}
	if opts.timerSlack > 0 {
		attrs = append(attrs, "timer_slack", opts.timerSlack)
	}
	if p := opts.node.Proxies.String(); p != "" {
		attrs = append(attrs, "trusted_proxies", p)
	}
	// A mistyped --apps would otherwise show only as every app's 404.
	if st, err := os.Stat(opts.node.AppsDir); errors.Is(err, fs.ErrNotExist) {
		logger.Warn("the apps folder is not there: only the default app is served, until it is made", "apps", opts.node.AppsDir)
	} else if err != nil || !st.IsDir() {
		logger.Warn("the apps folder cannot be read as one: only the default app is served", "apps", opts.node.AppsDir, "err", cmp.Or(err, errors.New("not a folder")))
	}
	logger.Info("fazt serving", attrs...)
	if opts.ready != nil {
		opts.ready(ln.Addr().String())
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	// The HTTP server stops taking requests and waits for those under way,
	// but not for long: a client that stalls its request body would hold
	// it, and the WebSocket clients, which are told and recorded next, need
	// the rest of the 15 s.
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	shutErr := srv.Shutdown(hctx)
	hcancel()
	if shutErr != nil {
		srv.Close()
		logger.Warn("HTTP requests still under way after 5 s were cut off", "err", shutErr)
		shutErr = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closeErr := n.Close(sctx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := errors.Join(shutErr, closeErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// parseDomains reads --domain: host names, comma-separated, each of DNS
// labels (a-z, 0-9, inner -), at least two; lower-cased, a trailing dot
// dropped.
func parseDomains(list string) ([]string, error) {
	var out []string
	for _, d := range strings.Split(list, ",") {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" {
			continue
		}
		labels := strings.Split(d, ".")
		if len(labels) < 2 {
			return nil, fmt.Errorf("%q: want a domain of two labels or more, as example.com", d)
		}
		for _, l := range labels {
			if err := domain.ValidateApp(l); err != nil {
				return nil, fmt.Errorf("%q: label %q is not a DNS label", d, l)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// debugHandler serves Go's profiles, as net/http/pprof would on the
// default mux, without touching http.DefaultServeMux, and without its
// /debug/pprof/cmdline: the command line may hold --admin-key.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// Without the admin key: this address is private.
	mux.Handle("/metrics", promhttp.Handler())
	return mux
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
