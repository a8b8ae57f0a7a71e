// Package httpapi is the server API at /_api: publishing, channel and
// history queries, kicks and the audit log, authenticated by bearer keys.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// Store is what the API needs of the event log.
type Store interface {
	domain.Log
	domain.History
	SubscribersAt(ctx context.Context, app, channel string, at int64) ([]string, error)
	Head() uint64
	// PurgeApp deletes the retained history of an app no longer hosted:
	// its messages, and with audit its events: its sessions' up to
	// sessions, its broadcasts' up to broadcasts.
	PurgeApp(ctx context.Context, app string, audit bool, sessions, broadcasts uint64) (domain.Purged, error)
}

// API serves /_api/... and /healthz.
type API struct {
	store   Store
	members domain.Members
	apps    *apps.Registry
	admin   []byte // the admin key's KeyDigest
	log     *slog.Logger
	mux     *http.ServeMux

	kmu  sync.Mutex
	keys map[string]appKeys // by app name: the digests of its API keys

	// applied returns the last events the projections have applied (see
	// SetApplied); nil: none is known, and purge leaves the events.
	applied func() (sessions, broadcasts uint64)

	pmu     sync.Mutex
	purging map[string]bool // the apps being purged

	checks []check // what /healthz asks about (AddCheck)
}

// check is a part of the server /healthz asks whether it is failing.
type check struct {
	name    string
	after   time.Duration
	failing func() (since time.Time, err error)
}

// AddCheck has /healthz ask failing whether the part named name fails,
// and since when: any that has failed for after or longer makes the
// answer 503 (a part whose failures a retry usually gets past, within a
// moment, takes no server out of a load balancer's rotation for one).
// Call it before serving.
func (a *API) AddCheck(name string, after time.Duration, failing func() (since time.Time, err error)) {
	a.checks = append(a.checks, check{name, after, failing})
}

// SetApplied gives the API the last events the projections fed by the
// log have applied: sessions, the last that every projection of sessions
// has; broadcasts, the last the live fan-out has. A purge of an app's
// events keeps those after them, which a projection has yet to see.
// Without it, a purge deletes messages only. Call it before serving.
func (a *API) SetApplied(f func() (sessions, broadcasts uint64)) { a.applied = f }

// appKeys are the digests of one version of an app's API keys, by name.
type appKeys struct {
	app     *apps.App
	digests map[string][]byte
}

// New returns the server API. adminDigest is the admin key's KeyDigest:
// that key authorizes every app.
func New(store Store, members domain.Members, registry *apps.Registry, adminDigest []byte, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.Default()
	}
	a := &API{store: store, members: members, apps: registry, admin: adminDigest, log: logger, mux: http.NewServeMux(),
		keys: map[string]appKeys{}}
	a.mux.HandleFunc("POST /_api/publish", a.auth(a.publish))
	a.mux.HandleFunc("POST /_api/publish-batch", a.auth(a.publishBatch))
	a.mux.HandleFunc("POST /_api/broadcast-all", a.auth(a.broadcastAll))
	a.mux.HandleFunc("GET /_api/channels", a.auth(a.channels))
	a.mux.HandleFunc("POST /_api/clients/{id}/kick", a.auth(a.kick))
	a.mux.HandleFunc("GET /_api/audit", a.auth(a.audit))
	a.mux.HandleFunc("POST /_api/apps/{app}/purge", a.purge)
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("/_api/", a.noEndpoint)
	return a
}

