package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	dir := t.TempDir()
	src := filepath.Join(dir, "fazt.db")
	l := mustOpen(t, src)
	for _, ch := range []string{"a", "b", "c"} {
		broadcasts(t, l, "app", ch, 5, 0)
	}
	stop, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
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
	info, err := Backup(ctx, src, dst, BackupOptions{})
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
	dir := t.TempDir()
	src := filepath.Join(dir, "fazt.db")
	l := mustOpen(t, src)
	evs := broadcasts(t, l, "app", "x", 3, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "moved.db")
	if _, err := Backup(ctx, src, dst, BackupOptions{KeepEpochs: true}); err != nil {
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
	dir := t.TempDir()
	src := filepath.Join(dir, "fazt.db")
	l := mustOpen(t, src)
	broadcasts(t, l, "app", "x", 2, 0)
	before := files(t, dir)

	taken := filepath.Join(dir, "taken.db")
	if err := os.WriteFile(taken, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(ctx, src, taken, BackupOptions{}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("backup over a file: %v", err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "mine" {
		t.Fatalf("the file there was changed: %q", b)
	}
	os.Remove(taken)

	other := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite3", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (name TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Backup(ctx, other, filepath.Join(dir, "c1.db"), BackupOptions{}); err == nil || !strings.Contains(err.Error(), "no event log") {
		t.Fatalf("backup of another program's database: %v", err)
	}
	if _, err := Backup(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "c2.db"), BackupOptions{}); err == nil {
		t.Fatal("backup of a missing file succeeded")
	}

	newer := filepath.Join(t.TempDir(), "newer.db")
	if _, err := Backup(ctx, src, newer, BackupOptions{KeepEpochs: true}); err != nil {
		t.Fatal(err)
	}
	if db, err = sql.Open("sqlite3", newer); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	var se *migrations.SchemaError
	if _, err := Backup(ctx, newer, filepath.Join(dir, "c3.db"), BackupOptions{}); !errors.As(err, &se) || se.Version != 999 {
		t.Fatalf("backup of a newer schema: %v", err)
	}

	// Stopped once the copy is written: the copy is removed.
	stopped, cancel := context.WithCancel(ctx)
	backupCopied = cancel
	defer func() { backupCopied = func() {} }()
	if _, err := Backup(stopped, src, filepath.Join(dir, "c4.db"), BackupOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup cancelled after the copy: %v", err)
	}
	if got := files(t, dir); !slices.Equal(got, before) {
		t.Fatalf("folder after the refusals: %v, want %v", got, before)
	}
}

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

// TestRestore: a backup restored where no database is, and over one a
// killed server left with its write-ahead log. The file replaced is set
// aside with its log, whole; no log of it is left beside the restored
// file. A database open for writing, a file that is not a backup, or one
// of a newer schema are refused, with the target left as it was.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "fazt.db")
	l := mustOpen(t, src)
	broadcasts(t, l, "app", "x", 3, 0)
	backup := filepath.Join(dir, "backup.db")
	if _, err := Backup(ctx, src, backup, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	broadcasts(t, l, "app", "x", 2, 0)

	// Where no database is.
	fresh := filepath.Join(t.TempDir(), "fazt.db")
	info, err := Restore(ctx, backup, fresh)
	if err != nil || info.Events != 3 || info.LastSeq != 3 || info.Aside != "" {
		t.Fatalf("restore to a new file: %+v, %v", info, err)
	}

	// The running server's file is refused, and left as it was.
	if _, err := Restore(ctx, backup, src); err == nil || !strings.Contains(err.Error(), "open for writing") {
		t.Fatalf("restore over a served database: %v", err)
	}
	if c, err := l.Channel(ctx, "app", "x"); err != nil || c.Head != 5 {
		t.Fatalf("the served database after a refused restore: %+v %v", c, err)
	}

	// A killed server's files: the database and its write-ahead log,
	// which holds the last commits.
	killed := t.TempDir()
	target := filepath.Join(killed, "fazt.db")
	for _, s := range []string{"", "-wal", "-shm"} {
		copyFile(t, src+s, target+s)
	}
	info, err = Restore(ctx, backup, target)
	if err != nil || info.Aside == "" {
		t.Fatalf("restore over a killed server's file: %+v, %v", info, err)
	}
	names := files(t, killed)
	want := []string{"fazt.db", filepath.Base(info.Aside), filepath.Base(info.Aside) + "-shm", filepath.Base(info.Aside) + "-wal"}
	if !slices.Equal(names, want) {
		t.Fatalf("folder after the restore: %v, want %v", names, want)
	}
	for path, head := range map[string]uint64{target: 3, info.Aside: 5} {
		r, err := Open(ctx, Config{Path: path, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.Channel(ctx, "app", "x")
		r.Close()
		if err != nil || c.Head != head {
			t.Fatalf("%s: head %d (%v), want %d", path, c.Head, err, head)
		}
	}

	// Not a backup, or of a newer schema: refused, the target kept.
	other := filepath.Join(dir, "other.db")
	db, err := sql.Open("sqlite3", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (name TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	newer := filepath.Join(dir, "newer.db")
	copyFile(t, backup, newer)
	if db, err = sql.Open("sqlite3", newer); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := files(t, killed)
	for _, bad := range []string{other, newer, filepath.Join(dir, "missing.db")} {
		if _, err := Restore(ctx, bad, target); err == nil {
			t.Fatalf("restore of %s succeeded", bad)
		}
	}
	if got := files(t, killed); !slices.Equal(got, before) {
		t.Fatalf("folder after refused restores: %v, want %v", got, before)
	}
	if _, err := Restore(ctx, other, filepath.Join(killed, "new.db")); err == nil {
		t.Fatal("restore of another program's database succeeded")
	}
	if got := files(t, killed); !slices.Equal(got, before) {
		t.Fatalf("a refused restore to a new name left %v, want %v", got, before)
	}
}
