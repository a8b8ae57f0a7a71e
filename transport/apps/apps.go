// Package apps finds the apps a server hosts: one folder each under the apps
// dir, with optional settings in app.json. The app "default" always exists.
package apps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// Settings is an app's app.json.
type Settings struct {
	// ClientPublish lets WebSocket clients publish to channels (the
	// onPublish hook may still refuse or change each message).
	ClientPublish bool `json:"client_publish,omitempty"`
	// APIKeys are the app's own server API keys, by name. The name is what
	// the audit log records as the publisher.
	APIKeys map[string]string `json:"api_keys,omitempty"`
	// AllowedOrigins lists the browser origins that may open WebSockets
	// (scheme://host[:port]); empty allows any.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// Secret signs the tokens (HMAC JWT) that admit clients to private-*
	// channels. Without one, private channels admit no one.
	Secret string `json:"secret,omitempty"`
	// Limits override the server's defaults for this app.
	Limits domain.Limits `json:"limits,omitempty"`
	// Retention overrides the server's default retention for this app.
	Retention Retention `json:"retention,omitempty"`
	// JS may lower the time limits of the app's JavaScript.
	JS JSLimits `json:"js,omitempty"`
}

// JSLimits are an app's limits on its JavaScript, in milliseconds. Zero
// keeps the server's limit; a value above the server's limit is ignored.
type JSLimits struct {
	// HandlerTimeoutMS bounds one run of api/main.js (server default 5000).
	HandlerTimeoutMS int `json:"handler_timeout_ms,omitempty"`
	// HookTimeoutMS bounds one hook of api/realtime.js (server default 1000).
	HookTimeoutMS int `json:"hook_timeout_ms,omitempty"`
}

// App is one hosted app.
type App struct {
	Name     string
	Dir      string // empty for a default app with no folder
	Settings Settings
}

// Registry looks apps up by name, reading app.json at most once a second
// and applying it when its bytes change.
// Safe for concurrent use.
type Registry struct {
	dir     string
	log     *slog.Logger
	recheck time.Duration // how long app.json is taken as read (a second)
	// vanishGrace is how long an app whose app.json is gone keeps the
	// settings it last read from one (10 s).
	vanishGrace time.Duration
	// domains are the server's own (SetDomains): LookupHost refuses a
	// Host under none of them.
	domains []string
	mu      sync.Mutex
	cache   map[string]*entry
	// known holds, by app, the settings last read well from an app.json,
	// and whether it or the app's folder has gone since (see Lookup); an
	// entry stays until a new app.json replaces it.
	known map[string]*known
	// What the registry has seen of the apps folder (sawAppsDir): the
	// folder itself at first, its modification time last seen, and when
	// (by this process's clock) that was first seen.
	dirFirst   os.FileInfo
	dirMod     time.Time
	dirModSeen time.Time
}

// entry is what Lookup answers for an app until checked+recheck.
type entry struct {
	app      *App  // nil while the app's settings were never read well
	err      error // why not, then
	defaults bool  // app runs on the defaults (no app.json, or none readable)
	checked  time.Time
	// The app.json that last failed and why, told once.
	badBody []byte
	badErr  string
}

// known is an app's last good app.json: its bytes, what was read from
// them, and since when it, or the app's folder, has been gone (zero while
// it is there).
type known struct {
	app       *App
	body      []byte
	goneSince time.Time
	// What the log has said: that the folder is gone (within the
	// grace), that the defaults apply, that the app is no more.
	toldAway, toldDefaults, toldNoMore bool
}

// markGone starts k's grace at now, unless it runs already; k may be nil.
func (k *known) markGone(now time.Time) {
	if k != nil && k.goneSince.IsZero() {
		k.goneSince = now
	}
}

// kept is what k keeps at now: its settings, unless it has been gone for
// the grace or longer.
func (r *Registry) kept(k *known, now time.Time) *App {
	if k != nil && (k.goneSince.IsZero() || now.Sub(k.goneSince) < r.vanishGrace) {
		return k.app
	}
	return nil
}