// noEndpoint answers a request no route takes: a JSON 405 with the
// methods that the path takes, or a JSON 404 when it takes none.
func (a *API) noEndpoint(w http.ResponseWriter, r *http.Request) {
	if allow := a.methodsAt(r); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, domain.Errorf(domain.CodeMethodNotAllowed, "%s %s: this endpoint takes %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, domain.Errorf(domain.CodeNotFound, "no API endpoint %s %s", r.Method, r.URL.Path))
}

// methodsAt lists the methods that the API's routes take at r's path.
// (The mux's own 405 never comes: its catch-all under /_api/ takes
// every method.)
func (a *API) methodsAt(r *http.Request) []string {
	if rest, ok := strings.CutPrefix(r.URL.Path, channelsPrefix); ok {
		if route, _ := a.channelRoute(rest); route != nil {
			return []string{http.MethodGet, http.MethodHead}
		}
		return nil
	}
	var allow []string
	probe := *r // only its method, host and path are read
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		probe.Method = m
		if _, pattern := a.mux.Handler(&probe); pattern != "" && pattern != "/_api/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// ServeHTTP implements http.Handler. The routes under /_api/channels/
// are taken before the mux: a channel name may hold "/", "//", "." and
// ".." segments, which the mux would clean, answering with a redirect to
// another channel's path (GET /_api/channels//orders/history went to
// channel "orders", not "/orders").
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, channelsPrefix); ok && rest != "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.noEndpoint(w, r) // here too, not the mux's redirect of an odd path
			return
		}
		a.auth(func(w http.ResponseWriter, r *http.Request, c caller) error { return a.channelPath(w, r, c, rest) })(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// channelsPrefix starts the paths of a channel's routes.
const channelsPrefix = "/_api/channels/"

// OwnsPath reports whether a path is one ServeHTTP routes itself, for a
// router in front of it that would clean paths: a channel's routes.
func OwnsPath(p string) bool { return strings.HasPrefix(p, channelsPrefix) }

type caller struct {
	app   *apps.App
	actor domain.Actor
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// auth resolves the app from the Host header and checks the bearer key: the
// admin key opens every app, an app key only its own.
func (a *API) auth(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		app, err := a.apps.LookupHost(r.Host)
		if err != nil {
			writeError(w, err)
			return
		}
		key, err := bearerKey(r)
		if err != nil {
			writeError(w, err)
			return
		}
		c := caller{app: app}
		given := KeyDigest(key) // hashed once, compared with each key in constant time
		switch {
		case SameKey(given, a.admin):
			c.actor = domain.Actor{Kind: domain.ActorAdmin}
		default:
			name, found := "", false
			for n, d := range a.appKeyDigests(app) {
				if SameKey(given, d) {
					name, found = n, true
				}
			}
			if !found {
				writeError(w, domain.Errorf(domain.CodeUnauthorized, "key is not valid for app %s", app.Name))
				return
			}
			c.actor = domain.Actor{Kind: domain.ActorAPIKey, ID: name}
		}
		if err := h(w, r, c); err != nil {
			if domain.CodeOf(err) == domain.CodeInternal {
				a.log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, err)
		}
	}
}

// bearerKey returns the key of r's Authorization: Bearer <key>, or an
// unauthorized error.
func bearerKey(r *http.Request) (string, error) {
	// The scheme's name is case-insensitive (RFC 9110, 11.1).
	scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	key = strings.TrimLeft(key, " ")
	if !strings.EqualFold(scheme, "Bearer") || key == "" {
		return "", domain.Errorf(domain.CodeUnauthorized, "missing Authorization: Bearer <key>")
	}
	return key, nil
}

// appKeyDigests returns the digests of app's API keys by name, hashed once
// for each version of its settings: the registry makes a new App when
// app.json changes.
func (a *API) appKeyDigests(app *apps.App) map[string][]byte {
	a.kmu.Lock()
	defer a.kmu.Unlock()
	if c, ok := a.keys[app.Name]; ok && c.app == app {
		return c.digests
	}
	d := make(map[string][]byte, len(app.Settings.APIKeys))
	for n, k := range app.Settings.APIKeys {
		if k != "" {
			d[n] = KeyDigest(k)
		}
	}
	a.keys[app.Name] = appKeys{app, d}
	return d
}

// KeyDigest is the SHA-256 digest of a key. Keys are compared by their
// digests, which are all of one length: ConstantTimeCompare answers at
// once for inputs of different lengths, which would tell a caller how
// long a key is.
func KeyDigest(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// SameKey compares two keys' digests in constant time.
func SameKey(given, want []byte) bool {
	return subtle.ConstantTimeCompare(given, want) == 1
}

// purge deletes the history of an app the server no longer hosts (its
// folder removed, and the apps folder unchanged for --app-grace:
// apps.Registry.Removed), which
// retention otherwise keeps whole: its messages, and with {"audit":
// true} the events of its ended sessions and broadcasts. Only the admin
// key may, whatever the Host; an app still hosted is refused.
func (a *API) purge(w http.ResponseWriter, r *http.Request) {
	key, err := bearerKey(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !SameKey(KeyDigest(key), a.admin) {
		writeError(w, domain.Errorf(domain.CodeUnauthorized, "purging an app's history takes the admin key"))
		return
	}
	name := r.PathValue("app")
	var body struct {
		Audit bool `json:"audit"`
	}
	if err := decodeOptionalBody(r, 4096, &body); err != nil {
		writeError(w, err)
		return
	}
	// A name no app can have is the caller's mistake, not an app not
	// found (the lookups by Host answer so).
	if err := domain.ValidateApp(name); err != nil {
		writeError(w, domain.Errorf(domain.CodeBadRequest, "%s", err.Error()))
		return
	}
	if err := a.apps.Removed(name); err != nil {
		writeError(w, err)
		return
	}
	a.pmu.Lock()
	if a.purging[name] {
		a.pmu.Unlock()
		writeError(w, domain.Errorf(domain.CodeNotAllowed, "a purge of app %s is running: the server's log says what it deleted when it ends", name))
		return
	}
	if a.purging == nil {
		a.purging = map[string]bool{}
	}
	a.purging[name] = true
	a.pmu.Unlock()
	defer func() {
		a.pmu.Lock()
		delete(a.purging, name)
		a.pmu.Unlock()
	}()
	var sessions, broadcasts uint64
	if body.Audit && a.applied != nil {
		sessions, broadcasts = a.applied()
	}
	// A large app's purge can outlast the client's wait: it goes on,
	// and the server's log says what it did.
	p, err := a.store.PurgeApp(context.WithoutCancel(r.Context()), name, body.Audit, sessions, broadcasts)
	if err != nil {
		// What was deleted before the failure stays deleted: a later
		// call takes the rest.
		a.log.Error("purge", "app", name, "messages", p.Messages, "events", p.Events, "err", err)
		writeError(w, err)
		return
	}
	if p.Unknown {
		a.log.Info("purge of an app the log holds nothing of", "app", name)
	} else {
		a.log.Info("purged the history of an app no longer hosted", "app", name, "messages", p.Messages, "events", p.Events,
			"messages_left", p.MessagesLeft, "events_left", p.EventsLeft, "newest_kept", p.NewestKept)
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": name, "messages": p.Messages, "events": p.Events,
		"messages_left": p.MessagesLeft, "events_left": p.EventsLeft, "newest_kept": p.NewestKept, "known": !p.Unknown})
}

// healthz answers whether the server works: 200 and "ok", or 503 and
// "failing" with each failing part and since when (unix ms), so that a
// monitor or a load balancer sees a log that cannot commit, or a
// projection stuck on an event, which a process that answers HTTP hides.
// Why a part fails (an error that may name clients and channels) is
// given to the admin key only; the server's log has it too.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	var failing map[string]any
	admin := false
	for _, c := range a.checks {
		if since, err := c.failing(); err != nil && time.Since(since) >= c.after {
			if failing == nil {
				failing, admin = map[string]any{}, a.isAdmin(r)
			}
			part := map[string]any{"since": since.UnixMilli()}
			if admin {
				part["error"] = err.Error()
			}
			failing[c.name] = part
		}
	}
	if len(failing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "failing", "seq": a.store.Head(), "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "seq": a.store.Head()})
}

// AdminOnly wraps h so that only the admin key reaches it: 401 for a
// request without it. /metrics is one such: behind a reverse proxy that
// forwards every path, as a deployment's does, it would be the
// internet's (the process's memory, its Go version, the traffic).
func (a *API) AdminOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.isAdmin(r) {
			writeError(w, domain.Errorf(domain.CodeUnauthorized, "%s takes the admin key (Authorization: Bearer ...), or is served without one on --debug-addr", r.URL.Path))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isAdmin says whether r carries the admin key.
func (a *API) isAdmin(r *http.Request) bool {
	key, err := bearerKey(r)
	return err == nil && SameKey(KeyDigest(key), a.admin)
}

// readBody reads r's body, up to one byte past max so that a parse can
// tell one over it.
func readBody(r *http.Request, max int) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return nil, domain.Errorf(domain.CodeBadRequest, "read body: %v", err)
	}
	return body, nil
}

// decodeOptionalBody decodes a JSON body of at most max bytes into v. The
// body may be left out: none, or an empty one however it is sent
// (Content-Length: 0, or chunked with no data, whose length net/http
// cannot know before reading), leaves v as it is.
func decodeOptionalBody(r *http.Request, max int, v any) error {
	body, err := readBody(r, max)
	if err != nil {
		return err
	}
	if len(body) <= max && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return parseBodyDepth(body, max, domain.DefaultMaxJSONDepth, v)
}

// decodeBodyDepth decodes a JSON body of at most max bytes, nesting at
// most depth levels, into v.
func decodeBodyDepth(r *http.Request, max, depth int, v any) error {
	body, err := readBody(r, max)
	if err != nil {
		return err
	}
	return parseBodyDepth(body, max, depth, v)
}

// parseBodyDepth decodes a JSON request body into v after checking its
// size and nesting. Every failure has a protocol code.
func parseBodyDepth(body []byte, max, depth int, v any) error {
	if len(body) > max {
		return domain.Errorf(domain.CodeTooLarge, "body is over %d bytes", max)
	}
	if err := domain.CheckDepth(body, depth); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return domain.Errorf(domain.CodeBadRequest, "body is not the JSON expected: %v", err)
	}
	return nil
}

