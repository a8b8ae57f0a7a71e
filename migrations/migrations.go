// Package migrations holds the SQL schema, embedded in the binary, and
// applies it in order. Each file NNNN_name.sql runs once, in its own
// transaction, and is recorded in schema_migrations.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
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
	out := make([]migration, len(names))
	for i, name := range names {
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", name)
		}
		out[i] = migration{v, name}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// versions returns the database's schema version (0 for a file that has
// none yet), the embedded migrations and the latest of their versions.
func versions(ctx context.Context, db *sql.DB) (current int, ms []migration, latest int, err error) {
	if ms, err = list(); err != nil {
		return 0, nil, 0, err
	}
	latest = ms[len(ms)-1].version
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'schema_migrations'`).Scan(&n); err != nil {
		return 0, nil, 0, fmt.Errorf("read schema version: %w", err)
	}
	if n > 0 {
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return 0, nil, 0, fmt.Errorf("read schema version: %w", err)
		}
	}
	return current, ms, latest, nil
}

// SchemaError says a database's schema is not this fazt's: newer, which
// this fazt may misread (since 0004 a broadcast no longer rewrites its
// channel's row, and a fazt that took the row for the head would hand out
// offsets again), or, to a reader that does not migrate, older.
type SchemaError struct {
	Version, Latest int // the file's schema version, and this fazt's
}

func (e *SchemaError) Error() string {
	if e.Version > e.Latest {
		return fmt.Sprintf("schema version %d is newer than this fazt's %d: run the fazt that wrote the file, or a newer one", e.Version, e.Latest)
	}
	return fmt.Sprintf("schema version %d is older than this fazt's %d: stop the fazt serve that writes the file, if one does, and start this fazt's serve on it once to bring it up to date", e.Version, e.Latest)
}

// Apply runs every migration newer than the database's version. It is safe
// to call on every start, and refuses a file of a newer schema. An
// upgrade of a file that has a schema already is logged on log (when not
// nil) as it starts and as it ends: it can take seconds on a large file,
// during which the server answers nothing.
func Apply(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, ms, latest, err := versions(ctx, db)
	if err != nil {
		return err
	}
	if current > latest {
		return &SchemaError{current, latest}
	}
	upgrade := log != nil && current > 0 && current < latest
	if upgrade {
		log.Info("upgrading the database's schema; nothing is answered until it is done, which can take a while on a large file", "from", current, "to", latest)
	}
	start := time.Now()
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
	if upgrade {
		log.Info("upgraded the database's schema", "to", latest, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Version returns db's schema version (0 for none) and this fazt's.
func Version(ctx context.Context, db *sql.DB) (current, latest int, err error) {
	current, _, latest, err = versions(ctx, db)
	return current, latest, err
}

// Check tells whether a reader that does not migrate (a read-only open)
// can read the database: its schema must be this fazt's.
func Check(ctx context.Context, db *sql.DB) error {
	current, latest, err := Version(ctx, db)
	if err != nil {
		return err
	}
	if current != latest {
		return &SchemaError{current, latest}
	}
	return nil
}

// CheckOwned tells whether db is fazt's to migrate: a new (empty) file,
// or one that holds fazt's schema. A file with tables but not fazt's
// schema_migrations is someone else's database, given by mistake:
// migrating it would add fazt's tables to it. (Many tools keep a table
// of that name; fazt's has its own columns, and its first row is fazt's
// first migration.) db may be a read-only connection.
func CheckOwned(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if slices.Contains(tables, "schema_migrations") {
		var columns int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name IN ('version', 'name', 'applied')`).Scan(&columns); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		if columns == 3 {
			var first sql.NullString
			err := db.QueryRowContext(ctx, `SELECT name FROM schema_migrations ORDER BY version LIMIT 1`).Scan(&first)
			switch {
			case errors.Is(err, sql.ErrNoRows) && len(tables) == 1:
				return nil // fazt's first start, stopped before its first migration
			case err == nil && first.String == "0001_init.sql":
				return nil
			case err != nil && !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("read schema_migrations: %w", err)
			}
		}
		// Another tool's table of the same name.
	}
	if len(tables) > 0 {
		if len(tables) > 5 {
			tables = append(tables[:5], "...")
		}
		return fmt.Errorf("not a fazt event log: it holds other tables (%s) and no fazt schema; give fazt a file of its own", strings.Join(tables, ", "))
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, version int, name, body string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, strftime('%s','now'))`, version, name); err != nil {
		return err
	}
	return tx.Commit()
}