// ForRetention looks the app named name up, as Lookup does, and reports
// whether retention must keep its whole history rather than trim by
// what it returns: when the lookup fails; when the app had an app.json
// that is gone, with its folder or alone, and none that parses has been
// read since (a deploy writing the folder again would otherwise see, in
// between, what the app asked to keep trimmed by the defaults); or when
// it runs on the defaults because its app.json cannot be read. One lock,
// so that the answer and the app go together.
func (r *Registry) ForRetention(name string) (app *App, keepAll bool, err error) {
	if err := domain.ValidateApp(name); err != nil {
		return nil, true, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	app, err = r.lookup(name)
	k, e := r.known[name], r.cache[name]
	keepAll = err != nil || k != nil && !k.goneSince.IsZero() || e != nil && e.badErr != "" && e.defaults
	return app, keepAll, err
}

// Removed says whether the app named name is no more, and has been so
// for the grace a vanished app.json has (10 s), with an error saying why
// not: an app whose folder is gone only for a moment, as in a deploy
// that writes it again, must not be taken for removed. Its folder is
// gone now, no entry of its name is left in the apps folder (a link
// whose target is gone keeps it), and the apps folder has not changed
// for the grace, by this server's own clock, from when it first saw the
// folder's present modification time: removing or making an app's
// folder changes it, so the app's folder has been gone at least that
// long. (Another app's deploy puts it off too.) The clock starts at the
// first lookup that finds the app's folder gone, or at this call. An
// apps folder that is not the one apps were first served from (a volume
// unmounted from it) takes no app for removed.
func (r *Registry) Removed(name string) error {
	if err := domain.ValidateApp(name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// In this order: a folder removed after the lookup changes the apps
	// folder before its stat below.
	if _, err := r.lookup(name); domain.CodeOf(err) != domain.CodeNotFound {
		// Hosted, on its settings or the defaults, within the grace of
		// a vanished folder, or not served for a broken app.json.
		return domain.Errorf(domain.CodeNotAllowed, "app %s is still on this server: remove its folder first", name)
	}
	if _, err := os.Lstat(filepath.Join(r.dir, name)); !errors.Is(err, fs.ErrNotExist) {
		return domain.Errorf(domain.CodeNotAllowed, "app %s still has an entry in the apps folder (a link to a folder that is gone?): remove it first", name)
	}
	now := time.Now()
	same, err := r.sawAppsDir(now)
	switch {
	case err != nil:
		return domain.Errorf(domain.CodeNotAllowed, "the apps folder %s cannot be read: no app is taken for removed", r.dir)
	case !same:
		return domain.Errorf(domain.CodeNotAllowed, "the apps folder %s is not the one this server served apps from (a volume unmounted?): no app is taken for removed until a restart", r.dir)
	}
	if seen := now.Sub(r.dirModSeen); seen < r.vanishGrace {
		return domain.Errorf(domain.CodeNotAllowed, "the apps folder has changed within %s (as this server saw it): an app's folder gone for less may be a deploy writing it again; try again in %s", r.vanishGrace, (r.vanishGrace - seen).Round(time.Millisecond))
	}
	return nil
}

// sawAppsDir looks at the apps folder at now, under r.mu: the first
// folder seen is the one apps are served from, and a modification time
// not seen before starts Removed's clock. It reports whether the folder
// is that first one.
func (r *Registry) sawAppsDir(now time.Time) (same bool, err error) {
	st, err := os.Stat(r.dir)
	if err == nil && !st.IsDir() {
		err = errors.New("not a folder")
	}
	if err != nil {
		return false, err
	}
	if r.dirFirst == nil {
		r.dirFirst = st
	} else if !os.SameFile(r.dirFirst, st) {
		return false, nil
	}
	if !st.ModTime().Equal(r.dirMod) {
		r.dirMod, r.dirModSeen = st.ModTime(), now
	}
	return true, nil
}

// maxAppJSON bounds the app.json read: a settings file is a few hundred
// bytes.
const maxAppJSON = 1 << 20

// NewRegistry returns a registry over the apps in dir. It logs to
// slog.Default() until SetLogger.
func NewRegistry(dir string) *Registry {
	r := &Registry{dir: dir, log: slog.Default(), recheck: time.Second, vanishGrace: 10 * time.Second,
		cache: map[string]*entry{}, known: map[string]*known{}}
	r.sawAppsDir(time.Now()) // when there is one
	return r
}

// SetGrace sets how long an app whose app.json or folder has vanished
// keeps the settings it last read (10 s by default), and how long the
// apps folder must have stayed unchanged before Removed takes an app
// whose folder is gone for removed. Call it before the first lookup.
func (r *Registry) SetGrace(d time.Duration) {
	r.mu.Lock()
	r.vanishGrace = d
	r.mu.Unlock()
}

// SetLogger sets where the registry says that an app.json could not be
// read.
func (r *Registry) SetLogger(l *slog.Logger) {
	r.mu.Lock()
	r.log = l
	r.mu.Unlock()
}

// warnUnknown logs the fields of an app.json that no setting has: a
// misspelt key ("allowed_origin") would otherwise leave its setting at the
// default without a word.
func (r *Registry) warnUnknown(name string, body []byte) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&Settings{}); err != nil {
		r.log.Warn("app.json has a field no setting uses", "app", name, "err", err)
	}
}

