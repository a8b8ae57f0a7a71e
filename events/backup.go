package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fazt-realtime/fazt/migrations"
)

// BackupOptions are Backup's choices.
type BackupOptions struct {
	// KeepEpochs keeps each channel's epoch in the copy. By default the
	// copy gives every channel a new one: a copy is a point in the past,
	// and once it is served again the offsets after its heads name other
	// messages than those clients of the original saw at them. A new
	// epoch tells such a client (PROTOCOL.md: epoch_changed) to take the
	// channel's history again from its start. Keep them to move a stopped
	// server's file, when nothing is lost.
	KeepEpochs bool
}

// BackupInfo describes the copy Backup wrote.
type BackupInfo struct {
	Bytes    int64 // its size
	Events   int64 // the events it holds
	LastSeq  int64 // the last of them: the copy holds the log up to here
	Channels int64 // channels with history, given new epochs unless KeepEpochs
	Schema   int   // its schema version
}

// Backup writes a consistent copy of the log at src to dst, a file that
// must not exist, while a server may be writing src: the copy is of one
// read transaction (SQLite's VACUUM INTO, compacted, without the WAL),
// taken on a read-only connection, so the server's appends go on and the
// source is never written. Its epochs are then renewed (BackupOptions),
// its pages checked (quick_check), and it is synced and given its name at
// once: a failed or cancelled backup leaves no file behind, and dst is
// either whole or not there. While it copies, the server's checkpoints
// cannot go past its snapshot, so the WAL grows with what is written
// meanwhile. A file of an older schema is copied as it is; a newer one is
// refused, as this fazt may misread it.
func Backup(ctx context.Context, src, dst string, opt BackupOptions) (info BackupInfo, err error) {
	if _, err := os.Stat(src); err != nil {
		return info, fmt.Errorf("open database: %w", err)
	}
	if err := absent(dst); err != nil {
		return info, err
	}
	db, err := sql.Open("sqlite3", dsn(src, DurabilityNormal, true, busyWaitMS))
	if err != nil {
		return info, fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'`).Scan(&n); err != nil || n == 0 {
		if err == nil {
			err = errors.New("no event log in it")
		}
		return info, fmt.Errorf("open database %s: %w", src, err)
	}
	current, latest, err := migrations.Version(ctx, db)
	switch {
	case err != nil:
		return info, fmt.Errorf("open database %s: %w", src, err)
	case current == 0:
		return info, fmt.Errorf("open database %s: no fazt schema in it", src)
	case current > latest:
		return info, fmt.Errorf("open database %s: %w", src, &migrations.SchemaError{Version: current, Latest: latest})
	}
	info.Schema = current

	tmpf, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	tmp := tmpf.Name()
	tmpf.Close()
	defer func() {
		if err != nil {
			for _, p := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
				os.Remove(p)
			}
		}
	}()
	// VACUUM INTO takes an empty file, and writes it as one read
	// transaction of the source sees it.
	if _, err = db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return info, fmt.Errorf("copy %s: %w", src, err)
	}
	db.Close()
	backupCopied()
	if err = finishCopy(ctx, tmp, opt, &info); err != nil {
		return info, fmt.Errorf("backup %s: %w", tmp, err)
	}
	if err = syncPath(tmp); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	if err = placeCopy(tmp, dst); err != nil {
		return info, err
	}
	if st, serr := os.Stat(dst); serr == nil {
		info.Bytes = st.Size()
	}
	// The name is in place; a failure to sync its folder loses nothing
	// already written, but the copy's name may not survive a power loss.
	if err := syncPath(filepath.Dir(dst)); err != nil {
		return info, fmt.Errorf("backup written to %s, but its folder could not be synced: %w", dst, err)
	}
	return info, nil
}

// backupCopied is called once the copy is written, before it is
// finished: a test's way in.
var backupCopied = func() {}

// absent refuses a dst that exists: a backup never writes over a file.
func absent(dst string) error {
	_, err := os.Lstat(dst)
	switch {
	case err == nil:
		return fmt.Errorf("%s exists already: give a name no file has", dst)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("backup: %w", err)
	}
}

// finishCopy makes the copy at path a file of its own (no WAL to go with
// it), renews its epochs unless opt keeps them, checks its pages and
// counts what it holds.
func finishCopy(ctx context.Context, path string, opt BackupOptions, info *BackupInfo) error {
	db, err := sql.Open("sqlite3", "file:"+uriPath.Replace(path)+"?_journal_mode=DELETE&_synchronous=FULL&_mutex=no")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events`).Scan(&info.Events, &info.LastSeq); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM channels`).Scan(&info.Channels); err != nil {
		return err
	}
	if !opt.KeepEpochs {
		if err := renewEpochs(ctx, db); err != nil {
			return fmt.Errorf("new epochs: %w", err)
		}
	}
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&verdict); err != nil {
		return err
	}
	if verdict != "ok" {
		return fmt.Errorf("the copy fails SQLite's quick_check: %s", verdict)
	}
	return db.Close()
}

