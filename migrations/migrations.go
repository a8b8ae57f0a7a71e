// Package migrations holds the SQL schema, embedded in the binary, and
// applies it in order. Each file NNNN_name.sql runs once, in its own
// transaction, and is recorded in schema_migrations.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// migration is one embedded file: its version and name.
type migration struct {
	version int
	name    string
}

// list returns the embedded migrations in order of version.
func list() ([]migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]migration, len(names))
	for i, name := range names {
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", name)
		}
		out[i] = migration{v, name}
	}
	return out, nil
}

// version reads the database's schema version: 0 for a file that has
// none yet.
func version(ctx context.Context, db *sql.DB) (int, error) {
	var n, current int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'`).Scan(&n); err != nil || n == 0 {
		return 0, err
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return current, nil
}

// errNewer refuses a file whose schema a newer fazt has moved on: it may
// keep the file in a way this one does not read (since 0004, a broadcast
// no longer writes its channel's head), so this one must not use it.
func errNewer(current, known int) error {
	return fmt.Errorf("the database's schema is version %d, newer than this fazt's %d: run the fazt that wrote it, or a newer one", current, known)
}

// Apply runs every migration newer than the database's version. It is safe
// to call on every start, and refuses a file of a newer schema.
func Apply(ctx context.Context, db *sql.DB) error {
	ms, err := list()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := version(ctx, db)
	if err != nil {
		return err
	}
	if known := ms[len(ms)-1].version; current > known {
		return errNewer(current, known)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		body, err := files.ReadFile(m.name)
		if err != nil {
			return err
		}
		if err := apply(ctx, db, m.version, m.name, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// Check tells whether a reader that does not migrate (a read-only open)
// can read the database: its schema must be this fazt's.
func Check(ctx context.Context, db *sql.DB) error {
	ms, err := list()
	if err != nil {
		return err
	}
	current, err := version(ctx, db)
	if err != nil {
		return err
	}
	switch known := ms[len(ms)-1].version; {
	case current > known:
		return errNewer(current, known)
	case current < known:
		return fmt.Errorf("the database's schema is version %d, older than this fazt's %d: start this fazt's server on it once to bring it up to date", current, known)
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, v int, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, strftime('%s','now'))`, v, name); err != nil {
		return err
	}
	return tx.Commit()
}