// Dir returns the apps dir.
func (r *Registry) Dir() string { return r.dir }

// SetDomains sets the domains the server serves apps under (fazt serve
// --domain), lower case, without a trailing dot: a request whose Host is
// under none of them reaches no app (LookupHost). Call it before the
// first lookup.
func (r *Registry) SetDomains(domains []string) {
	r.mu.Lock()
	r.domains = domains
	r.mu.Unlock()
}

// LookupHost is Lookup of the app a request's Host names
// (domain.AppFromHostIn, under the domains set): not_found for a host
// under none of them.
func (r *Registry) LookupHost(host string) (*App, error) {
	// Set before the first lookup: read without the lock every request
	// takes once in Lookup.
	domains := r.domains
	name, ok := domain.AppFromHostIn(host, domains)
	if !ok {
		// The domains are not named: anyone may send any Host.
		return nil, domain.Errorf(domain.CodeNotFound, "host %q is not under this server's domains", host)
	}
	return r.Lookup(name)
}

// Lookup returns the app named name, or an error with code not_found (no
// such app) or unavailable (its app.json never read well).
//
// An app's app.json is read again once a second, and applied when its
// bytes change (not its modification time, which a copy may keep, and a
// chmod or a coarse clock may not move). A version that cannot be read
// or parsed, or holds a bad value, is not applied: the app keeps the
// settings it last read, or, having none, is not served. One that is
// gone keeps them for vanishGrace (an editor that saves by renaming, or a
// deploy that writes the folder again, leaves it absent for a moment, in
// which the defaults would let any origin in), then the defaults apply.
// Each failure is logged once.
func (r *Registry) Lookup(name string) (*App, error) {
	if err := domain.ValidateApp(name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookup(name)
}

// lookup is Lookup, under r.mu.
func (r *Registry) lookup(name string) (*App, error) {
	now := time.Now()
	e := r.cache[name]
	if e != nil && now.Sub(e.checked) < r.recheck {
		return e.app, e.err
	}
	k := r.known[name]
	// past: the app had settings, gone for the grace or longer, so the
	// defaults apply to it now.
	past := k != nil && r.kept(k, now) == nil
	defaults := func(dir string) *App {
		if past && !k.toldDefaults {
			k.toldDefaults = true
			r.log.Warn("app.json has been gone; the app runs on the defaults, and retention keeps its history whole until an app.json is read", "app", name, "after", r.vanishGrace)
		}
		if e != nil && e.defaults && e.app.Dir == dir {
			return e.app
		}
		return &App{Name: name, Dir: dir, Settings: Settings{Limits: domain.Limits{}.WithDefaults()}}
	}
	dir := filepath.Join(r.dir, name)
	st, serr := os.Stat(dir)
	if serr == nil && !st.IsDir() || errors.Is(serr, fs.ErrNotExist) || errors.Is(serr, syscall.ENOTDIR) {
		// The clock Removed reads starts at the first lookup that finds
		// the folder gone, whatever asked (a request, a heartbeat).
		r.sawAppsDir(now)
		k.markGone(now)
		if app := r.kept(k, now); app != nil {
			// A deploy that writes the folder again: the app keeps its
			// settings meanwhile, as when its app.json alone is gone.
			if !k.toldAway {
				k.toldAway = true
				r.log.Warn("the app's folder is gone; the app keeps its settings meanwhile", "app", name, "for", r.vanishGrace)
			}
			r.cache[name] = &entry{app: app, checked: now}
			return app, nil
		}
		if name == domain.DefaultApp {
			// No folder: the defaults, taken as read for a second as
			// any app's settings are, rather than a stat of the folder
			// and a new App at every request.
			app := defaults("")
			r.cache[name] = &entry{app: app, defaults: true, checked: now}
			return app, nil
		}
		delete(r.cache, name) // what it read stays known (ForRetention)
		if k != nil && !k.toldNoMore {
			k.toldNoMore = true
			r.log.Warn("the app's folder has been gone; the app is no more, and retention keeps its history whole", "app", name, "after", r.vanishGrace)
		}
		return nil, domain.Errorf(domain.CodeNotFound, "no app %q on this server", name)
	}
	if r.dirFirst == nil && serr == nil {
		r.sawAppsDir(now) // the apps folder apps are served from
	}
	var body []byte
	err := serr // the folder cannot be read (a permission, an I/O error)
	if err == nil {
		body, err = readAppJSON(filepath.Join(dir, "app.json"))
	}
	var app *App
	fromDefaults := false
	switch {
	case err == nil && k != nil && bytes.Equal(body, k.body) && !past:
		k.goneSince, k.toldAway = time.Time{}, false // there again, within the grace
		app = k.app
	case err == nil:
		app = &App{Name: name, Dir: dir}
		// Only a file that parses ends a vanish: a broken one written
		// within the grace leaves its clock running.
		if err = json.Unmarshal(body, &app.Settings); err == nil {
			err = app.Settings.Retention.check()
		}
		if err != nil {
			err = fmt.Errorf("app %s: app.json: %w", name, err)
		} else {
			r.applied(app, body)
			r.known[name] = &known{app: app, body: body}
		}
	case errors.Is(err, fs.ErrNotExist):
		k.markGone(now)
		if r.kept(k, now) != nil {
			err = fmt.Errorf("app.json is gone; the app keeps its previous settings for %s, then runs on the defaults (write {} for them now)", r.vanishGrace)
			break
		}
		err = nil // no app.json: the defaults
		app, fromDefaults = defaults(dir), true
	default:
		err = fmt.Errorf("read %s/app.json: %w", name, err)
	}
	if err != nil {
		// Said once for each version of the file and each reason.
		told := e != nil && e.badErr == err.Error() && bytes.Equal(e.badBody, body)
		next := &entry{checked: now, badBody: body, badErr: err.Error()}
		next.app = r.kept(k, now)
		if next.app == nil && (e != nil && e.defaults || past || name == domain.DefaultApp) {
			// It ran on the defaults, or they apply to it now (the
			// grace has passed; or it is default, always served).
			next.app, next.defaults = defaults(dir), true
		}
		switch {
		case next.app != nil:
			// An edit that breaks app.json keeps the app running on the
			// settings it last read (its keys, its retention), or on the
			// defaults it ran on, rather than take it down; retention
			// keeps the whole history of an app on the defaults so
			// (ForRetention).
			if !told {
				if next.defaults {
					r.log.Error("app.json not applied; the app runs on the defaults, and retention keeps its history whole", "app", name, "err", err)
				} else {
					r.log.Error("app.json not applied; the app keeps its previous settings", "app", name, "err", err)
				}
			}
		default:
			// Never read well: the app is not served until the file is
			// fixed. Its clients are told it is unavailable, the log why.
			if !told {
				r.log.Error("app.json cannot be read; the app is not served until it is fixed", "app", name, "err", err)
			}
			next.err = domain.Errorf(domain.CodeUnavailable, "app %q is not available: its app.json cannot be read (see the server's log)", name)
		}
		r.cache[name] = next
		return next.app, next.err
	}
	r.cache[name] = &entry{app: app, defaults: fromDefaults, checked: now}
	return app, nil
}

// utf8BOM is what some editors (Windows' Notepad) write before a UTF-8
// file's text; JSON has no place for it, and it is read past.
var utf8BOM = []byte("\xef\xbb\xbf")

// negativeLimits says which limits are negative: each is the default, as
// a zero is (Limits.WithDefaults, the engine's own limits), though -1 was
// most likely meant as no limit, which none has.
func (s *Settings) negativeLimits() (why []string) {
	l := s.Limits
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"limits.max_message_bytes", float64(l.MaxMessageBytes)},
		{"limits.max_subscriptions", float64(l.MaxSubscriptions)},
		{"limits.max_connections", float64(l.MaxConnections)},
		{"limits.inbound_rate", l.InboundRate},
		{"limits.inbound_burst", float64(l.InboundBurst)},
		{"limits.max_json_depth", float64(l.MaxJSONDepth)},
		{"js.handler_timeout_ms", float64(s.JS.HandlerTimeoutMS)},
		{"js.hook_timeout_ms", float64(s.JS.HookTimeoutMS)},
	} {
		if f.v < 0 {
			why = append(why, fmt.Sprintf("%s: %s; no limit can be turned off: it is the server's default", f.name, strconv.FormatFloat(f.v, 'f', -1, 64)))
		}
	}
	return why
}

