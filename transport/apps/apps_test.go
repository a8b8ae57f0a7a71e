package apps

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// TestBrokenAppJSONKeepsTheLastGoodSettings: an edit that breaks app.json
// leaves the app on the settings it had, says so once, and the next good
// edit applies. A field no setting has is warned about.
func TestBrokenAppJSONKeepsTheLastGoodSettings(t *testing.T) {
	r, dir, write, logs := chatRegistry(t)
	write(`{"client_publish": true, "retention": {"max_messages": -1}}`)
	app, err := r.Lookup("chat")
	if err != nil || !app.Settings.ClientPublish || app.Settings.Retention.MaxMessages != -1 {
		t.Fatalf("first read: %+v, %v", app, err)
	}
	// max_messages below -1 means no policy: refused, not read as keep
	// everything.
	for _, broken := range []string{`{"client_publish": false,}`, `{"retention": {"max_messages": 1.5}}`, `{"retention": {"max_messages": -5}}`} {
		write(broken)
		for range 3 {
			app, err = r.Lookup("chat")
			if err != nil || !app.Settings.ClientPublish || app.Settings.Retention.MaxMessages != -1 {
				t.Fatalf("after %s: %+v, %v; want the previous settings", broken, app, err)
			}
		}
	}
	if n := strings.Count(logs.String(), "app.json not applied"); n != 3 {
		t.Fatalf("%d errors logged for three broken versions, want 3:\n%s", n, logs.String())
	}
	write(`{"client_publish": false, "allowed_origin": ["https://x.example"]}`)
	if app, err = r.Lookup("chat"); err != nil || app.Settings.ClientPublish {
		t.Fatalf("after a good edit: %+v, %v", app, err)
	}
	// A file an editor began with a byte order mark is read past it, and
	// its fields are not taken for unknown.
	before := logs.Len()
	write("\ufeff" + `{"client_publish": true, "limits": {"max_connections": 7}}`)
	if app, err = r.Lookup("chat"); err != nil || !app.Settings.ClientPublish || app.Settings.Limits.MaxConnections != 7 {
		t.Fatalf("after an edit that begins with a byte order mark: %+v, %v", app, err)
	}
	if after := logs.String()[before:]; after != "" {
		t.Fatalf("a file with a byte order mark was logged about:\n%s", after)
	}
	if !strings.Contains(logs.String(), `allowed_origin`) {
		t.Fatalf("no warning about the misspelt field:\n%s", logs.String())
	}
	// One inside retention too, whose own check runs after the fields are
	// read.
	write(`{"client_publish": false, "retention": {"max_message": 100}}`)
	if app, err = r.Lookup("chat"); err != nil || app.Settings.ClientPublish {
		t.Fatalf("after an edit with a misspelt retention field: %+v, %v", app, err)
	}
	if !strings.Contains(logs.String(), `unknown field \"max_message\"`) {
		t.Fatalf("no warning about the misspelt retention field:\n%s", logs.String())
	}
	// An app whose first app.json is broken has nothing to keep: it is an
	// error, as before.
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "new", "app.json"), []byte(`{`), 0o644)
	if _, err := r.Lookup("new"); err == nil {
		t.Fatal("a broken first app.json was accepted")
	}
}