type publishBody struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// parsePublish reads and checks a publish body against a data size limit
// and the app's depth limit, as a client's publish frame is.
func parsePublish(body []byte, limit, depth int) (publishBody, error) {
	var p publishBody
	if err := parseBodyDepth(body, limit+1024, depth, &p); err != nil {
		return p, err
	}
	return p, checkPublish(p, limit)
}

// checkPublish checks one message of a publish against the app's data limit.
func checkPublish(p publishBody, limit int) error {
	if err := domain.ValidateChannel(p.Channel); err != nil {
		return err
	}
	if !domain.HasData(p.Data) {
		return domain.Errorf(domain.CodeBadRequest, "publish needs data")
	}
	if len(p.Data) > limit {
		return domain.Errorf(domain.CodeTooLarge, "data is %d bytes; the limit is %d", len(p.Data), limit)
	}
	return nil
}

func (a *API) publish(w http.ResponseWriter, r *http.Request, c caller) error {
	limit := c.app.Settings.Limits.MaxMessageBytes
	raw, err := readBody(r, limit+1024)
	if err != nil {
		return err
	}
	body, err := parsePublish(raw, limit, c.app.Settings.Limits.MaxJSONDepth)
	if err != nil {
		return err
	}
	mb := &domain.MessageBroadcast{App: c.app.Name, Channel: body.Channel, Data: body.Data, Publisher: c.actor}
	evs, err := a.store.Append(r.Context(), mb)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, publishResult{mb.Channel, mb.Offset, mb.Epoch, evs[0].Seq})
	return nil
}