// readAppJSON reads an app.json: a regular file of at most maxAppJSON
// bytes. It is opened without blocking: opening a FIFO (or some devices)
// waits for a writer, holding the registry's lock meanwhile.
func readAppJSON(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	body, err := io.ReadAll(io.LimitReader(f, maxAppJSON+1))
	if err == nil && len(body) > maxAppJSON {
		err = fmt.Errorf("over %d bytes", maxAppJSON)
	}
	return bytes.TrimPrefix(body, utf8BOM), err
}

// applied completes app, read from body: it warns of fields no setting
// has, leaves out the keys that cannot work as meant and says so (the
// rest of the app, its other keys included, is served as usual), says
// which allowed origins no browser can match, and which secret and keys
// can be guessed or were published, and fills the limits' zero fields
// with the defaults.
func (r *Registry) applied(app *App, body []byte) {
	r.warnUnknown(app.Name, body)
	if n := app.Settings.Limits.MaxMessageBytes; n > domain.MaxMessageBytesLimit {
		// A connection reads frames up to four times the limit: a
		// gigabyte would let one client hold four.
		r.log.Error("app.json: limits.max_message_bytes is over the most a server takes; it is 16 MiB", "app", app.Name, "max_message_bytes", n)
		app.Settings.Limits.MaxMessageBytes = domain.MaxMessageBytesLimit
	}
	for _, why := range app.Settings.negativeLimits() {
		r.log.Error("app.json: a negative limit is taken as the default", "app", app.Name, "why", why)
	}
	for _, why := range app.Settings.dropBadKeys() {
		r.log.Error("app.json: an API key is not used", "app", app.Name, "why", why)
	}
	for _, why := range app.Settings.originsThatMatchNothing() {
		r.log.Error("app.json: an allowed origin matches no browser", "app", app.Name, "why", why)
	}
	// A short secret is said, not refused: refusing it would take apps
	// that run on one offline at an upgrade.
	if n := len(app.Settings.Secret); n > 0 && n < minSecretBytes {
		r.log.Error("app.json: the secret is shorter than 32 bytes: tokens signed with it can be forged by whoever guesses it offline from any token a client holds; use 32 or more random bytes", "app", app.Name, "bytes", n)
	}
	if published[app.Settings.Secret] {
		r.log.Warn("app.json: the secret is one published in Fazt's README; replace it with 32 or more random bytes before the server faces a network", "app", app.Name)
	}
	for name, key := range app.Settings.APIKeys {
		if published[key] {
			r.log.Warn("app.json: the app serves an API key published in Fazt's README; replace it before the server faces a network", "app", app.Name, "key_name", name)
		}
	}
	app.Settings.Limits = app.Settings.Limits.WithDefaults()
}

