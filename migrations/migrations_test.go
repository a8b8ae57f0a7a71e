package migrations

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
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
		if err := Apply(ctx, db, nil); err != nil {
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
	err = Apply(ctx, db, nil)
	if err == nil || !strings.Contains(err.Error(), "newer than this fazt's") {
		t.Fatalf("Apply on a newer schema: %v", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != latest+1 {
		t.Fatalf("%d migrations recorded after the refusal (%v), want %d", n, err, latest+1)
	}
}

// An upgrade of a file that has a schema is logged as it starts and ends;
// a new file's schema, and a file already up to date, are not.
func TestApplyLogsAnUpgrade(t *testing.T) {
	ctx := context.Background()
	open := func(name string) *sql.DB {
		db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))

	if err := Apply(ctx, open("new.db"), log); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("a new file's schema logged %q", out.String())
	}

	// A file of the schema before the latest, as an older fazt left it.
	db := open("old.db")
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	_, ms, latest, err := versions(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:len(ms)-1] {
		body, err := files.ReadFile(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := apply(ctx, db, m.version, m.name, string(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := Apply(ctx, db, log); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		fmt.Sprintf("upgrading the database's schema; nothing is answered until it is done, which can take a while on a large file\" from=%d to=%d", latest-1, latest),
		fmt.Sprintf("msg=\"upgraded the database's schema\" to=%d took=", latest),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the upgrade logged %q, want a line with %q", got, want)
		}
	}

	out.Reset()
	if err := Apply(ctx, db, log); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("a file up to date logged %q", out.String())
	}
}

// CheckOwned takes a new file and one of fazt's, and refuses a database
// of something else, naming its tables, so that fazt never adds its
// schema to it.
func TestCheckOwnedRefusesAnotherDatabase(t *testing.T) {
	ctx := context.Background()
	open := func() *sql.DB {
		db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "x.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	fresh := open()
	if err := CheckOwned(ctx, fresh); err != nil {
		t.Fatalf("a new file: %v", err)
	}
	if err := Apply(ctx, fresh, nil); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwned(ctx, fresh); err != nil {
		t.Fatalf("fazt's file: %v", err)
	}
	other := open()
	if _, err := other.ExecContext(ctx, `CREATE TABLE users (id INTEGER PRIMARY KEY); CREATE TABLE orders (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	err := CheckOwned(ctx, other)
	if err == nil || !strings.Contains(err.Error(), "not a fazt event log") || !strings.Contains(err.Error(), "orders, users") {
		t.Fatalf("another database: %v", err)
	}
	// Other tools keep a schema_migrations table too (Rails, golang-migrate).
	for _, ddl := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, dirty BOOLEAN); INSERT INTO schema_migrations VALUES (3, 0)`,
		`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY); INSERT INTO schema_migrations VALUES ('20240101000000')`,
		// fazt's three columns, with a name fazt never writes: NULL.
		`CREATE TABLE schema_migrations (version INTEGER, name TEXT, applied INTEGER); INSERT INTO schema_migrations VALUES (1, NULL, 0)`,
		// ... or another tool's first migration.
		`CREATE TABLE schema_migrations (version INTEGER, name TEXT, applied INTEGER); INSERT INTO schema_migrations VALUES (1, 'create_users', 0)`,
	} {
		tool := open()
		if _, err := tool.ExecContext(ctx, `CREATE TABLE users (id INTEGER); `+ddl); err != nil {
			t.Fatal(err)
		}
		if err := CheckOwned(ctx, tool); err == nil || !strings.Contains(err.Error(), "not a fazt event log") {
			t.Fatalf("another tool's schema_migrations (%s): %v", ddl, err)
		}
	}
	// fazt's first start, stopped after making its table and before its
	// first migration, left a file fazt may go on with.
	begun := open()
	if _, err := begun.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwned(ctx, begun); err != nil {
		t.Fatalf("a first start stopped early: %v", err)
	}
	// Not with another program's tables beside it.
	if _, err := begun.ExecContext(ctx, `CREATE TABLE users (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwned(ctx, begun); err == nil || !strings.Contains(err.Error(), "not a fazt event log") {
		t.Fatalf("an empty schema_migrations beside other tables: %v", err)
	}
}