// publishResult is what a publish answers for each message: a struct
// rather than a map, since every API publish encodes one (a map is
// sorted and boxed at each encoding).
type publishResult struct {
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset"`
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
}

// publishBatch broadcasts several messages, to one channel or many, in one
// request and one transaction: all of them are committed, in the order
// given, or none is. A message that fails a check refuses the batch with
// its index in the error.
func (a *API) publishBatch(w http.ResponseWriter, r *http.Request, c caller) error {
	limit := c.app.Settings.Limits.MaxMessageBytes
	maxBody := max(domain.MaxBatchBytes, limit+1024)
	var body struct {
		Messages []publishBody `json:"messages"`
	}
	// Each message sits two levels deeper than in a single publish's body,
	// so data that a single publish takes is taken here too.
	if err := decodeBodyDepth(r, maxBody, c.app.Settings.Limits.MaxJSONDepth+2, &body); err != nil {
		return err
	}
	if err := domain.CheckBatchSize("publish-batch", len(body.Messages)); err != nil {
		return err
	}
	facts := make([]domain.Fact, len(body.Messages))
	mbs := make([]*domain.MessageBroadcast, len(body.Messages))
	for i, m := range body.Messages {
		if err := checkPublish(m, limit); err != nil {
			return domain.Errorf(domain.CodeOf(err), "messages[%d]: %v", i, err)
		}
		mbs[i] = &domain.MessageBroadcast{App: c.app.Name, Channel: m.Channel, Data: m.Data, Publisher: c.actor}
		facts[i] = mbs[i]
	}
	evs, err := a.store.Append(r.Context(), facts...)
	if err != nil {
		return domain.BatchError(err)
	}
	out := make([]publishResult, len(mbs))
	for i, mb := range mbs {
		out[i] = publishResult{mb.Channel, mb.Offset, mb.Epoch, evs[i].Seq}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
	return nil
}

func (a *API) broadcastAll(w http.ResponseWriter, r *http.Request, c caller) error {
	var body struct {
		Data json.RawMessage `json:"data"`
	}
	limit := c.app.Settings.Limits.MaxMessageBytes
	if err := decodeBodyDepth(r, limit+1024, c.app.Settings.Limits.MaxJSONDepth, &body); err != nil {
		return err
	}
	if !domain.HasData(body.Data) {
		return domain.Errorf(domain.CodeBadRequest, "broadcast-all needs data")
	}
	if len(body.Data) > limit {
		return domain.Errorf(domain.CodeTooLarge, "data is %d bytes; the limit is %d", len(body.Data), limit)
	}
	evs, err := a.store.Append(r.Context(), &domain.BroadcastAll{App: c.app.Name, Data: body.Data, Publisher: c.actor})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"seq": evs[0].Seq, "connections": a.members.Count(c.app.Name, "")})
	return nil
}

