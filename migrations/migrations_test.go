package migrations

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// TestApplyRefusesANewerSchema: Apply brings a new file to the latest
// version and is a no-op on the next start; a file whose schema a newer
// fazt has moved on is refused, and left as it was.
func TestApplyRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 {
		if err := Apply(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	var latest, n int
	if err := db.QueryRowContext(ctx, `SELECT MAX(version), COUNT(*) FROM schema_migrations`).Scan(&latest, &n); err != nil {
		t.Fatal(err)
	}
	if latest < 4 || n != latest {
		t.Fatalf("schema at version %d with %d migrations recorded", latest, n)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from a newer fazt', 0)`, latest+1); err != nil {
		t.Fatal(err)
	}
	err = Apply(ctx, db)
	if err == nil || !strings.Contains(err.Error(), "newer than this fazt's") {
		t.Fatalf("Apply on a newer schema: %v", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != latest+1 {
		t.Fatalf("%d migrations recorded after the refusal (%v), want %d", n, err, latest+1)
	}
}