// minSecretBytes is the shortest secret the log does not call weak: an
// HMAC token lets whoever holds one test guesses at the secret offline,
// as fast as they can hash, so the secret must be too long to guess,
// as 32 random bytes are.
const minSecretBytes = 32

// published are the credentials Fazt's README and bundled apps show:
// the chat app's API key (apps/chat/app.json) and the app.json example's
// key and secret. Anyone may have read them, so an app that serves one
// is open to anyone it is reachable by.
var published = map[string]bool{
	"chat-example-key": true, "a-long-random-key": true, "signs the tokens of private-* channels": true,
}

// originsThatMatchNothing says why each allowed_origins entry that no
// browser's Origin can match would not: a browser sends
// scheme://host[:port], without the port when it is the scheme's own,
// and the server compares scheme and host exactly (no wildcards). Such
// entries stay, matching nothing, as before; the log says so, where
// before every browser was refused without a word.
func (s *Settings) originsThatMatchNothing() (why []string) {
	for _, o := range s.AllowedOrigins {
		u, err := url.Parse(o)
		switch {
		case err != nil || u.Host == "" || u.Scheme == "":
			why = append(why, fmt.Sprintf("allowed_origins: %q is not an origin such as https://chat.example.com (no wildcards)", o))
		case u.Port() == "443" && u.Scheme == "https", u.Port() == "80" && u.Scheme == "http":
			why = append(why, fmt.Sprintf("allowed_origins: %q names the scheme's own port, which browsers leave out: write %s://%s", o, u.Scheme, u.Hostname()))
		case strings.Contains(u.Host, "*"):
			why = append(why, fmt.Sprintf("allowed_origins: %q has a wildcard; list each origin", o))
		}
	}
	return why
}

