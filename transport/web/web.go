// Package web routes a server's HTTP requests: /_ws to the WebSocket
// transport, /_api and /healthz to the server API, /api to the app's JS
// handler, and everything else to the app's public/ files.
package web

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// assets are served at /_fazt/: the browser client, fazt.js.
//
//go:embed assets
var embedded embed.FS

var assets, _ = fs.Sub(embedded, "assets")

// Config names the handlers a server routes to. JS may be nil.
type Config struct {
	WS     http.Handler
	API    http.Handler
	JS     http.Handler
	Apps   *apps.Registry
	Logger *slog.Logger
}

// New returns the server's root handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_ws", cfg.WS)
	mux.Handle("/_api/", cfg.API)
	mux.Handle("/healthz", cfg.API)
	mux.Handle("/metrics", promhttp.Handler())
	mux.Handle("/_fazt/", http.StripPrefix("/_fazt/", http.FileServerFS(assets)))
	if cfg.JS != nil {
		mux.Handle("/api/", cfg.JS)
		mux.Handle("/api", cfg.JS)
	} else {
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":"this server runs no JS handlers","code":"not_found"}`, http.StatusNotFound)
		})
	}
	mux.Handle("/", static(cfg.Apps))
	return mux
}

// static serves the files of the request's app's public/ folder.
func static(registry *apps.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app, err := registry.Lookup(domain.AppFromHost(r.Host))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if app.Dir == "" {
			http.NotFound(w, r)
			return
		}
		dir := filepath.Join(app.Dir, "public")
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			http.NotFound(w, r)
			return
		}
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	})
}