type channelJSON struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
	Head        uint64 `json:"head"`
	Epoch       string `json:"epoch"` // "" for a channel without history
	FirstOffset uint64 `json:"first_offset"`
}

func (a *API) channels(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	limit, err := pageLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	page, err := domain.ListChannels(r.Context(), a.store, a.members, c.app.Name, q.Get("after"), limit)
	if err != nil {
		return err
	}
	out := make([]channelJSON, len(page))
	for i, ch := range page {
		out[i] = channelJSON{ch.Channel, ch.Subscribers, ch.Head, ch.Epoch, ch.First}
	}
	resp := map[string]any{"channels": out}
	if len(page) == limit {
		resp["next_after"] = page[len(page)-1].Channel
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// channelPath routes /_api/channels/{channel}/history and .../subscribers,
// rest being the path after /_api/channels/; channel names may contain
// '/'.
func (a *API) channelPath(w http.ResponseWriter, r *http.Request, c caller, rest string) error {
	route, channel := a.channelRoute(rest)
	if route == nil {
		return domain.Errorf(domain.CodeNotFound, "no API endpoint GET %s", r.URL.Path)
	}
	return route(w, r, c, channel)
}

// channelRoute is the route of a channel's path, rest being what follows
// /_api/channels/, and the channel it names; nil when there is none. The
// routes take GET and HEAD (ServeHTTP, methodsAt).
func (a *API) channelRoute(rest string) (route func(http.ResponseWriter, *http.Request, caller, string) error, channel string) {
	if ch, ok := strings.CutSuffix(rest, "/history"); ok {
		return a.history, ch
	}
	if ch, ok := strings.CutSuffix(rest, "/subscribers"); ok {
		return a.subscribers, ch
	}
	return nil, ""
}

func (a *API) history(w http.ResponseWriter, r *http.Request, c caller, channel string) error {
	if err := domain.ValidateChannel(channel); err != nil {
		return err
	}
	q := r.URL.Query()
	var hq domain.HistoryQuery
	var err error
	if hq.After, err = uintParam(q.Get("offset")); err != nil {
		return err
	}
	if hq.Since, err = timeParam("since", q.Get("since")); err != nil {
		return err
	}
	if hq.Until, err = timeParam("until", q.Get("until")); err != nil {
		return err
	}
	limit, err := uintParam(q.Get("limit"))
	if err != nil {
		return err
	}
	last, err := uintParam(q.Get("last"))
	if err != nil {
		return err
	}
	hq.Last = int(min(last, domain.MaxPageSize))
	hq.Limit = domain.HistoryPageSize(limit, hq.Last)
	if hq.Reverse, err = boolParam("reverse", q.Get("reverse")); err != nil {
		return err
	}
	none := q.Get("last") != "" && hq.Last == 0 // last=0: the newest none, as on subscribe
	info, msgs, err := a.store.ChannelHistory(r.Context(), c.app.Name, channel, hq, none)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []domain.Message{}
	}
	resp := map[string]any{
		"channel": channel, "epoch": info.Epoch, "head": info.Head, "first_offset": info.First,
		"messages": msgs,
	}
	if hq.Last == 0 && !hq.Reverse && domain.HistoryPageFull(msgs, hq.Limit) {
		resp["next_offset"] = msgs[len(msgs)-1].Offset
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) subscribers(w http.ResponseWriter, r *http.Request, c caller, channel string) error {
	if err := domain.ValidateChannel(channel); err != nil {
		return err
	}
	if at := r.URL.Query().Get("at"); at != "" {
		t, err := timeParam("at", at)
		if err != nil {
			return err
		}
		ids, err := a.store.SubscribersAt(r.Context(), c.app.Name, channel, t)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"channel": channel, "at": t, "subscribers": ids})
		return nil
	}
	ids := a.members.Subscribers(c.app.Name, channel)
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": channel, "subscribers": ids})
	return nil
}