// TestAppJSONNeverReadIsUnavailable: an app whose app.json was broken from
// the start has no settings to fall back on. Every lookup says it is
// unavailable (not an internal error), the log says why once per version
// of the file, and a fixed file serves it.
func TestAppJSONNeverReadIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "chat"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "chat", "app.json")
	if err := os.WriteFile(p, []byte(`{"limits": {"max_message_bytes": "64k"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := NewRegistry(dir)
	r.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	r.recheck = 0
	for range 3 {
		if app, err := r.Lookup("chat"); app != nil || domain.CodeOf(err) != domain.CodeUnavailable {
			t.Fatalf("a never-read app.json: %+v, %v (%s); want unavailable", app, err, domain.CodeOf(err))
		}
	}
	if n := strings.Count(logs.String(), "app.json cannot be read"); n != 1 || !strings.Contains(logs.String(), "max_message_bytes") {
		t.Fatalf("%d errors logged for one broken version, want 1 saying why:\n%s", n, logs.String())
	}
	if err := os.WriteFile(p, []byte(`{"limits": {"max_message_bytes": 1000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if app, err := r.Lookup("chat"); err != nil || app.Settings.Limits.MaxMessageBytes != 1000 {
		t.Fatalf("after the fix: %+v, %v", app, err)
	}
}

// TestAPIKeysThatCannotWorkAreDropped: a key with space around it never
// matches (HTTP trims a header's value), a key without a name would be
// recorded as no one, and two names with one key would record a publish
// under either: such keys are left out, the log says why, and the app,
// its other keys included, is served as usual, from its first app.json on.
func TestAPIKeysThatCannotWorkAreDropped(t *testing.T) {
	r, _, write, logs := chatRegistry(t)
	for body, why := range map[string]string{
		`{"api_keys": {"worker": "k2", "": "k3"}}`:                   `a key needs a name`,
		`{"api_keys": {"worker": "k2", "backend": ""}}`:              `\"backend\" is empty`,
		`{"api_keys": {"worker": "k2", "backend": "k3 "}}`:           `\"backend\" has space around it`,
		`{"api_keys": {"worker": "k2", "backend": "k3", "b": "k3"}}`: `\"b\" has the same key as \"backend\"`,
	} {
		write(body)
		app, err := r.Lookup("chat")
		if err != nil || len(app.Settings.APIKeys) != 1 || app.Settings.APIKeys["worker"] != "k2" {
			t.Errorf("%s: %+v, %v; want only worker's key", body, app, err)
		}
		if !strings.Contains(logs.String(), why) {
			t.Errorf("%s: the log does not say %q:\n%s", body, why, logs.String())
		}
	}
}

// chatRegistry is a registry of a dir with an app chat, rechecking
// app.json at every lookup; write replaces chat's app.json.
func chatRegistry(t *testing.T) (r *Registry, dir string, write func(body string), logs *bytes.Buffer) {
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "chat"), 0o755); err != nil {
		t.Fatal(err)
	}
	logs = &bytes.Buffer{}
	r = NewRegistry(dir)
	r.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
	r.recheck = 0
	write = func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "chat", "app.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r, dir, write, logs
}

// A never-read app.json fixed without a change of its modification time
// (a chmod or chown, which only root's tests cannot show, or a rewrite
// within one tick of a coarse clock) serves the app at the next check:
// a failed version is read again, not cached as failed. The log still
// says why once.
func TestAppJSONFixedWithinTheSameTickIsRead(t *testing.T) {
	r, dir, _, logs := chatRegistry(t)
	p := filepath.Join(dir, "chat", "app.json")
	tick := time.Now().Add(-time.Hour).Truncate(time.Second)
	put := func(body string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, tick, tick); err != nil {
			t.Fatal(err)
		}
	}
	put(`{"limits": {"max_message_bytes": "64k"}}`)
	for range 3 {
		if _, err := r.Lookup("chat"); domain.CodeOf(err) != domain.CodeUnavailable {
			t.Fatalf("a broken first app.json: %v; want unavailable", err)
		}
	}
	if n := strings.Count(logs.String(), "app.json cannot be read"); n != 1 {
		t.Fatalf("%d errors logged for one broken version, want 1:\n%s", n, logs.String())
	}
	put(`{"limits": {"max_message_bytes": 1000}}`)
	if app, err := r.Lookup("chat"); err != nil || app.Settings.Limits.MaxMessageBytes != 1000 {
		t.Fatalf("after a fix with the same modification time: %+v, %v", app, err)
	}
}