// renewEpochs gives every channel of the copy a new epoch, in one
// transaction.
func renewEpochs(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT app, name FROM channels`)
	if err != nil {
		return err
	}
	var keys []chanKey
	for rows.Next() {
		var k chanKey
		if err := rows.Scan(&k.app, &k.channel); err != nil {
			rows.Close()
			return err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	upd, err := tx.PrepareContext(ctx, `UPDATE channels SET epoch = ? WHERE app = ? AND name = ?`)
	if err != nil {
		return err
	}
	defer upd.Close()
	for _, k := range keys {
		if _, err := upd.ExecContext(ctx, NewEpoch(), k.app, k.channel); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// placeCopy gives the finished copy at tmp the name dst, which must still
// be free: a hard link fails rather than replace a file made meanwhile.
// Where the file system has no hard links, a rename does it, after one
// more look.
func placeCopy(tmp, dst string) error {
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		os.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s exists already: give a name no file has", dst)
	}
	if err := absent(dst); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// syncPath flushes a file, or a folder's entries, to the disk.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// RestoreInfo describes what Restore put in place.
type RestoreInfo struct {
	Events  int64  // the events the backup holds
	LastSeq int64  // the last of them
	Schema  int    // its schema version (fazt serve brings an older one up to date)
	Aside   string // where the file it replaced now is, with its -wal beside it; "" for none
}

// Restore puts a copy of the backup at backup in target's place, for a
// fazt serve to start on. The backup is checked first (a fazt log of this
// fazt's schema or an older one, whole by quick_check); target must not
// be open for writing (on Linux its lock says so). The file it replaces
// is renamed aside with its -wal and -shm, the three together, so that it
// stays whole and no write-ahead log of it is left beside the restored
// file, where SQLite would take it for the new file's. The copy is synced
// before it takes the name; the backup is left as it was.
func Restore(ctx context.Context, backup, target string) (info RestoreInfo, err error) {
	if err := checkBackup(ctx, backup, &info); err != nil {
		return info, err
	}
	_, serr := os.Lstat(target)
	existed := serr == nil
	lock, err := lockFile(target)
	if err != nil {
		return info, fmt.Errorf("open database: %w", err)
	}
	if lock != nil {
		defer lock.Close()
	}
	if !existed {
		// The lock made an empty file: gone again if nothing takes its place.
		defer func() {
			if err != nil {
				os.Remove(target)
			}
		}()
	}
	tmpf, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".restoring-*")
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	tmp := tmpf.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	err = copyInto(tmpf, backup)
	if cerr := tmpf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return info, fmt.Errorf("restore: copy %s: %w", backup, err)
	}
	if err = ctx.Err(); err != nil {
		return info, err
	}
	if info.Aside, err = setAside(target, existed); err != nil {
		return info, err
	}
	if err = os.Rename(tmp, target); err != nil {
		return info, fmt.Errorf("restore: %w (the file it was to replace is %s)", err, info.Aside)
	}
	if err := syncPath(filepath.Dir(target)); err != nil {
		return info, fmt.Errorf("restored %s, but its folder could not be synced: %w", target, err)
	}
	return info, nil
}

// checkBackup reads a backup read-only: a fazt log, of a schema this fazt
// can bring up to date, whole.
func checkBackup(ctx context.Context, path string, info *RestoreInfo) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	db, err := sql.Open("sqlite3", dsn(path, DurabilityNormal, true, busyWaitMS))
	if err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	current, latest, err := migrations.Version(ctx, db)
	switch {
	case err != nil:
		return fmt.Errorf("backup %s: %w", path, err)
	case current == 0:
		return fmt.Errorf("backup %s: not a fazt database (no fazt schema in it)", path)
	case current > latest:
		return fmt.Errorf("backup %s: %w", path, &migrations.SchemaError{Version: current, Latest: latest})
	}
	info.Schema = current
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&verdict); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	if verdict != "ok" {
		return fmt.Errorf("backup %s fails SQLite's quick_check: %s", path, verdict)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events`).Scan(&info.Events, &info.LastSeq); err != nil {
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}

// copyInto copies the file at path into f, and syncs f.
func copyInto(f *os.File, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := io.Copy(f, src); err != nil {
		return err
	}
	return f.Sync()
}

// setAside renames target and its -wal and -shm, those there are, to one
// new name, and returns it; "" when there was nothing to keep (no file, or
// the empty one the lock made).
func setAside(target string, existed bool) (string, error) {
	keep := false
	if st, err := os.Stat(target); err == nil && existed && st.Size() > 0 {
		keep = true
	}
	for _, s := range []string{"-wal", "-shm"} {
		if _, err := os.Lstat(target + s); err == nil {
			keep = true
		}
	}
	if !keep {
		return "", nil
	}
	aside := target + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
	for _, s := range []string{"", "-wal", "-shm"} {
		if _, err := os.Lstat(aside + s); err == nil {
			return "", fmt.Errorf("restore: %s exists already; try again in a second", aside+s)
		}
	}
	var moved []string
	for _, s := range []string{"", "-wal", "-shm"} {
		err := os.Rename(target+s, aside+s)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			for _, m := range moved { // put back what was moved
				os.Rename(aside+m, target+m)
			}
			return "", fmt.Errorf("restore: set %s aside: %w", target+s, err)
		}
		moved = append(moved, s)
	}
	return aside, nil
}