func (a *API) kick(w http.ResponseWriter, r *http.Request, c caller) error {
	id := r.PathValue("id")
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeOptionalBody(r, 4096, &body); err != nil {
		return err
	}
	// Answered once the kick is applied (domain.Kick): past its bound,
	// 503 unavailable, the kick recorded and still to take effect.
	seq, err := domain.Kick(r.Context(), a.store, a.members, c.app.Name, id, body.Reason, c.actor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": id, "kicked": true, "seq": seq})
	return nil
}

// EventTypes maps the short type names the audit accepts to event names.
var EventTypes = map[string]string{
	"connected":     domain.NameClientConnected,
	"disconnected":  domain.NameClientDisconnected,
	"subscribed":    domain.NameChannelSubscribed,
	"unsubscribed":  domain.NameChannelUnsubscribed,
	"broadcast":     domain.NameMessageBroadcast,
	"broadcast_all": domain.NameBroadcastAll,
	"kicked":        domain.NameClientKicked,
}

// ParseTypes turns a comma-separated list of short or full event names into
// event names.
func ParseTypes(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if name, ok := EventTypes[t]; ok {
			out = append(out, name)
		} else if _, ok := domain.NewFact(t); ok {
			out = append(out, t)
		} else {
			return nil, domain.Errorf(domain.CodeBadRequest, "unknown event type %q", t)
		}
	}
	return out, nil
}

