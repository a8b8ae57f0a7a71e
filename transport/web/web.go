// Package web routes a server's HTTP requests: /_ws to the WebSocket
// transport, /_api and /healthz to the server API, /api to the app's JS
// handler, and everything else to the app's public/ files.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/realip"
	"github.com/fazt-realtime/fazt/transport/apps"
	"github.com/fazt-realtime/fazt/transport/httpapi"
)

// assets are served at /_fazt/: the browser client, fazt.js.
//
//go:embed assets
var embedded embed.FS

var assets, _ = fs.Sub(embedded, "assets")

// Config names the handlers a server routes to. JS may be nil.
type Config struct {
	WS  http.Handler
	API http.Handler
	// Metrics serves /metrics (the API's AdminOnly over Prometheus's
	// handler, in fazt serve); nil: none (404), rather than open to all.
	Metrics http.Handler
	JS      http.Handler
	Apps    *apps.Registry
	Logger  *slog.Logger
	// BodyTimeout bounds how long a request's body may take to arrive
	// (DefaultBodyTimeout when 0).
	BodyTimeout time.Duration
	// WriteTimeout bounds how long an answer may wait for its client to
	// take each part of it (DefaultWriteTimeout when 0).
	WriteTimeout time.Duration
	// Proxies are the reverse proxies whose X-Forwarded-For gives a
	// request's RemoteAddr, its client's address (none by default).
	Proxies realip.Proxies
}

// DefaultBodyTimeout is how long a request's body may take to arrive: a
// client that sends its headers and then trickles or stalls the body
// would otherwise hold its connection, goroutine and buffer for as long
// as it liked (net/http bounds the headers only: 10 s here).
const DefaultBodyTimeout = 60 * time.Second

// DefaultWriteTimeout is how long an answer may wait for its client to
// take each part of it (up to writeChunk bytes): a client that asks for a
// large file, or a page of history, and then reads nothing would
// otherwise hold its connection, goroutine and buffers for good (net/http
// bounds no write unless told to, and its WriteTimeout would bound the
// whole answer, however steadily a slow client takes a large file).
const DefaultWriteTimeout = 60 * time.Second

// writeChunk is the most of an answer one write hands the socket, so that
// each part has its own deadline: a client must take 64 KiB per write
// timeout, about 1 KiB/s at the default.
const writeChunk = 64 << 10

var writeTimeouts = promauto.NewCounter(prometheus.CounterOpts{
	Name: "fazt_http_write_timeouts_total",
	Help: "HTTP answers cut off because their client did not take a part of them (64 KiB at most) within the write timeout.",
})

