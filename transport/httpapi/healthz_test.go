package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/events"
	"github.com/fazt-realtime/fazt/transport/apps"
)

// TestHealthzWaitsOutAPartsGraceAndTellsOnlyTheAdminWhy: a part that has
// failed for less than its grace (a projection a retry usually gets past)
// leaves /healthz ok; past it, the answer is 503 naming the part and since
// when, and only the admin key is told why, not a wrong key or none.
func TestHealthzWaitsOutAPartsGraceAndTellsOnlyTheAdminWhy(t *testing.T) {
	l, err := events.Open(context.Background(), events.Config{Path: filepath.Join(t.TempDir(), "log.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := New(l, nil, apps.NewRegistry(t.TempDir()), KeyDigest("admin"), nil)
	var since time.Time
	a.AddCheck("part.v1", time.Hour, func() (time.Time, error) {
		if since.IsZero() {
			return since, nil
		}
		return since, errors.New("stuck on event 7 of client c1")
	})
	get := func(key string) (int, map[string]any) {
		t.Helper()
		r := httptest.NewRequest("GET", "/healthz", nil)
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		return w.Code, body
	}
	if code, body := get(""); code != 200 || body["status"] != "ok" {
		t.Fatalf("a working part: %d %v", code, body)
	}
	since = time.Now().Add(-time.Minute) // failing, within its grace
	if code, body := get("admin"); code != 200 || body["status"] != "ok" {
		t.Fatalf("a part failing within its grace: %d %v", code, body)
	}
	since = time.Now().Add(-2 * time.Hour)
	for _, key := range []string{"", "wrong", "admin"} {
		code, body := get(key)
		part, _ := body["failing"].(map[string]any)["part.v1"].(map[string]any)
		if code != 503 || body["status"] != "failing" || part == nil || part["since"] != float64(since.UnixMilli()) {
			t.Fatalf("a part failing past its grace, key %q: %d %v", key, code, body)
		}
		if why, told := part["error"]; told != (key == "admin") || told && why != "stuck on event 7 of client c1" {
			t.Errorf("key %q told why: %v", key, part)
		}
	}
}
