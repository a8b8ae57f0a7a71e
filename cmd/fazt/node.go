package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/internal/health"
	"github.com/fazt-realtime/fazt/internal/realip"
	"github.com/fazt-realtime/fazt/projections"
	"github.com/fazt-realtime/fazt/transport/apps"
	"github.com/fazt-realtime/fazt/transport/httpapi"
	jsrt "github.com/fazt-realtime/fazt/transport/js"
	"github.com/fazt-realtime/fazt/transport/web"
	"github.com/fazt-realtime/fazt/transport/ws"
)

// nodeConfig is everything a running server is made from.
type nodeConfig struct {
	DBPath     string
	AppsDir    string
	Durability events.Durability
	AdminKey   string // empty: use the stored one, generating it on first start
	WS         ws.Config
	JS         jsrt.Config
	Logger     *slog.Logger
	// Retention is the server's default retention; an app's app.json
	// overrides it field by field.
	Retention apps.Retention
	// RetentionInterval is the time between retention passes (default 1m).
	RetentionInterval time.Duration
	// AppGrace is how long an app whose app.json or folder vanished keeps
	// its settings, and how long the apps folder must stay unchanged before
	// an app whose folder is gone counts as removed: its connections
	// closed, its history open to a purge (0: 10 s).
	AppGrace time.Duration
	// Domains are the server's own (--domain): a Host under none of them
	// reaches no app. None: any.
	Domains []string
	// BodyTimeout bounds how long a request's body may take to arrive
	// (0: web.DefaultBodyTimeout, 60 s).
	BodyTimeout time.Duration
	// WriteTimeout bounds how long an HTTP answer may wait for its client
	// to take each part of it (0: web.DefaultWriteTimeout, 60 s).
	WriteTimeout time.Duration
	// Proxies are the reverse proxies trusted to name a request's client
	// in X-Forwarded-For, for the WebSocket transport and the JS handlers
	// alike (none: the header is ignored).
	Proxies realip.Proxies
}

// node is one running server: the log, its projections, and the transports
// over them. Start-up order is the order of the fields; Close reverses it.
type node struct {
	log     *events.Log
	members *projections.Membership
	subs    *projections.Subscriptions
	// consumers feed the projections from the log.
	consumers []*projections.Consumer
	ws        *ws.Server
	api       *httpapi.API
	scripts   *jsrt.Engine
	handler   http.Handler
	// stopSubs ends the subscriptions projection's flusher, which flushes
	// once more; subsDone closes when it has.
	stopSubs context.CancelFunc
	subsDone chan struct{}
	// stopRetention ends the retention worker; retentionDone closes when
	// it has.
	stopRetention context.CancelFunc
	retentionDone chan struct{}
	// newAdminKey is set when this start generated the admin key.
	newAdminKey string
	logger      *slog.Logger
}

// projectionGrace is how long a projection fails before /healthz says
// so.
const projectionGrace = time.Second

// consumersStop is how long Close waits for the projections' consumers.
const consumersStop = 10 * time.Second