// New returns the server's root handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_ws", cfg.WS)
	mux.Handle("/_api/", cfg.API)
	mux.Handle("/healthz", cfg.API)
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	mux.Handle("/_fazt/", clientAssets())
	if cfg.JS != nil {
		mux.Handle("/api/", cfg.JS)
		mux.Handle("/api", cfg.JS)
	} else {
		noJS := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"this server runs no JS handlers","code":"not_found"}` + "\n"))
		}
		mux.HandleFunc("/api/", noJS)
		mux.HandleFunc("/api", noJS)
	}
	mux.Handle("/", static(cfg.Apps))
	bodyTimeout := cfg.BodyTimeout
	if bodyTimeout <= 0 {
		bodyTimeout = DefaultBodyTimeout
	}
	writeTimeout := cfg.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	// The API's channel routes take their paths as given: the mux would
	// clean a channel name's "//" or "." segments into another's path.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = cfg.Proxies.Request(r)
		boundBody(w, r, bodyTimeout)
		// An upgrade (to /_ws alone: anywhere else, its headers would
		// take an answer out of the timeout) sets its connection's own
		// write deadlines, once net/http has cleared them at its hijack.
		if r.URL.Path != "/_ws" || !websocket.IsWebSocketUpgrade(r) {
			pw := &pacedWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: writeTimeout}
			// What net/http writes after the handler (the rest of its
			// buffer, or the headers alone of a HEAD, a 304) has the
			// timeout from the handler's end: never a hijacked
			// connection's, as the wrapped requests are not upgrades.
			defer pw.pace()
			w = pw
		}
		if httpapi.OwnsPath(r.URL.Path) {
			cfg.API.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// clientAssets serves /_fazt/: fazt.js, with an ETag of its content (an
// embedded file has no modification time to revalidate by) and
// Cache-Control: no-cache, so that a browser asks each time and a new
// server's client is taken at once, for a 304 when it is the same. No
// listing of the folder.
func clientAssets() http.Handler {
	etags := map[string]string{}
	fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := fs.ReadFile(assets, p); err == nil {
				sum := sha256.Sum256(b)
				etags[p] = `"` + hex.EncodeToString(sum[:8]) + `"`
			}
		}
		return nil
	})
	files := http.FileServerFS(assets)
	return http.StripPrefix("/_fazt/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		etag, ok := etags[strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if !getOrHead(w, r) {
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
}

// getOrHead answers a request for a file of another method with 405, and
// says whether it is GET or HEAD.
func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "files are read with GET or HEAD", http.StatusMethodNotAllowed)
	return false
}

// static serves the files of the request's app's public/ folder, and
// nothing outside it: it is opened as an os.Root, so a symlink that leads
// out (to the app's app.json, with its keys) is refused. Dot files (.env,
// .git) and folders without an index.html are not served either, but
// for /.well-known/ (security.txt, an app's links for Android and iOS).
// Each answer has Cache-Control: no-cache (a browser asks again, and gets
// a 304 while the file is unchanged, so that a deploy is seen at once)
// and X-Content-Type-Options: nosniff; a file whose extension names no
// type is application/octet-stream, not what its content looks like (one
// that holds HTML is not a page of the app).
func static(registry *apps.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !getOrHead(w, r) {
			return
		}
		app, err := registry.LookupHost(r.Host)
		if err != nil {
			http.Error(w, err.Error(), domain.CodeOf(err).HTTPStatus())
			return
		}
		if app.Dir == "" {
			http.NotFound(w, r)
			return
		}
		root, err := os.OpenRoot(filepath.Join(app.Dir, "public"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer root.Close()
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "."
		}
		for i, seg := range strings.Split(name, "/") {
			if len(seg) > 1 && seg[0] == '.' && !(i == 0 && seg == ".well-known") {
				http.NotFound(w, r)
				return
			}
		}
		st, err := root.Stat(name)
		if err != nil { // missing, or out of public/ (a symlink)
			http.NotFound(w, r)
			return
		}
		if st.IsDir() {
			// A file: a folder of that name would be listed.
			if ist, err := root.Stat(path.Join(name, "index.html")); err != nil || !ist.Mode().IsRegular() {
				http.NotFound(w, r) // no listings
				return
			}
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !st.IsDir() && mime.TypeByExtension(path.Ext(name)) == "" {
			// net/http would guess from the content: a file without an
			// extension (a user's upload) that holds HTML would be served
			// as a page of the app's origin.
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		http.FileServerFS(root.FS()).ServeHTTP(w, r)
	})
}

// boundBody gives r's body until timeout, from when its headers have
// arrived, to arrive: the connection's read deadline. net/http clears it
// once the body has been read to its end (to read on in the background,
// watching for the client to go), and sets the next request's own. r.Body
// itself is left as it is, since net/http tells its own body types apart
// (an Expect: 100-continue, a large body left unread). A request without
// a body (a WebSocket upgrade among them) is left alone.
// http.Server.ReadTimeout would bound the body too, but also the WebSocket
// connections net/http upgrades (a /_ws request after another on a
// kept-alive connection), which keep the deadline it set.
func boundBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
}

// pacedWriter is an answer whose every part, of writeChunk bytes at most,
// must be taken by the client within timeout of being handed to the
// socket; else the write fails (os.ErrDeadlineExceeded), and net/http
// closes the connection. The deadline stays for what net/http writes
// after the handler (the rest of its buffer), and net/http clears it once
// the answer is out, before the connection's next request.
type pacedWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	cut     bool // counted in writeTimeouts
}

// Unwrap gives http.ResponseController the connection's own writer (for
// Flush, Hijack and the deadlines).
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *pacedWriter) pace() {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

// failed counts err when it is the write timeout's, once an answer.
func (w *pacedWriter) failed(err error) {
	if !w.cut && errors.Is(err, os.ErrDeadlineExceeded) {
		w.cut = true
		writeTimeouts.Inc()
	}
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	n := 0
	for {
		k := min(len(p), writeChunk)
		w.pace()
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			w.failed(err)
			return n, err
		}
		p = p[k:]
		if len(p) == 0 { // an empty p is passed on too, as the header's commit
			return n, nil
		}
	}
}

// ReadFrom is how http.ServeContent copies a file: in parts, each through
// net/http's own ReadFrom (a file under two io.LimitedReaders, which
// sendfile(2) does not take; files served from an fs.FS are not sent
// with it anyway).
func (w *pacedWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	for {
		w.pace()
		m, err := io.CopyN(w.ResponseWriter, src, writeChunk)
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			w.failed(err)
			return n, err
		}
	}
}
