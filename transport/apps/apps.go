// Package apps finds the apps a server hosts: one folder each under the apps
// dir, with optional settings in app.json. The app "default" always exists.
package apps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// Registry looks apps up by name, re-reading app.json when it changes.
// Safe for concurrent use.
type Registry struct {
	dir     string
	log     *slog.Logger
	recheck time.Duration // how long app.json is taken as read (a second)
	mu      sync.Mutex
	cache   map[string]*entry
}

type entry struct {
	app     *App      // nil while the app's settings were never read well
	err     error     // why not, then
	modTime time.Time // of the app.json app was read from (zero: none)
	checked time.Time
	// The app.json that last failed, told once: its modification time
	// and what was wrong.
	bad    time.Time
	badErr string
}

// NewRegistry returns a registry over the apps in dir. It logs to
// slog.Default() until SetLogger.
func NewRegistry(dir string) *Registry {
	return &Registry{dir: dir, log: slog.Default(), recheck: time.Second, cache: map[string]*entry{}}
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
	if len(body) == 0 {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&Settings{}); err != nil {
		r.log.Warn("app.json has a field no setting uses", "app", name, "err", err)
	}
}

// Dir returns the apps dir.
func (r *Registry) Dir() string { return r.dir }

// Lookup returns the app named name, or an error with code not_found (no
// such app) or unavailable (its app.json never read well).
func (r *Registry) Lookup(name string) (*App, error) {
	if err := domain.ValidateApp(name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if e := r.cache[name]; e != nil && now.Sub(e.checked) < r.recheck {
		return e.app, e.err
	}
	dir := filepath.Join(r.dir, name)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		delete(r.cache, name)
		if name == domain.DefaultApp {
			return &App{Name: name, Settings: Settings{Limits: domain.Limits{}.WithDefaults()}}, nil
		}
		return nil, domain.Errorf(domain.CodeNotFound, "no app %q on this server", name)
	}
	var mod time.Time
	if fi, err := os.Stat(filepath.Join(dir, "app.json")); err == nil {
		mod = fi.ModTime()
	}
	// A version read well is not read again. One that failed is, at each
	// check: a fix need not change the modification time (a chmod, a
	// chown, or a rewrite within the same tick of a coarse clock).
	if e := r.cache[name]; e != nil && e.app != nil && e.modTime.Equal(mod) {
		e.checked = now
		return e.app, nil
	}
	app := &App{Name: name, Dir: dir}
	body, err := os.ReadFile(filepath.Join(dir, "app.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if e := r.cache[name]; e != nil && e.app != nil && !e.modTime.IsZero() {
			// It was there: an editor that saves by renaming, or a copy
			// under way, leaves it absent for a moment, and the defaults
			// would open the app meanwhile (any origin, the default
			// limits and keys). Its settings stay until a file comes.
			err = errors.New("app.json is gone; write {} for the defaults")
			break
		}
		err = nil // no app.json: the defaults
	case err != nil:
		err = fmt.Errorf("read %s/app.json: %w", name, err)
	default:
		if err = json.Unmarshal(body, &app.Settings); err != nil {
			err = fmt.Errorf("app %s: app.json: %w", name, err)
		} else if n := app.Settings.Limits.MaxMessageBytes; n > domain.MaxMessageBytesLimit {
			// A connection reads frames up to four times the limit:
			// a gigabyte would let one client hold four.
			err = fmt.Errorf("app %s: app.json: limits.max_message_bytes is %d, over the most a server takes, %d (16 MiB)", name, n, domain.MaxMessageBytesLimit)
		}
	}
	if err != nil {
		// An edit that breaks app.json keeps the app running on the
		// settings it last read (its keys, its retention), rather than
		// take it down, or let retention fall back to the server's
		// default; it is said once per version of the file.
		e := r.cache[name]
		told := e != nil && e.bad.Equal(mod) && e.badErr == err.Error()
		if e == nil || e.app == nil {
			// Never read well: the app is not served until the file is
			// fixed. Its clients are told it is unavailable, the log why,
			// once for each version of the file and each reason.
			if !told {
				r.log.Error("app.json cannot be read; the app is not served until it is fixed", "app", name, "err", err)
			}
			unavailable := domain.Errorf(domain.CodeUnavailable, "app %q is not available: its app.json cannot be read (see the server's log)", name)
			r.cache[name] = &entry{err: unavailable, checked: now, bad: mod, badErr: err.Error()}
			return nil, unavailable
		}
		if !told {
			e.bad, e.badErr = mod, err.Error()
			r.log.Error("app.json not applied; the app keeps its previous settings", "app", name, "err", err)
		}
		e.checked = now
		return e.app, nil
	}
	r.warnUnknown(name, body)
	// Keys that cannot work as meant are left out, and said so: the rest
	// of the app, its other keys included, is served as usual.
	for _, why := range app.Settings.dropBadKeys() {
		r.log.Error("app.json: an API key is not used", "app", name, "why", why)
	}
	for _, why := range app.Settings.originsThatMatchNothing() {
		r.log.Error("app.json: an allowed origin matches no browser", "app", name, "why", why)
	}
	app.Settings.Limits = app.Settings.Limits.WithDefaults()
	r.cache[name] = &entry{app: app, modTime: mod, checked: now}
	return app, nil
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
		case err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https":
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

// List returns the names of the apps with a folder, plus default.
func (r *Registry) List() ([]string, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := []string{domain.DefaultApp}
	for _, e := range ents {
		if e.IsDir() && e.Name() != domain.DefaultApp && domain.ValidateApp(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