// An app.json that vanishes (an editor saving by renaming, a copy under
// way) leaves the app on the settings it had, rather than the defaults,
// which would let any origin in; the log says so once. Written again,
// even as {}, it applies.
func TestVanishedAppJSONKeepsTheSettings(t *testing.T) {
	r, dir, write, logs := chatRegistry(t)
	write(`{"allowed_origins": ["https://chat.example"]}`)
	if app, err := r.Lookup("chat"); err != nil || len(app.Settings.AllowedOrigins) != 1 {
		t.Fatalf("first read: %+v, %v", app, err)
	}
	if err := os.Remove(filepath.Join(dir, "chat", "app.json")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if app, err := r.Lookup("chat"); err != nil || len(app.Settings.AllowedOrigins) != 1 {
			t.Fatalf("app.json gone: %+v, %v; want the previous settings", app, err)
		}
	}
	if n := strings.Count(logs.String(), "app.json is gone"); n != 1 {
		t.Fatalf("%d errors logged for a vanished app.json, want 1:\n%s", n, logs.String())
	}
	write(`{}`)
	if app, err := r.Lookup("chat"); err != nil || len(app.Settings.AllowedOrigins) != 0 {
		t.Fatalf("after {}: %+v, %v; want the defaults", app, err)
	}
	// An app that never had one runs on the defaults, as before.
	if err := os.MkdirAll(filepath.Join(dir, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	if app, err := r.Lookup("plain"); err != nil || app.Settings.Limits.MaxMessageBytes != domain.DefaultMaxMessageBytes {
		t.Fatalf("an app without app.json: %+v, %v", app, err)
	}
}

// An allowed origin that no browser's Origin can match (a wildcard, no
// scheme, the scheme's own port, which browsers leave out) is said in
// the log at load, where before every browser was refused without a
// word; the app is served as usual.
func TestOriginsThatMatchNothingAreLogged(t *testing.T) {
	r, _, write, logs := chatRegistry(t)
	write(`{"allowed_origins": ["https://chat.example", "http://localhost:8080", "capacitor://localhost", "*", "chat.example", "https://chat.example:443", "https://*.example"]}`)
	app, err := r.Lookup("chat")
	if err != nil || len(app.Settings.AllowedOrigins) != 7 {
		t.Fatalf("%+v, %v", app, err)
	}
	for _, want := range []string{`\"*\" is not an origin`, `\"chat.example\" is not an origin`, `write https://chat.example`, `\"https://*.example\" has a wildcard`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "matches no browser"); n != 4 {
		t.Errorf("%d origins logged, want 4:\n%s", n, logs.String())
	}
}

// An app.json gone for longer than the grace gives the defaults (an
// app.json removed on purpose, say to revoke a key, takes effect), and
// the log says so. A folder written again before its app.json keeps the
// settings meanwhile, as a vanished file does.
func TestVanishedAppJSONGivesTheDefaultsAfterTheGrace(t *testing.T) {
	r, dir, write, logs := chatRegistry(t)
	write(`{"allowed_origins": ["https://chat.example"], "api_keys": {"worker": "k1"}}`)
	if _, err := r.Lookup("chat"); err != nil {
		t.Fatal(err)
	}
	// The folder goes, and comes back without its app.json yet: the
	// settings stay meanwhile, and retention keeps the app's history.
	if err := os.RemoveAll(filepath.Join(dir, "chat")); err != nil {
		t.Fatal(err)
	}
	previous := func(what string) {
		t.Helper()
		if app, err := r.Lookup("chat"); err != nil || len(app.Settings.AllowedOrigins) != 1 || app.Settings.APIKeys["worker"] != "k1" {
			t.Fatalf("%s: %+v, %v; want the previous settings", what, app, err)
		}
		if !keepsAll(r, "chat") {
			t.Fatalf("%s: history not kept whole", what)
		}
	}
	previous("folder gone")
	if err := os.MkdirAll(filepath.Join(dir, "chat"), 0o755); err != nil {
		t.Fatal(err)
	}
	previous("folder back without app.json")
	r.vanishGrace = 0 // the grace has passed
	if app, err := r.Lookup("chat"); err != nil || len(app.Settings.AllowedOrigins) != 0 || len(app.Settings.APIKeys) != 0 || !keepsAll(r, "chat") {
		t.Fatalf("after the grace: %+v, %v; want the defaults, history still kept whole", app, err)
	}
	if n := strings.Count(logs.String(), "app.json has been gone"); n != 1 {
		t.Fatalf("the log says %d times that the defaults apply, want 1:\n%s", n, logs.String())
	}
	// A broken app.json now keeps the defaults it ran on, never the
	// settings read before the grace.
	write(`{"api_keys": `)
	if app, err := r.Lookup("chat"); err != nil || len(app.Settings.APIKeys) != 0 {
		t.Fatalf("a broken app.json after the grace: %+v, %v; want the defaults", app, err)
	}
	write(`{"client_publish": true}`)
	if app, err := r.Lookup("chat"); err != nil || !app.Settings.ClientPublish || keepsAll(r, "chat") {
		t.Fatalf("a new app.json: %+v, %v; want it applied, history trimmed again", app, err)
	}
	// A folder gone for longer than the grace is no app.
	if err := os.RemoveAll(filepath.Join(dir, "chat")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup("chat"); domain.CodeOf(err) != domain.CodeNotFound || !keepsAll(r, "chat") {
		t.Fatalf("folder gone past the grace: %v; want not_found, history kept whole", err)
	}
}

// An app running on the defaults, without app.json, keeps them when a
// broken one is written (say a first one half written), rather than go
// unavailable; a value past what the server takes is brought down to it.
func TestABrokenFirstAppJSONKeepsTheDefaults(t *testing.T) {
	r, _, write, logs := chatRegistry(t)
	if app, err := r.Lookup("chat"); err != nil || app.Settings.Limits.MaxMessageBytes != domain.DefaultMaxMessageBytes {
		t.Fatalf("no app.json: %+v, %v", app, err)
	}
	write(`{"allowed_origins": [`)
	if app, err := r.Lookup("chat"); err != nil || app.Settings.Limits.MaxMessageBytes != domain.DefaultMaxMessageBytes {
		t.Fatalf("a broken app.json: %+v, %v; want the defaults kept", app, err)
	}
	if !strings.Contains(logs.String(), "app.json not applied") {
		t.Fatalf("the log does not say it:\n%s", logs.String())
	}
	write(`{"limits": {"max_message_bytes": 1000000000}}`)
	if app, err := r.Lookup("chat"); err != nil || app.Settings.Limits.MaxMessageBytes != domain.MaxMessageBytesLimit {
		t.Fatalf("max_message_bytes of 1e9: %+v, %v; want 16 MiB", app, err)
	}
	if !strings.Contains(logs.String(), "over the most a server takes") {
		t.Fatalf("the log does not say it:\n%s", logs.String())
	}
}

// An edit that keeps the file's modification time (cp -p, rsync -t, a
// tar, a rewrite within one tick of a coarse clock) applies: the registry
// goes by the file's bytes.
func TestAnEditWithTheSameModificationTimeApplies(t *testing.T) {
	r, dir, write, _ := chatRegistry(t)
	write(`{"client_publish": true}`)
	p := filepath.Join(dir, "chat", "app.json")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if app, err := r.Lookup("chat"); err != nil || !app.Settings.ClientPublish {
		t.Fatalf("first read: %+v, %v", app, err)
	}
	if err := os.WriteFile(p, []byte(`{"client_publish": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if app, err := r.Lookup("chat"); err != nil || app.Settings.ClientPublish {
		t.Fatalf("after an edit with the same modification time: %+v, %v", app, err)
	}
}

// After the grace, the defaults apply to an app whose app.json went,
// however its lookups fell: a broken file then keeps the defaults, as it
// would had a lookup seen the defaults first, and never brings back the
// settings from before. default, served always, keeps the defaults at
// a broken first app.json rather than go unavailable. A folder gone, and
// gone for the grace, is said in the log once each.
func TestTheDefaultsApplyPastTheGraceWhateverTheLookups(t *testing.T) {
	r, dir, write, logs := chatRegistry(t)
	write(`{"api_keys": {"worker": "k1"}}`)
	if _, err := r.Lookup("chat"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "chat", "app.json")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if app, err := r.Lookup("chat"); err != nil || app.Settings.APIKeys["worker"] != "k1" {
		t.Fatalf("gone: %+v, %v", app, err)
	}
	r.vanishGrace = 0 // passes with no lookup
	write(`{"api_keys": `)
	if app, err := r.Lookup("chat"); err != nil || len(app.Settings.APIKeys) != 0 {
		t.Fatalf("a broken file past the grace: %+v, %v; want the defaults", app, err)
	}

	r.vanishGrace = time.Hour
	if err := os.MkdirAll(filepath.Join(dir, "other"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other", "app.json"), []byte(`{}`), 0o644)
	if _, err := r.Lookup("other"); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "other"))
	for range 3 {
		if _, err := r.Lookup("other"); err != nil {
			t.Fatalf("folder gone, within the grace: %v", err)
		}
	}
	r.vanishGrace = 0
	for range 3 {
		if _, err := r.Lookup("other"); domain.CodeOf(err) != domain.CodeNotFound {
			t.Fatalf("folder gone past the grace: %v", err)
		}
	}
	if a, b := strings.Count(logs.String(), "folder is gone"), strings.Count(logs.String(), "folder has been gone"); a != 1 || b != 1 {
		t.Fatalf("folder logged %d and %d times, want once each:\n%s", a, b, logs.String())
	}

	if err := os.MkdirAll(filepath.Join(dir, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "default", "app.json"), []byte(`{`), 0o644)
	if app, err := r.Lookup("default"); err != nil || app.Settings.Limits.MaxMessageBytes != domain.DefaultMaxMessageBytes {
		t.Fatalf("default with a broken first app.json: %+v, %v; want the defaults", app, err)
	}
}

// keepsAll is ForRetention's keepAll for app name.
func keepsAll(r *Registry, name string) bool {
	_, keep, _ := r.ForRetention(name)
	return keep
}

// A broken app.json written while the grace runs does not stop its
// clock: the settings from before hold until it ends, then the defaults,
// whatever the lookups in between. Retention keeps the whole history of
// an app on the defaults for want of a readable app.json, default
// included.
func TestABrokenFileWithinTheGraceLeavesItsClockRunning(t *testing.T) {
	r, dir, write, _ := chatRegistry(t)
	write(`{"api_keys": {"worker": "k1"}}`)
	if _, err := r.Lookup("chat"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "chat", "app.json"))
	if app, err := r.Lookup("chat"); err != nil || app.Settings.APIKeys["worker"] != "k1" {
		t.Fatalf("gone: %+v, %v", app, err)
	}
	write(`{"api_keys": `)
	if app, err := r.Lookup("chat"); err != nil || app.Settings.APIKeys["worker"] != "k1" || !keepsAll(r, "chat") {
		t.Fatalf("broken, within the grace: %+v, %v; want the previous settings, history kept", app, err)
	}
	r.vanishGrace = 0
	if app, err := r.Lookup("chat"); err != nil || len(app.Settings.APIKeys) != 0 || !keepsAll(r, "chat") {
		t.Fatalf("broken, past the grace: %+v, %v; want the defaults, history kept", app, err)
	}

	if err := os.MkdirAll(filepath.Join(dir, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "default", "app.json"), []byte(`{"retention": {"max_messages": -1},`), 0o644)
	if app, keep, err := r.ForRetention("default"); err != nil || app == nil || !keep {
		t.Fatalf("default with a broken app.json: %+v, keepAll %v, %v; want served, its history kept", app, keep, err)
	}
	os.WriteFile(filepath.Join(dir, "default", "app.json"), []byte(`{}`), 0o644)
	if _, keep, err := r.ForRetention("default"); err != nil || keep {
		t.Fatalf("default with a good app.json: keepAll %v, %v", keep, err)
	}
}

// TestAppJSONOverAMebibyteIsRefused: app.json is read up to 1 MiB; a
// larger file is not read whole into memory at each check, and counts as
// one that cannot be read, saying why. One of exactly 1 MiB is read.
func TestAppJSONOverAMebibyteIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "chat"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "chat", "app.json")
	body := `{"client_publish": true}`
	padded := func(size int) []byte { return []byte(body + strings.Repeat(" ", size-len(body))) }
	if err := os.WriteFile(p, padded(maxAppJSON+1), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := NewRegistry(dir)
	r.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	r.recheck = 0
	if app, err := r.Lookup("chat"); app != nil || domain.CodeOf(err) != domain.CodeUnavailable {
		t.Fatalf("an app.json over 1 MiB: %+v, %v; want unavailable", app, err)
	}
	if !strings.Contains(logs.String(), "over 1048576 bytes") {
		t.Fatalf("the log does not say why:\n%s", logs.String())
	}
	if err := os.WriteFile(p, padded(maxAppJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if app, err := r.Lookup("chat"); err != nil || !app.Settings.ClientPublish {
		t.Fatalf("an app.json of 1 MiB: %+v, %v", app, err)
	}
}

// TestDefaultWithoutAFolderIsLookedAtOnceASecond: default runs on the
// defaults without a folder, and that answer is kept for the recheck, as
// any app's: the same App for every lookup within it (the server API
// hashes an app's keys once for each App), and a folder made meanwhile
// is seen at the next check.
func TestDefaultWithoutAFolderIsLookedAtOnceASecond(t *testing.T) {
	dir := t.TempDir()
	r := NewRegistry(dir)
	r.recheck = time.Hour
	first, err := r.Lookup(domain.DefaultApp)
	if err != nil || first.Dir != "" || first.Settings.Limits != (domain.Limits{}).WithDefaults() {
		t.Fatalf("default without a folder: %+v, %v", first, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, domain.DefaultApp), 0o755); err != nil {
		t.Fatal(err)
	}
	if again, err := r.Lookup(domain.DefaultApp); err != nil || again != first {
		t.Fatalf("within the recheck: %+v, %v; want the same App", again, err)
	}
	r.recheck = 0
	if later, err := r.Lookup(domain.DefaultApp); err != nil || later.Dir != filepath.Join(dir, domain.DefaultApp) {
		t.Fatalf("at the next check: %+v, %v; want the folder's", later, err)
	}
}

// TestRemovedWantsTheFolderGoneForTheGrace: an app is taken for removed
// only once its folder is gone and the apps folder has not changed for
// the grace by the registry's own clock (removing the app's folder
// changes it): a deploy writing the folder again is not a removal, nor
// is a link left whose target is gone. A hosted app, default, and one
// not served for a broken app.json never are; nor any app once the apps
// folder is another (a volume unmounted from it).
func TestRemovedWantsTheFolderGoneForTheGrace(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "apps")
	for _, app := range []string{"chat", "broken", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, app), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "broken", "app.json"), []byte("{bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(dir)
	r.recheck = 0
	r.SetGrace(time.Hour)
	passed := func() { r.dirModSeen = r.dirModSeen.Add(-2 * time.Hour) } // the grace passes
	for _, app := range []string{"chat", "broken", domain.DefaultApp} {
		if err := r.Removed(app); err == nil || !strings.Contains(err.Error(), "still on this server") {
			t.Fatalf("%s, hosted: %v", app, err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "chat")); err != nil {
		t.Fatal(err)
	}
	if err := r.Removed("chat"); err == nil || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("gone a moment ago: %v", err)
	}
	passed()
	if err := r.Removed("chat"); err != nil {
		t.Fatalf("gone past the grace: %v", err)
	}
	// Another change of the apps folder starts the clock again.
	if err := os.Remove(filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dir, time.Now().Add(time.Minute), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err) // a modification time of its own, whatever the file system's granularity
	}
	if err := r.Removed("chat"); err == nil || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("after another change: %v", err)
	}
	passed()
	if err := r.Removed("never"); err != nil { // never had a folder
		t.Fatalf("an app never here: %v", err)
	}
	// A link to a folder elsewhere whose target is gone, as while a
	// deploy writes the target again, is not a removal.
	if err := os.Symlink(filepath.Join(root, "release"), filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	// Making the link changed the apps folder: its grace passes too, so
	// that only the link keeps the app.
	if err := r.Removed("never"); err == nil || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("after the link was made: %v", err)
	}
	passed()
	if err := r.Removed("linked"); err == nil || !strings.Contains(err.Error(), "entry in the apps folder") {
		t.Fatalf("a link whose target is gone: %v", err)
	}
	if err := r.Removed("Bad"); err == nil || !strings.Contains(err.Error(), "not a DNS label") {
		t.Fatalf("a name no app can have: %v", err)
	}
	// Another folder where the apps folder was (a volume unmounted from
	// it, its mount point left), or none.
	if err := os.Rename(dir, filepath.Join(root, "mounted")); err != nil {
		t.Fatal(err)
	}
	if err := r.Removed("chat"); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("no apps folder: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second past any grace
		if err := r.Removed("chat"); err == nil || !strings.Contains(err.Error(), "not the one this server served apps from") {
			t.Fatalf("another apps folder: %v", err)
		}
		passed()
	}
}

// TestRemovedOfAnAppsFolderMadeAfterStart: an apps folder that did not
// exist when the registry was made is the one apps are served from once
// one is: a folder later in its place (a volume unmounted from it)
// takes no app for removed. And the clock starts at the lookup that
// first finds an app's folder gone, whatever asked.
func TestRemovedOfAnAppsFolderMadeAfterStart(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "apps")
	r := NewRegistry(dir)
	r.recheck = 0
	r.SetGrace(time.Hour)
	for _, app := range []string{"chat", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, app), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Lookup("chat"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "chat")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup("chat"); domain.CodeOf(err) != domain.CodeNotFound {
		t.Fatalf("lookup of a removed app: %v", err)
	}
	r.dirModSeen = r.dirModSeen.Add(-2 * time.Hour) // the lookup started the clock; the grace passes
	if err := r.Removed("chat"); err != nil {
		t.Fatalf("gone past the grace since the lookup saw it: %v", err)
	}

	// Another registry made before its folder, which then serves an
	// app: a folder later in its place is another.
	dir2 := filepath.Join(root, "apps2")
	r2 := NewRegistry(dir2)
	r2.recheck = 0
	if err := os.MkdirAll(filepath.Join(dir2, "other"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Lookup("other"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir2, filepath.Join(root, "was-mounted")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second past any grace
		if err := r2.Removed("other"); err == nil || !strings.Contains(err.Error(), "not the one this server served apps from") {
			t.Fatalf("another apps folder in its place: %v", err)
		}
		r2.dirModSeen = r2.dirModSeen.Add(-time.Hour)
	}
}

// A negative limit is the default, as a zero is, and the log says so
// (before, it was taken so without a word): no limit can be turned off,
// and -1 was most likely meant so. An app with one is served, from its
// first app.json on, as before. (The JS engine takes a timeout of 0 or
// less for its own, as it did.)
func TestNegativeLimitsAreTheDefaults(t *testing.T) {
	r, _, write, logs := chatRegistry(t)
	write(`{"client_publish": true, "limits": {"max_connections": -1, "max_message_bytes": -5, "inbound_rate": -0.5,
		"max_subscriptions": -1, "inbound_burst": -1, "max_json_depth": -2},
		"js": {"handler_timeout_ms": -1, "hook_timeout_ms": -1}}`)
	app, err := r.Lookup("chat")
	if err != nil || !app.Settings.ClientPublish {
		t.Fatalf("an app.json with negative limits: %+v, %v", app, err)
	}
	want := domain.Limits{}.WithDefaults()
	if app.Settings.Limits != want {
		t.Errorf("limits %+v, want %+v", app.Settings.Limits, want)
	}
	for _, name := range []string{"max_connections: -1", "max_message_bytes: -5", "inbound_rate: -0.5", "max_subscriptions", "inbound_burst", "max_json_depth: -2",
		"handler_timeout_ms", "hook_timeout_ms"} {
		if !strings.Contains(logs.String(), name) {
			t.Errorf("the log does not name %s:\n%s", name, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "a negative limit is taken as the default"); n != 8 {
		t.Errorf("%d lines logged for 8 negative limits:\n%s", n, logs.String())
	}
}

// TestAShortSecretIsLoggedOncePerVersion: a secret under 32 bytes can be
// guessed offline from any token a client holds, so the log says so, once
// for each version of app.json; the app is served with it all the same,
// as before (refusing it would take the app offline at an upgrade).
func TestAShortSecretIsLoggedOncePerVersion(t *testing.T) {
	r, _, write, logs := chatRegistry(t)
	const weak = "shorter than 32 bytes"
	for _, c := range []struct {
		secret string
		told   int // how many times the log has said weak, this version's included
	}{
		{"s3cret", 1},
		{"s3cret", 1}, // the same bytes: not applied again
		{strings.Repeat("x", 32), 1},
		{strings.Repeat("x", 31), 2},
		{"", 2},
	} {
		write(`{"secret": "` + c.secret + `"}`)
		for range 2 {
			app, err := r.Lookup("chat")
			if err != nil || app.Settings.Secret != c.secret {
				t.Fatalf("secret %q: %+v, %v; want it served", c.secret, app, err)
			}
		}
		if n := strings.Count(logs.String(), weak); n != c.told {
			t.Fatalf("after secret %q the log says %q %d times, want %d:\n%s", c.secret, weak, n, c.told, logs.String())
		}
	}
	for _, want := range []string{"level=ERROR", "forged", "offline", "32 or more random bytes", "bytes=31"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
}

// TestPublishedCredentialsAreWarnedOf: the bundled chat app's app.json, as
// shipped, serves a key anyone can read in the README; the log warns of
// it, once, and the app is served with it, as the README's tour needs. So
// is the README's example secret and key, under any name.
func TestPublishedCredentialsAreWarnedOf(t *testing.T) {
	r, _, write, logs := chatRegistry(t)
	bundled, err := os.ReadFile(filepath.Join("..", "..", "apps", "chat", "app.json"))
	if err != nil {
		t.Fatal(err)
	}
	write(string(bundled))
	for range 2 {
		if app, err := r.Lookup("chat"); err != nil || app.Settings.APIKeys["example-backend"] != "chat-example-key" {
			t.Fatalf("the bundled app.json: %+v, %v; want its key served", app, err)
		}
	}
	const published = "published in Fazt's README"
	if n := strings.Count(logs.String(), published); n != 1 || !strings.Contains(logs.String(), "level=WARN") ||
		!strings.Contains(logs.String(), "key_name=example-backend") || strings.Contains(logs.String(), "chat-example-key") {
		t.Fatalf("the log, %d warnings of a published key, want 1 naming the key, not its value:\n%s", n, logs.String())
	}
	write(`{"api_keys": {"backend": "a-long-random-key", "worker": "k2"}, "secret": "signs the tokens of private-* channels"}`)
	if _, err := r.Lookup("chat"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), published); n != 3 {
		t.Errorf("%d warnings of published credentials, want 3 (the bundled key, the example's key and secret):\n%s", n, logs.String())
	}
	write(`{"api_keys": {"backend": "` + strings.Repeat("k", 32) + `"}, "secret": "` + strings.Repeat("s", 32) + `"}`)
	if _, err := r.Lookup("chat"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), published); n != 3 {
		t.Errorf("keys of the app's own warned of:\n%s", logs.String())
	}
}

// List names the apps whose folders are symbolic links, as Lookup serves
// them, and leaves out links to files, broken links, plain files and
// names no app may have. Before, a linked app was never listed, and so
// audit retention never visited one that had never broadcast.
func TestListTakesLinkedFolders(t *testing.T) {
	dir := t.TempDir()
	apps := filepath.Join(dir, "apps")
	elsewhere := filepath.Join(dir, "elsewhere")
	for _, d := range []string{filepath.Join(apps, "plain"), elsewhere, filepath.Join(apps, "Bad Name")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"linked": elsewhere, "tofile": file, "broken": filepath.Join(dir, "none")} {
		if err := os.Symlink(to, filepath.Join(apps, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(apps, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(apps)
	got, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{domain.DefaultApp, "linked", "plain"}; !slices.Equal(got, want) {
		t.Fatalf("List: %v, want %v", got, want)
	}
	if _, err := r.Lookup("linked"); err != nil {
		t.Fatalf("Lookup of the linked app: %v", err)
	}
}
