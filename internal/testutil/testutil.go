// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"bytes"
	"context"
	"database/sql"
	"net/http/httptest"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fazt-realtime/fazt/internal/promtext"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers,
// for capturing the output of a server or logger under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// HoldWriteLock takes the write lock of the SQLite file at path, as
// another process's open transaction would (a backup script, a sqlite3
// shell), until release, or the test's end.
func HoldWriteLock(tb testing.TB, path string) (release func()) {
	tb.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	}
	if err != nil {
		db.Close()
		tb.Fatalf("take the write lock of %s: %v", path, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
	tb.Cleanup(release)
	return release
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Querier runs a query: a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// QueryPlan returns SQLite's plan for query (EXPLAIN QUERY PLAN), one
// line per step, for tests that check which index a statement searches.
func QueryPlan(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, err
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}

// LimitRefusals reads fazt_limit_refusals_total for one limit from the
// text of /metrics: 0 before the first. The counter is the process's,
// shared by a package's tests, so a test compares it with what it read
// before.
func LimitRefusals(metrics, limit string) float64 {
	v, _ := promtext.Value(metrics, `fazt_limit_refusals_total{limit="`+limit+`"}`)
	return v
}

// Metrics returns the text of /metrics as the process's default
// registry serves it, for tests that count without an HTTP server.
func Metrics() string {
	rec := httptest.NewRecorder()
	promhttp.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
