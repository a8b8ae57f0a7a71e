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

	"github.com/mattn/go-sqlite3"

	"github.com/fazt-realtime/fazt/migrations"
)

// CopyOptions are Backup's and Restore's choices.
type CopyOptions struct {
	// KeepEpochs keeps each channel's epoch in the copy. By default the
	// copy gives every channel a new one: a copy is a point in the past,
	// and once it is served again the offsets after its heads name other
	// messages than those clients of the original saw at them (and a
	// second restore of the same copy names them a third way). A new
	// epoch tells such a client (PROTOCOL.md: epoch_changed) to take the
	// channel's history again from its start. Keep them to move a stopped
	// server's file, when nothing is lost.
	KeepEpochs bool
}

// CopyInfo describes a copy Backup or Restore wrote.
type CopyInfo struct {
	Bytes    int64 // its size
	Events   int64 // the events it holds
	LastSeq  int64 // the last of them: the copy holds the log up to here
	Channels int64 // channels with history, given new epochs unless KeepEpochs
	Schema   int   // its schema version (fazt serve brings an older one up to date)
	// Aside is where Restore put the file it replaced (made one file
	// first, or with its sidecars beside it if damaged); "" for none.
	Aside string
}

// Backup writes a consistent copy of the log at src to dst, a file that
// must not exist, while a server may be writing src (copyLog: one read
// transaction on a read-only connection, so the server's appends go on
// and src is never written). The copy's epochs are renewed (CopyOptions),
// its pages checked (quick_check), and it is synced and given its name at
// once: a failed or cancelled backup removes its partial file, and dst is
// either whole or not there. A file of an older schema is copied as it is;
// a newer one is refused, as this fazt may misread it.
func Backup(ctx context.Context, src, dst string, opt CopyOptions) (info CopyInfo, err error) {
	if _, err := os.Stat(src); err != nil {
		return info, fmt.Errorf("open database: %w", err)
	}
	if err := absent(dst); err != nil {
		return info, err
	}
	tmp, err := emptyFile(dst, ".partial-")
	if err != nil {
		return info, fmt.Errorf("backup to %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			removeCopy(tmp)
		}
	}()
	if info.Schema, err = copyLog(ctx, src, tmp); err != nil {
		return info, fmt.Errorf("backup to %s: %w", dst, err)
	}
	backupCopied()
	if err = finishCopy(ctx, tmp, opt, &info); err != nil {
		return info, fmt.Errorf("backup to %s: %w", dst, err)
	}
	if err = syncPath(tmp); err != nil {
		return info, fmt.Errorf("backup to %s: %w", dst, err)
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

// backupCopied is called once a backup's or a restore's copy is written,
// before it is finished: a test's way in.
var backupCopied = func() {}

// emptyFile makes a new empty file beside path, hidden, named for it.
func emptyFile(path, kind string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+kind+"*")
	if err != nil {
		return "", err
	}
	f.Close()
	return f.Name(), nil
}

// removeCopy removes an unfinished copy and what SQLite made beside it.
func removeCopy(path string) {
	for _, s := range []string{"", "-journal", "-wal", "-shm"} {
		os.Remove(path + s)
	}
}

// copyLog writes a consistent copy of the fazt log at src into tmp, an
// empty file, and returns src's schema version. The copy is SQLite's
// VACUUM INTO, on a read-only connection: one read transaction, whatever
// src's write-ahead log holds included, compacted, with no WAL of its
// own. While it runs, a server's checkpoints cannot go past its snapshot,
// so the server's WAL grows with what is written meanwhile.
func copyLog(ctx context.Context, src, tmp string) (int, error) {
	db, err := sql.Open("sqlite3", dsn(src, DurabilityNormal, true, busyWaitMS))
	if err != nil {
		return 0, fmt.Errorf("open database %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := migrations.CheckOwned(ctx, db); err != nil {
		return 0, fmt.Errorf("open database %s: %w", src, err)
	}
	if err := hasEventLog(ctx, db); err != nil {
		return 0, fmt.Errorf("open database %s: %w", src, err)
	}
	current, latest, err := migrations.Version(ctx, db)
	switch {
	case err != nil:
		return 0, fmt.Errorf("open database %s: %w", src, err)
	case current > latest:
		return 0, fmt.Errorf("open database %s: %w", src, &migrations.SchemaError{Version: current, Latest: latest})
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return 0, fmt.Errorf("copy %s: %w", src, err)
	}
	return current, nil
}

// absent refuses a dst that exists, or that SQLite's files of an earlier
// database of the name are left beside (sidecars): a backup never writes
// over a file, and a -wal left there would be applied to the copy at its
// first open, damaging it.
func absent(dst string) error {
	for _, suffix := range append([]string{""}, sidecars...) {
		_, err := os.Lstat(dst + suffix)
		switch {
		case err == nil && suffix == "":
			return fmt.Errorf("%s exists already: give a name no file has", dst)
		case err == nil:
			return fmt.Errorf("%s%s is left from another database of that name, and SQLite would apply it to the copy: remove it, or give another name", dst, suffix)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("backup to %s: %w", dst, err)
		}
	}
	return nil
}

// finishCopy makes the copy at path a file of its own (no WAL to go with
// it), renews its epochs unless opt keeps them, checks its pages and
// counts what it holds.
func finishCopy(ctx context.Context, path string, opt CopyOptions, info *CopyInfo) error {
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
		if _, err := renewEpochs(ctx, db); err != nil {
			return fmt.Errorf("new epochs: %w", err)
		}
	}
	// The mark of a run (markRun) that is still on, or ended in this
	// boot, is not the copy's: a copy is consistent, and its first open
	// must not take it for a crash. One of a run that crashed with its
	// machine stays with epochs kept (the copy of a file left by a power
	// loss), so that the copy's first open renews them.
	var mark string
	if err := db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, runKey).Scan(&mark); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read the run's mark: %w", err)
	}
	if mark != "" && !(opt.KeepEpochs && mayHaveLost(mark, bootID())) {
		if err := clearRunMark(ctx, db); err != nil {
			return fmt.Errorf("clear the run's mark: %w", err)
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

// renewEpochs gives every channel of the database db reaches (a copy, or
// a transaction) a new epoch: 8 random bytes in hex, as NewEpoch makes
// them, from SQLite's generator. It returns how many it renewed.
func renewEpochs(ctx context.Context, db execer) (int64, error) {
	r, err := db.ExecContext(ctx, `UPDATE channels SET epoch = lower(hex(randomblob(8)))`)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// execer is what runs a statement: a *sql.DB, *sql.Conn or *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// clearRunMark deletes the mark of a run (markRun) from the database db
// reaches.
func clearRunMark(ctx context.Context, db execer) error {
	_, err := db.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, runKey)
	return err
}

// placeCopy gives the finished copy at tmp the name dst, which must still
// be free: a hard link fails rather than replace a file made meanwhile.
// Where the file system has no hard links, a rename does it, after one
// more look.
func placeCopy(tmp, dst string) error {
	if err := absent(dst); err != nil { // its sidecars may have come meanwhile
		return err
	}
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		os.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s exists already: give a name no file has", dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("backup to %s: %w", dst, err)
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

// sidecars are the files SQLite keeps beside a database: a write-ahead
// log and its index, or a rollback journal. Left beside another file of
// the same name, SQLite would take them for that file's and apply them.
var sidecars = []string{"-wal", "-shm", "-journal"}

// Restore puts a copy of the backup at backup in target's place, for a
// fazt serve to start on; the backup is not written (but a file in WAL
// mode gets SQLite's -wal and -shm beside it, if they are not there). The
// copy is made as Backup makes one (copyLog: whatever the backup's own
// write-ahead log holds included), with new epochs unless opt keeps them,
// checked, given the replaced file's mode and owner, and synced. target
// must not be open for writing (on Linux its lock says so; the copy is
// locked too, from the start, so a fazt serve started meanwhile refuses
// it), nor open in another process (fold), nor a symbolic link. The file
// replaced is made one file (fold) and linked to a new name (swapIn): it
// stays whole, and nothing of it is left beside the restored file. Where
// the file system has hard links, target's name never goes away: the
// copy takes it in one rename.
func Restore(ctx context.Context, backup, target string, opt CopyOptions) (info CopyInfo, err error) {
	bst, err := os.Stat(backup)
	if err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	lst, lerr := os.Lstat(target)
	existed := lerr == nil
	if existed && lst.Mode()&fs.ModeSymlink != 0 {
		return info, fmt.Errorf("%s is a symbolic link: give the file it leads to", target)
	}
	if existed && os.SameFile(bst, lst) {
		return info, fmt.Errorf("%s is the database itself", backup)
	}
	lock, err := lockFile(target)
	if err != nil {
		return info, fmt.Errorf("open database: %w", err)
	}
	swapped := false
	if lock != nil {
		defer lock.Close()
		// A file the lock made (not the one there before) is empty: gone
		// again if nothing takes its place, and if it still has the name.
		if made, serr := lock.Stat(); serr == nil && made.Size() == 0 && (!existed || !os.SameFile(lst, made)) {
			defer func() {
				if cur, serr := os.Lstat(target); err != nil && !swapped && serr == nil && os.SameFile(cur, made) && cur.Size() == 0 {
					os.Remove(target)
				}
			}()
		}
	}
	// Refused before the copy if another process has the database open
	// (fold below, just before the swap, is what counts).
	if err = fold(ctx, target, true); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	tmp, err := emptyFile(target, ".restoring-")
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if err != nil && !swapped {
			removeCopy(tmp)
		}
	}()
	// Locked from the start: the lock goes with the file into target's
	// place.
	tmpLock, err := lockFile(tmp)
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	if tmpLock != nil {
		defer tmpLock.Close()
	}
	if info.Schema, err = copyLog(ctx, backup, tmp); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	backupCopied()
	if err = finishCopy(ctx, tmp, opt, &info); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	if err = likeFile(tmp, target); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	if err = syncPath(tmp); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	// The database replaced becomes one file first, as a clean stop of
	// its server leaves it, so that linking it aside keeps it whole.
	if err = fold(ctx, target, false); err != nil { // again: it may have been opened meanwhile
		return info, fmt.Errorf("restore: %w", err)
	}
	if err = ctx.Err(); err != nil {
		return info, err
	}
	if info.Aside, err = swapIn(tmp, target); err != nil {
		return info, err
	}
	swapped = true
	if st, serr := os.Stat(target); serr == nil {
		info.Bytes = st.Size()
	}
	// The copy is in place; a failure to sync the folder loses nothing
	// written, but the names may not survive a power loss.
	if err := syncPath(filepath.Dir(target)); err != nil {
		return info, fmt.Errorf("restored %s, but its folder could not be synced: %w", target, err)
	}
	return info, nil
}

// fold copies what the write-ahead log of the database at path holds
// into it and ends WAL mode (and rolls back a hot rollback journal, as
// SQLite does on opening), so that the database is its file alone, with
// no -wal, -shm or -journal beside it, as a clean stop of its server
// leaves it. Only a file that starts as a database is opened so: SQLite
// drops what it takes for stale sidecars of a file it cannot read, and
// they may be all that is left. A damaged one (not a database, or
// corrupt, to SQLite) is left as it is, and swapIn moves its sidecars
// with it. An errInUse means another connection has it open (a reader's
// snapshot keeps the checkpoint from ending, or the locks to leave WAL
// mode or to write are refused); any other error, that it could not be
// read (or the run was cancelled).
//
// With check, a database that was in WAL mode is put back in it once
// folded (its log copied in), so that a later fold still sees the
// connections that open it meanwhile (an idle one holds a lock on it in
// WAL mode only).
func fold(ctx context.Context, path string, check bool) error {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	head := make([]byte, 16)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || string(head) != "SQLite format 3\x00" {
		return nil
	}
	db, err := sql.Open("sqlite3", "file:"+uriPath.Replace(path)+"?_busy_timeout=1000&_synchronous=FULL")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// what sorts a failure: in use, damaged, or neither.
	what := func(err error) error {
		var se sqlite3.Error
		if errors.As(err, &se) {
			switch se.Code {
			case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrProtocol:
				return errInUse{path, err}
			case sqlite3.ErrNotADB, sqlite3.ErrCorrupt:
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	var was string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&was); err != nil {
		return what(err)
	}
	var busy, frames, copied int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil {
		return what(err)
	}
	if busy != 0 {
		return errInUse{path, errors.New("a reader or another checkpoint is using its write-ahead log")}
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		return what(err)
	}
	if mode != "delete" {
		return errInUse{path, fmt.Errorf("it stays in %s mode", mode)}
	}
	// In rollback mode the switch above takes no lock: a write lock of
	// its own tells whether another connection is in the file.
	conn, err := db.Conn(ctx)
	if err != nil {
		return what(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		return what(err)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return what(err)
	}
	if check && was == "wal" {
		var now string
		if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&now); err != nil {
			return what(err)
		}
		if now != "wal" {
			return errInUse{path, fmt.Errorf("it could not go back to WAL mode (%s)", now)}
		}
	}
	conn.Close()
	return db.Close()
}

// errInUse says a database is open in another connection.
type errInUse struct {
	path string
	err  error
}

func (e errInUse) Error() string {
	return fmt.Sprintf("%s is open in another process (%v): stop it and try again", e.path, e.err)
}

func (e errInUse) Unwrap() error { return e.err }

// likeFile gives the copy at tmp the mode and owner of target, the file it
// is to replace (on Linux the lock has made one, with fazt serve's mode,
// where there was none), or 0644 where there is none.
func likeFile(tmp, target string) error {
	st, err := os.Stat(target)
	if err != nil {
		return os.Chmod(tmp, 0o644)
	}
	if err := os.Chmod(tmp, st.Mode().Perm()); err != nil {
		return err
	}
	return sameOwner(tmp, st)
}

// linkFile is os.Link, or a test's stand-in for a file system without
// hard links.
var linkFile = os.Link

// swapIn puts tmp in target's place and returns where the file it
// replaced went ("" when there was nothing to keep: no file, or an empty
// one). With hard links, the file is linked to that name first, then its
// sidecars (fold has left none, but for a damaged file) are renamed to go
// with it, then the copy is renamed over target: target always names a
// database. Without, the sidecars go first, then the file, and target
// has no file until the copy's rename. A failure puts back what was
// moved.
func swapIn(tmp, target string) (aside string, err error) {
	keep := false
	if st, err := os.Stat(target); err == nil && st.Size() > 0 {
		keep = true
	}
	for _, s := range sidecars {
		if _, err := os.Lstat(target + s); err == nil {
			keep = true
		}
	}
	if !keep {
		if err := os.Rename(tmp, target); err != nil {
			return "", fmt.Errorf("restore: %w", err)
		}
		return "", nil
	}
	aside = target + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
	for _, s := range append([]string{""}, sidecars...) {
		if _, err := os.Lstat(aside + s); err == nil {
			return "", fmt.Errorf("restore: %s exists already; try again in a second", aside+s)
		}
	}
	_, serr := os.Lstat(target)
	hasFile := serr == nil
	linked, renamed := false, false
	if hasFile {
		err := linkFile(target, aside)
		switch {
		case err == nil:
			linked = true
		case errors.Is(err, fs.ErrExist):
			return "", fmt.Errorf("restore: %s exists already; try again in a second", aside)
		}
	}
	var moved []string
	undo := func() { // the file back first, its sidecars, the link last
		if renamed {
			os.Rename(aside, target)
		}
		for _, s := range moved {
			os.Rename(aside+s, target+s)
		}
		if linked {
			os.Remove(aside)
		}
	}
	for _, s := range sidecars {
		err := os.Rename(target+s, aside+s)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			undo()
			return "", fmt.Errorf("restore: set %s aside: %w", target+s, err)
		}
		moved = append(moved, s)
	}
	if hasFile && !linked {
		if err := os.Rename(target, aside); err != nil {
			undo()
			return "", fmt.Errorf("restore: set %s aside: %w", target, err)
		}
		renamed = true
	}
	if err := os.Rename(tmp, target); err != nil {
		undo()
		return "", fmt.Errorf("restore: %w", err)
	}
	return aside, nil
}