// AuditEvent is how the audit shows an event.
type AuditEvent struct {
	Seq     uint64      `json:"seq"`
	Time    int64       `json:"time"`
	Type    string      `json:"type"`
	App     string      `json:"app"`
	Channel string      `json:"channel,omitempty"`
	Client  string      `json:"client,omitempty"`
	Event   domain.Fact `json:"event"`
}

// NewAuditEvent wraps an event for display.
func NewAuditEvent(ev domain.Event) AuditEvent {
	app, ch, cl := ev.Fact.Scope()
	return AuditEvent{ev.Seq, ev.Time, ev.Fact.EventName(), app, ch, cl, ev.Fact}
}

func (a *API) audit(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	aq := domain.AuditQuery{App: c.app.Name, Channel: q.Get("channel"), Client: q.Get("client")}
	var err error
	if aq.Types, err = ParseTypes(q.Get("type")); err != nil {
		return err
	}
	if aq.Since, err = timeParam("since", q.Get("since")); err != nil {
		return err
	}
	if aq.Until, err = timeParam("until", q.Get("until")); err != nil {
		return err
	}
	if aq.After, err = uintParam(q.Get("after")); err != nil {
		return err
	}
	if aq.Limit, err = pageLimit(q.Get("limit")); err != nil {
		return err
	}
	evs, err := a.store.Events(r.Context(), aq)
	if err != nil {
		return err
	}
	out := make([]AuditEvent, len(evs))
	for i, ev := range evs {
		out[i] = NewAuditEvent(ev)
	}
	resp := map[string]any{"events": out}
	if len(evs) == aq.Limit {
		resp["next_after"] = evs[len(evs)-1].Seq
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// pageLimit reads a page's size (domain.PageSize).
func pageLimit(s string) (int, error) {
	n, err := uintParam(s)
	return domain.PageSize(n), err
}

// uintParam reads a whole number of at most 63 bits, as SQLite's
// integers are: a larger offset or sequence cannot exist.
func uintParam(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if errors.Is(err, strconv.ErrRange) {
		return 0, domain.Errorf(domain.CodeBadRequest, "%q is over %d", s, uint64(math.MaxInt64))
	}
	if err != nil {
		return 0, domain.Errorf(domain.CodeBadRequest, "%q is not a whole number", s)
	}
	return n, nil
}

// timeParam reads the time named name as unix milliseconds or RFC 3339;
// "" is 0 (no bound). A time before 1970, or unix seconds, is refused: 0
// and a negative bound mean none, so either would answer as if no bound
// had been given.
func timeParam(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, domain.CheckUnixMillis(name, n)
	}
	// A query string's "+" is a space: 2026-01-02T15:04:05+02:00 sent
	// as it is arrives with a space, which RFC 3339 never has.
	if t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(s, " ", "+")); err == nil {
		if t.UnixMilli() < 0 {
			return 0, domain.Errorf(domain.CodeBadRequest, "%s %q: a time before 1970", name, s)
		}
		return t.UnixMilli(), nil
	}
	return 0, domain.Errorf(domain.CodeBadRequest, "%s %q is not a time (unix ms or RFC 3339)", name, s)
}

// boolParam reads a parameter that is true or false: "true" or "1",
// "false" or "0", or none (false). Anything else is refused, where it was
// read as false and a caller asking reverse=TRUE got the oldest first.
func boolParam(name, s string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "", "false", "0":
		return false, nil
	}
	return false, domain.Errorf(domain.CodeBadRequest, "%s=%q: want true or false", name, s)
}

// writeError writes err as {"error","code"} with the status its code maps to.
func writeError(w http.ResponseWriter, err error) {
	code := domain.CodeOf(err)
	msg := err.Error()
	if code == domain.CodeInternal {
		msg = "internal error"
		if errors.Is(err, context.Canceled) {
			msg = "request canceled"
		}
	}
	if code == domain.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fazt"`)
	}
	writeJSON(w, code.HTTPStatus(), map[string]any{"error": msg, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(fmt.Sprintf(`{"error":%q,"code":"internal"}`, err.Error()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