func startNode(ctx context.Context, cfg nodeConfig) (n *node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	started := &node{logger: cfg.Logger}
	n = started
	defer func() {
		// Each failure returns nil: close what the start had opened
		// through its own pointer.
		if err != nil {
			started.Close(context.Background())
		}
	}()
	if n.log, err = events.Open(ctx, events.Config{Path: cfg.DBPath, Durability: cfg.Durability, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	adminDigest, generated, err := adminKey(ctx, n.log, cfg.AdminKey)
	if err != nil {
		return nil, err
	}
	n.newAdminKey = generated

	// The sessions the previous run left open, from the stored read model
	// and the events after its checkpoint: they are closed below, before
	// any client connects, so the membership starts empty at the head and
	// follows the log through Watermill from there.
	head := n.log.Head()
	stale, err := projections.OpenSessions(ctx, n.log, head)
	if err != nil {
		return nil, err
	}
	n.members = projections.NewMembership(ws.Encoder{}, func(ctx context.Context, app, channel string) (uint64, string, error) {
		info, err := n.log.Channel(ctx, app, channel)
		return info.Head, info.Epoch, err
	}, 0)
	n.members.StartAt(head)
	// The projections follow the log through its Watermill Subscriber,
	// each on a consumer of its own, until Close stops them.
	members, err := projections.Consume(context.Background(), projections.MembershipName,
		n.log.Subscriber(events.SubscriberConfig{After: head}), events.Topic, n.members.Handle, cfg.Logger)
	if err != nil {
		return nil, err
	}
	n.consumers = append(n.consumers, members)
	// The persisted subscriptions projection resumes after its checkpoint.
	if n.subs, err = projections.OpenSubscriptions(ctx, n.log); err != nil {
		return nil, err
	}
	subs, err := projections.Consume(context.Background(), projections.SubscriptionsName,
		n.log.Subscriber(events.SubscriberConfig{After: n.subs.Applied(), Names: n.subs.Events()}), events.Topic, n.subs.Handle, cfg.Logger)
	if err != nil {
		return nil, err
	}
	n.consumers = append(n.consumers, subs)
	subsCtx, stopSubs := context.WithCancel(context.Background())
	n.stopSubs, n.subsDone = stopSubs, make(chan struct{})
	go func() {
		defer close(n.subsDone)
		n.subs.Run(subsCtx, 0, func(err error) {
			if err == nil {
				cfg.Logger.Info("subscriptions projection: stores what it applies again")
				return
			}
			cfg.Logger.Error("subscriptions projection", "err", err)
		})
	}()

	// Sessions that were open when the previous process stopped are over.
	if err := n.closeStaleSessions(ctx, stale); err != nil {
		return nil, err
	}

	registry := apps.NewRegistry(cfg.AppsDir)
	registry.SetDomains(cfg.Domains)
	if cfg.AppGrace > 0 {
		registry.SetGrace(cfg.AppGrace)
		// A hook file that vanishes keeps its code as long as app.json
		// keeps its settings.
		cfg.JS.VanishGrace = cfg.AppGrace
	}
	registry.SetLogger(cfg.Logger)
	cfg.WS.Logger = cfg.Logger
	// The apps' JavaScript: hooks for the WebSocket transport, handlers
	// for /api/.
	cfg.JS.Logger = cfg.Logger
	scripts := jsrt.New(cfg.JS, n.log, n.members, registry)
	n.scripts = scripts
	wsCfg := cfg.WS
	wsCfg.Proxies = cfg.Proxies
	n.ws = ws.NewServer(wsCfg, n.log, n.members, registry, scripts)
	n.api = httpapi.New(n.log, n.members, registry, adminDigest, cfg.Logger)
	// The stored subscriptions follow sessions only: the membership
	// alone says how far the broadcasts are applied.
	n.api.SetApplied(n.applied)
	// A failed commit is a publish refused: the log fails at once. A
	// projection's handler is tried again within 100 ms, its flush
	// within 50, and fails the server only when that does not help.
	n.api.AddCheck("log", 0, n.log.Failing)
	n.api.AddCheck(projections.MembershipName, projectionGrace, members.Failing)
	n.api.AddCheck(projections.SubscriptionsName, projectionGrace, func() (time.Time, error) {
		// Applying an event, or storing what it applied.
		return health.Older(subs.Failing, n.subs.Failing)
	})
	n.handler = web.New(web.Config{WS: n.ws, API: n.api, Metrics: n.api.AdminOnly(promhttp.Handler()), JS: scripts, Apps: registry,
		Logger: cfg.Logger, BodyTimeout: cfg.BodyTimeout, WriteTimeout: cfg.WriteTimeout, Proxies: cfg.Proxies})
	n.startRetention(cfg, registry)
	return n, nil
}

func (n *node) closeStaleSessions(ctx context.Context, stale *projections.SubscriptionState) error {
	var facts []domain.Fact
	for _, r := range stale.SessionList() {
		facts = append(facts, &domain.ClientDisconnected{App: r.App, Client: r.Client, Reason: domain.ReasonServerRestart})
	}
	if len(facts) == 0 {
		return nil
	}
	evs, err := n.log.Append(ctx, facts...)
	if err != nil {
		return fmt.Errorf("close sessions of the previous run: %w", err)
	}
	n.logger.Info("closed sessions left open by the previous run", "count", len(facts))
	return n.members.WaitApplied(ctx, evs[len(evs)-1].Seq)
}

// Close shuts down in reverse order of start-up: clients are told and their
// disconnections recorded, the projections stop, the log is flushed and
// closed. It returns the first error.
func (n *node) Close(ctx context.Context) error {
	var errs []error
	if n.stopRetention != nil {
		n.stopRetention()
		<-n.retentionDone
	}
	if n.ws != nil {
		errs = append(errs, n.ws.Shutdown(ctx))
	}
	if n.scripts != nil { // after the connections' last hooks
		n.scripts.Close()
	}
	if len(n.consumers) > 0 {
		// The handlers give up once their context ends, so this takes
		// moments; it is bounded apart from ctx, which the WebSocket
		// shutdown may have used up, so that the last flush below never
		// runs beside a handler.
		for _, c := range n.consumers {
			c.Stop()
		}
		bound := time.NewTimer(consumersStop)
	wait:
		for _, c := range n.consumers {
			select {
			case <-c.Done():
			case <-bound.C:
				errs = append(errs, fmt.Errorf("projections did not stop within %v", consumersStop))
				break wait
			}
		}
		bound.Stop()
	}
	if n.stopSubs != nil { // after the consumers: their last events get flushed
		n.stopSubs()
		<-n.subsDone
	}
	if n.log != nil {
		errs = append(errs, n.log.Close())
	}
	return errors.Join(errs...)
}

const adminKeySetting = "admin_key_sha256"

// adminKey returns the admin key's digest (httpapi.KeyDigest). A key given by flag or environment
// wins; otherwise the hash stored in the database is used, and on the first
// start a key is generated, its hash stored, and the key returned once as
// generated so that it can be printed.
func adminKey(ctx context.Context, log *events.Log, given string) (digest []byte, generated string, err error) {
	hash := httpapi.KeyDigest
	if given != "" {
		if strings.TrimSpace(given) != given {
			// It could never match: HTTP trims a header's value.
			return nil, "", errors.New("the admin key has space around it, which no request's Authorization header can carry")
		}
		return hash(given), "", nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", err
	}
	fresh := "fzt_" + hex.EncodeToString(b[:])
	stored, err := log.SetSettingIfAbsent(ctx, adminKeySetting, hex.EncodeToString(hash(fresh)))
	if err != nil {
		return nil, "", err
	}
	if stored == hex.EncodeToString(hash(fresh)) {
		generated = fresh
	}
	digest, err = hex.DecodeString(stored)
	if err != nil {
		return nil, "", fmt.Errorf("stored admin key hash is corrupt: %w", err)
	}
	return digest, generated, nil
}

// applied says how far the read models have applied the log: sessions,
// the last event every projection of sessions has (the stored
// subscriptions follow sessions only); broadcasts, the last the live
// fan-out has. The audit's retention and purge keep what is after them.
func (n *node) applied() (sessions, broadcasts uint64) {
	m := n.members.Applied()
	return min(m, n.subs.Applied()), m
}

// startRetention runs the retention worker in the background: each app's
// policy is its app.json retention over the server's default, read at every
// pass so that edits to app.json apply without a restart.
func (n *node) startRetention(cfg nodeConfig, registry *apps.Registry) {
	ctx, cancel := context.WithCancel(context.Background())
	n.stopRetention, n.retentionDone = cancel, make(chan struct{})
	go func() {
		defer close(n.retentionDone)
		n.log.RunRetention(ctx, events.RetentionConfig{
			Interval: cfg.RetentionInterval,
			Apps:     registry.List,
			Applied:  n.applied,
			Policy: func(name string) events.RetentionPolicy {
				app, keepAll, _ := registry.ForRetention(name)
				if keepAll {
					// An app whose settings cannot be read, or whose
					// app.json or folder is gone, keeps everything: the
					// server's default may be far shorter than what it
					// asked for.
					return events.RetentionPolicy{}
				}
				r := app.Settings.Retention.Or(cfg.Retention)
				// Negative values keep everything; events.RetentionPolicy
				// keeps everything for zero.
				return events.RetentionPolicy{MaxMessages: max(r.MaxMessages, 0), MaxAge: time.Duration(max(r.MaxAge, 0)),
					AuditMaxAge: time.Duration(max(r.AuditMaxAge, 0))}
			},
		})
	}()
}
