package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/migrations"
)

// files lists a folder's names.
func files(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestBackupWhileAppending: a backup taken while broadcasts are appended
// holds the log up to one event, whole (each channel's offsets 1 to its
// head, as the check finds them), with every channel's epoch new; served
// again it goes on from its heads under those epochs. Nothing else is
// left in the folder.
func TestBackupWhileAppending(t *testing.T) {
	ctx := context.Background()
	dir, src, l := sourceLog(t)
	for _, ch := range []string{"a", "b", "c"} {
		broadcasts(t, l, "app", ch, 5, 0)
	}
	stop, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 5000; i++ { // bounded: the audit read below takes 10,000
			if i == 7 {
				close(started) // a broadcast to each live channel is in
			}
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(ctx, broadcast("app", fmt.Sprintf("live%d", i%7), "1")); err != nil {
				t.Error(err)
				return
			}
		}
	})
	<-started
	dst := filepath.Join(dir, "copy.db")
	info, err := Backup(ctx, src, dst, CopyOptions{})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema == 0 || info.Channels < 3 || info.Events < 15 || info.LastSeq != info.Events {
		t.Fatalf("backup info %+v", info)
	}
	if st, err := os.Stat(dst); err != nil || st.Size() != info.Bytes || st.Mode().Perm() != 0o600 {
		t.Fatalf("the copy: %v, %v; info %+v", st, err, info)
	}
	if got, want := files(t, dir), []string{"copy.db", "fazt.db", "fazt.db-shm", "fazt.db-wal"}; !slices.Equal(got, want) {
		t.Fatalf("folder after the backup: %v, want %v", got, want)
	}

	// The copy on its own: the events up to LastSeq, the same as the
	// source's, and each channel whole.
	c, err := Open(ctx, Config{Path: dst, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	problems, channels, err := c.CheckChannels(ctx)
	if err != nil || len(problems) > 0 || int64(channels) != info.Channels {
		t.Fatalf("check of the copy: %v %v, %d channels of %d", problems, err, channels, info.Channels)
	}
	copied, err := c.Events(ctx, domain.AuditQuery{Limit: MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := l.Events(ctx, domain.AuditQuery{Limit: int(info.LastSeq)})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(copied)) != info.Events || len(orig) != len(copied) {
		t.Fatalf("the copy has %d events, the source %d up to %d; info %+v", len(copied), len(orig), info.LastSeq, info)
	}
	for i := range copied {
		cb, ok1 := copied[i].Fact.(*domain.MessageBroadcast)
		ob, ok2 := orig[i].Fact.(*domain.MessageBroadcast)
		if copied[i].Seq != orig[i].Seq || !ok1 || !ok2 || cb.Channel != ob.Channel || cb.Offset != ob.Offset {
			t.Fatalf("event %d: the copy's %+v, the source's %+v", i, copied[i], orig[i])
		}
	}
	heads := map[string]domain.ChannelInfo{}
	for _, ch := range []string{"a", "b", "c", "live0"} {
		was, err := l.Channel(ctx, "app", ch)
		if err != nil {
			t.Fatal(err)
		}
		now, err := c.Channel(ctx, "app", ch)
		if err != nil {
			t.Fatal(err)
		}
		if now.Epoch == "" || now.Epoch == was.Epoch {
			t.Fatalf("channel %s: epoch %q in the copy, %q in the source", ch, now.Epoch, was.Epoch)
		}
		heads[ch] = now
	}
	c.Close()

	// Served again: offsets go on from the copy's heads, in its epochs.
	w := mustOpen(t, dst)
	evs, err := w.Append(ctx, broadcast("app", "a", "6"), broadcast("app", "live0", "1"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range []string{"a", "live0"} {
		mb := evs[i].Fact.(*domain.MessageBroadcast)
		if mb.Offset != heads[ch].Head+1 || mb.Epoch != heads[ch].Epoch {
			t.Fatalf("%s in the copy served again: offset %d in epoch %s; want %d in %s", ch, mb.Offset, mb.Epoch, heads[ch].Head+1, heads[ch].Epoch)
		}
	}
}

// TestBackupKeepsEpochsWhenAsked: --keep-epochs, to move a stopped
// server's file.
func TestBackupKeepsEpochsWhenAsked(t *testing.T) {
	ctx := context.Background()
	dir, src, l := sourceLog(t)
	evs := broadcasts(t, l, "app", "x", 3, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "moved.db")
	if _, err := Backup(ctx, src, dst, CopyOptions{KeepEpochs: true}); err != nil {
		t.Fatal(err)
	}
	w := mustOpen(t, dst)
	more, err := w.Append(ctx, broadcast("app", "x", "4"))
	if err != nil {
		t.Fatal(err)
	}
	was, now := evs[0].Fact.(*domain.MessageBroadcast), more[0].Fact.(*domain.MessageBroadcast)
	if now.Epoch != was.Epoch || now.Offset != 4 {
		t.Fatalf("after a backup that keeps epochs: offset %d in %s, want 4 in %s", now.Offset, now.Epoch, was.Epoch)
	}
}

// TestBackupRefusals: a file there already is left as it was; a source
// that is not a fazt log, or of a newer schema, is refused; a backup
// stopped after the copy leaves no file. None leaves a file behind.
func TestBackupRefusals(t *testing.T) {
	ctx := context.Background()
	dir, src, l := sourceLog(t)
	broadcasts(t, l, "app", "x", 2, 0)
	before := files(t, dir)

	taken := filepath.Join(dir, "taken.db")
	if err := os.WriteFile(taken, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(ctx, src, taken, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("backup over a file: %v", err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "mine" {
		t.Fatalf("the file there was changed: %q", b)
	}
	os.Remove(taken)
	// A -wal left beside the name (a database of it removed without its
	// files) would be applied to the copy at its first open: refused.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if err := os.WriteFile(taken+suffix, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Backup(ctx, src, taken, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "taken.db"+suffix+" is left from another database") {
			t.Fatalf("backup beside a left %s: %v", suffix, err)
		}
		os.Remove(taken + suffix)
	}

	other := filepath.Join(t.TempDir(), "other.db")
	execFile(t, other, otherProgram)
	if _, err := Backup(ctx, other, filepath.Join(dir, "c1.db"), CopyOptions{}); err == nil || !strings.Contains(err.Error(), "not a fazt event log") {
		t.Fatalf("backup of another program's database: %v", err)
	}
	if _, err := Backup(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "c2.db"), CopyOptions{}); err == nil {
		t.Fatal("backup of a missing file succeeded")
	}

	newer := filepath.Join(t.TempDir(), "newer.db")
	if _, err := Backup(ctx, src, newer, CopyOptions{KeepEpochs: true}); err != nil {
		t.Fatal(err)
	}
	execFile(t, newer, futureSchema)
	var se *migrations.SchemaError
	if _, err := Backup(ctx, newer, filepath.Join(dir, "c3.db"), CopyOptions{}); !errors.As(err, &se) || se.Version != 999 {
		t.Fatalf("backup of a newer schema: %v", err)
	}

	// Stopped once the copy is written: the copy is removed.
	stopped, cancel := context.WithCancel(ctx)
	backupCopied = cancel
	defer func() { backupCopied = func() {} }()
	if _, err := Backup(stopped, src, filepath.Join(dir, "c4.db"), CopyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup cancelled after the copy: %v", err)
	}
	if got := files(t, dir); !slices.Equal(got, before) {
		t.Fatalf("folder after the refusals: %v, want %v", got, before)
	}
}

// sourceLog opens a log for writing at fazt.db in a new folder, closed at
// the test's end.
func sourceLog(t *testing.T) (dir, src string, l *Log) {
	t.Helper()
	dir = t.TempDir()
	src = filepath.Join(dir, "fazt.db")
	return dir, src, mustOpen(t, src)
}

// execFile runs statements on the SQLite file at path, made if missing.
func execFile(t *testing.T, path, stmts string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmts); err != nil {
		t.Fatal(err)
	}
}

// The statements that make a file another program's database, and that
// make a fazt log's schema newer than this fazt's.
const (
	otherProgram = `CREATE TABLE users (name TEXT)`
	futureSchema = `INSERT INTO schema_migrations (version, name, applied) VALUES (999, 'future', 0)`
)

// copyFile copies src to dst as it is.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRestore: a backup restored where no database is, and over the files
// a killed server left, its write-ahead log among them. The file replaced
// is made one file, its log copied in, and kept under another name,
// whole; nothing of it is left beside the restored file, which has the
// replaced one's mode. A damaged database's sidecars go with it. A killed
// server's files restore with what their log holds. A database open for
// writing (Linux), a file that is not a fazt log, or one of a newer
// schema are refused, with the target left as it was.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	dir, src, l := sourceLog(t)
	broadcasts(t, l, "app", "x", 3, 0)
	backup := filepath.Join(dir, "backup.db")
	if _, err := Backup(ctx, src, backup, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	// A killed server's files: the database and its write-ahead log,
	// which holds the last two commits. A read transaction held over them
	// keeps the checkpointer from copying them into the file.
	rdb, err := sql.Open("sqlite3", "file:"+src+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	rtx, err := rdb.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rtx.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("read: %d %v", n, err)
	}
	broadcasts(t, l, "app", "x", 2, 0)
	killed := t.TempDir()
	target := filepath.Join(killed, "fazt.db")
	for _, s := range []string{"", "-wal", "-shm"} {
		copyFile(t, src+s, target+s)
	}
	rtx.Rollback()
	head := func(path string) domain.ChannelInfo {
		t.Helper()
		r, err := Open(ctx, Config{Path: path, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		c, err := r.Channel(ctx, "app", "x")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	backupEpoch := head(backup).Epoch

	// Where no database is: a new epoch again, and fazt serve's mode.
	fresh := filepath.Join(t.TempDir(), "fazt.db")
	info, err := Restore(ctx, backup, fresh, CopyOptions{})
	if err != nil || info.Events != 3 || info.LastSeq != 3 || info.Aside != "" {
		t.Fatalf("restore to a new file: %+v, %v", info, err)
	}
	if c := head(fresh); c.Head != 3 || c.Epoch == backupEpoch {
		t.Fatalf("restored: %+v; the backup's epoch %s", c, backupEpoch)
	}
	if st, err := os.Stat(fresh); err != nil || (runtime.GOOS == "linux" && st.Mode().Perm() != 0o644&^umask(t)) {
		t.Fatalf("restored file: %v %v", st, err)
	}
	if _, err := Restore(ctx, fresh, fresh, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "the database itself") {
		t.Fatalf("restore of a database onto itself: %v", err)
	}
	// A restored file not yet served is in rollback mode: a reader of it
	// is seen by the write lock.
	rreader, err := sql.Open("sqlite3", "file:"+fresh+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	rrtx, err := rreader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var m int
	if err := rrtx.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&m); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, backup, fresh, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "open in another process") {
		t.Fatalf("restore over a rollback-mode database being read: %v", err)
	}
	rrtx.Rollback()
	rreader.Close()
	link := filepath.Join(filepath.Dir(fresh), "link.db")
	if err := os.Symlink(fresh, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, backup, link, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("restore to a symbolic link: %v", err)
	}
	// An empty file made for it, as an installer may: its mode is kept.
	made := filepath.Join(t.TempDir(), "fazt.db")
	if err := os.WriteFile(made, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if info, err := Restore(ctx, backup, made, CopyOptions{}); err != nil || info.Aside != "" {
		t.Fatalf("restore over an empty file: %+v %v", info, err)
	}
	if st, err := os.Stat(made); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("restored over an empty 0600 file: %v %v", st, err)
	}

	if runtime.GOOS == "linux" { // the only system with the writer's lock
		if _, err := Restore(ctx, backup, src, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "open for writing") {
			t.Fatalf("restore over a served database: %v", err)
		}
		if c, err := l.Channel(ctx, "app", "x"); err != nil || c.Head != 5 {
			t.Fatalf("the served database after a refused restore: %+v %v", c, err)
		}
	}

	// The file alone lacks the last two (all of it, when nothing was
	// checkpointed yet).
	alone := filepath.Join(t.TempDir(), "fazt.db")
	copyFile(t, target, alone)
	if r, err := Open(ctx, Config{Path: alone, ReadOnly: true}); err != nil {
		if !strings.Contains(err.Error(), "no event log") {
			t.Fatalf("the killed server's file without its log: %v", err)
		}
	} else {
		c, err := r.Channel(ctx, "app", "x")
		r.Close()
		if err != nil || c.Head >= 5 {
			t.Fatalf("the killed server's file without its log: head %d (%v), want under 5", c.Head, err)
		}
	}
	if err := os.Chmod(target, 0o640); err != nil {
		t.Fatal(err)
	}
	// Restored from such files, what their log holds comes too.
	again := filepath.Join(t.TempDir(), "fazt.db")
	if info, err := Restore(ctx, target, again, CopyOptions{KeepEpochs: true}); err != nil || info.LastSeq != 5 {
		t.Fatalf("restore from a killed server's files: %+v %v", info, err)
	}
	if c := head(again); c.Head != 5 {
		t.Fatalf("restored from a killed server's files: head %d, want 5", c.Head)
	}
	for _, s := range []string{"-wal", "-shm"} { // the read-only open may have changed them
		copyFile(t, src+s, target+s)
	}

	// A reader in the middle of a read of the old database (a tool) keeps
	// it from being made one file: refused, and nothing moved.
	reader, err := sql.Open("sqlite3", "file:"+target+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	rtx, err = reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := rtx.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	before := files(t, killed)
	if _, err := Restore(ctx, backup, target, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "open in another process") {
		t.Fatalf("restore over a database being read: %v", err)
	}
	if got := files(t, killed); !slices.Equal(got, before) {
		t.Fatalf("folder after a restore refused for a reader: %v, want %v", got, before)
	}
	rtx.Rollback()
	reader.Close()
	// One that opens it while the copy is made, reads and stays idle: the
	// check before the copy left the database in WAL mode, where an idle
	// connection holds a lock, so the check before the swap sees it.
	var idle *sql.DB
	var idleErr error
	backupCopied = func() {
		if idle, idleErr = sql.Open("sqlite3", "file:"+target+"?mode=ro"); idleErr == nil {
			idleErr = idle.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n)
		}
	}
	_, rerr := Restore(ctx, backup, target, CopyOptions{})
	backupCopied = func() {}
	if idle != nil {
		idle.Close()
	}
	if idle == nil || idleErr != nil {
		t.Fatalf("the reader opened during the copy: %v (the restore: %v)", idleErr, rerr)
	}
	if rerr == nil || !strings.Contains(rerr.Error(), "open in another process") {
		t.Fatalf("restore over a database opened during the copy: %v", rerr)
	}
	if got := files(t, killed); !slices.Equal(got, before) {
		t.Fatalf("folder after a restore refused for an idle reader: %v, want %v", got, before)
	}

	info, err = Restore(ctx, backup, target, CopyOptions{})
	if err != nil || info.Aside == "" {
		t.Fatalf("restore over a killed server's files: %+v, %v", info, err)
	}
	// The replaced database was made one file first (its log copied in),
	// then linked aside.
	aside := filepath.Base(info.Aside)
	if got, want := files(t, killed), []string{"fazt.db", aside}; !slices.Equal(got, want) {
		t.Fatalf("folder after the restore: %v, want %v", got, want)
	}
	if c := head(target); c.Head != 3 {
		t.Fatalf("restored: head %d, want 3", c.Head)
	}
	if c := head(info.Aside); c.Head != 5 {
		t.Fatalf("the replaced file, with its log: head %d, want 5", c.Head)
	}
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("restored over a 0640 file: %v %v", st, err)
	}

	// A damaged database, which SQLite cannot make one file: its log and
	// journal are renamed to go with it.
	damaged := t.TempDir()
	bad := filepath.Join(damaged, "fazt.db")
	for s, b := range map[string]string{"": "not a database at all, but long enough to be read as one", "-wal": "junk", "-journal": "junk"} {
		if err := os.WriteFile(bad+s, []byte(strings.Repeat(b, 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err = Restore(ctx, backup, bad, CopyOptions{})
	if err != nil || info.Aside == "" {
		t.Fatalf("restore over a damaged database: %+v %v", info, err)
	}
	aside = filepath.Base(info.Aside)
	if got, want := files(t, damaged), []string{"fazt.db", aside, aside + "-journal", aside + "-wal"}; !slices.Equal(got, want) {
		t.Fatalf("folder after the restore over a damaged database: %v, want %v", got, want)
	}
	if c := head(bad); c.Head != 3 {
		t.Fatalf("restored over a damaged database: head %d", c.Head)
	}

	// Not a backup, or of a newer schema: refused, the target kept.
	other := filepath.Join(dir, "other.db")
	execFile(t, other, otherProgram)
	newer := filepath.Join(dir, "newer.db")
	copyFile(t, backup, newer)
	execFile(t, newer, futureSchema)
	before = files(t, killed)
	for bad, why := range map[string]string{other: "not a fazt event log", newer: "is newer than this fazt's", filepath.Join(dir, "missing.db"): "no such file"} {
		if _, err := Restore(ctx, bad, target, CopyOptions{}); err == nil || !strings.Contains(err.Error(), why) {
			t.Fatalf("restore of %s: %v, want %q", bad, err, why)
		}
	}
	if _, err := Restore(ctx, other, filepath.Join(killed, "new.db"), CopyOptions{}); err == nil {
		t.Fatal("restore of another program's database succeeded")
	}
	if got := files(t, killed); !slices.Equal(got, before) {
		t.Fatalf("folder after refused restores: %v, want %v", got, before)
	}
	if c := head(target); c.Head != 3 {
		t.Fatalf("after refused restores: head %d, want 3", c.Head)
	}
}

// TestBackupOfAnOlderSchema: a file an older fazt wrote is backed up as it
// is, and restored, for fazt serve to bring up to date.
func TestBackupOfAnOlderSchema(t *testing.T) {
	ctx := context.Background()
	dir, src, l := sourceLog(t)
	broadcasts(t, l, "app", "x", 3, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	execFile(t, src, undo0005)
	backup := filepath.Join(dir, "old.db")
	info, err := Backup(ctx, src, backup, CopyOptions{})
	if err != nil || info.Schema != 4 {
		t.Fatalf("backup of schema 4: %+v %v", info, err)
	}
	target := filepath.Join(dir, "restored.db")
	if info, err := Restore(ctx, backup, target, CopyOptions{}); err != nil || info.Schema != 4 {
		t.Fatalf("restore of schema 4: %+v %v", info, err)
	}
	w := mustOpen(t, target)
	evs, err := w.Append(ctx, broadcast("app", "x", "4"))
	if err != nil || evs[0].Fact.(*domain.MessageBroadcast).Offset != 4 {
		t.Fatalf("served after the upgrade: %v %v", evs, err)
	}
}

// umask reads the process's file mode mask, as a file made shows it.
func umask(t *testing.T) os.FileMode {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o777)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ st.Mode().Perm()
}

// TestSwapInPutsBackWhatItMoved: a final rename that fails (the copy gone)
// leaves the database and its sidecars as they were, with and without
// hard links; without them, a swap that succeeds has renamed the file and
// its sidecars aside together.
func TestSwapInPutsBackWhatItMoved(t *testing.T) {
	defer func() { linkFile = os.Link }()
	for _, links := range []bool{true, false} {
		linkFile = os.Link
		if !links {
			linkFile = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
		}
		dir := t.TempDir()
		target := filepath.Join(dir, "fazt.db")
		for s, b := range map[string]string{"": "database", "-wal": "log", "-shm": "index"} {
			if err := os.WriteFile(target+s, []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want := files(t, dir)
		if _, err := swapIn(filepath.Join(dir, "gone"), target); err == nil {
			t.Fatalf("links %v: a swap with no copy succeeded", links)
		}
		if got := files(t, dir); !slices.Equal(got, want) {
			t.Fatalf("links %v: after a failed swap: %v, want %v", links, got, want)
		}
		for s, b := range map[string]string{"": "database", "-wal": "log", "-shm": "index"} {
			if got, _ := os.ReadFile(target + s); string(got) != b {
				t.Fatalf("links %v: %s after a failed swap: %q", links, target+s, got)
			}
		}

		copied := filepath.Join(dir, ".copy")
		if err := os.WriteFile(copied, []byte("restored"), 0o644); err != nil {
			t.Fatal(err)
		}
		aside, err := swapIn(copied, target)
		if err != nil {
			t.Fatal(err)
		}
		a := filepath.Base(aside)
		if got, want := files(t, dir), []string{"fazt.db", a, a + "-shm", a + "-wal"}; !slices.Equal(got, want) {
			t.Fatalf("links %v: after the swap: %v, want %v", links, got, want)
		}
		if got, _ := os.ReadFile(target); string(got) != "restored" {
			t.Fatalf("links %v: the database after the swap: %q", links, got)
		}
		if got, _ := os.ReadFile(aside + "-wal"); string(got) != "log" {
			t.Fatalf("links %v: the replaced log: %q", links, got)
		}
	}
}