// dropBadKeys removes the api_keys that could not work as meant, and
// says why for each: a key never matches with space around it (HTTP trims
// a header's value), a key with no name is the audit's "no one", and two
// names with one key would make which name a publish is recorded under a
// matter of chance (both are dropped).
func (s *Settings) dropBadKeys() (why []string) {
	names := make(map[string][]string, len(s.APIKeys))
	for name, key := range s.APIKeys {
		names[key] = append(names[key], name)
	}
	for name, key := range s.APIKeys {
		switch {
		case name == "":
			why = append(why, `api_keys: a key needs a name, "" is none`)
		case key == "":
			why = append(why, fmt.Sprintf("api_keys: %q is empty", name))
		case strings.TrimSpace(key) != key:
			why = append(why, fmt.Sprintf("api_keys: %q has space around it, which a request's header cannot carry", name))
		case len(names[key]) > 1:
			why = append(why, fmt.Sprintf("api_keys: %q has the same key as %q", name, slices.Min(slices.DeleteFunc(slices.Clone(names[key]), func(n string) bool { return n == name }))))
		default:
			continue
		}
		delete(s.APIKeys, name)
	}
	slices.Sort(why)
	return why
}

// List returns the names of the apps with a folder, plus default. A
// symbolic link to a folder is an app's folder, as Lookup takes it.
func (r *Registry) List() ([]string, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := []string{domain.DefaultApp}
	for _, e := range ents {
		if e.Name() == domain.DefaultApp || domain.ValidateApp(e.Name()) != nil {
			continue
		}
		dir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			st, err := os.Stat(filepath.Join(r.dir, e.Name()))
			dir = err == nil && st.IsDir()
		}
		if dir {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
