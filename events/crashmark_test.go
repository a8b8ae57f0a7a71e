package events

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// setting reads key from the settings of the closed log at path ("" for
// none); setSetting writes it ("" deletes it).
func setting(t *testing.T, path, key string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT value FROM settings WHERE key = ?`, key).Scan(&v); err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	return v
}

func setSetting(t *testing.T, path, key, value string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, args := `DELETE FROM settings WHERE key = ?`, []any{key}
	if value != "" {
		q, args = `INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)`, []any{key, value}
	}
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// A log left open by a run that crashed with its machine (its mark names
// another boot) gives every channel a new epoch when opened, under
// durability normal, and says why: its last commits may be lost, and
// their offsets given again. A clean close, a crash of the process alone
// (the same boot) and a run under durability full change nothing. Before,
// no crash changed an epoch, and a client that had seen an offset lost
// with the machine resumed past the message later given that offset.
func TestACrashOfTheMachineGivesNewEpochs(t *testing.T) {
	boot := bootID()
	if boot == "" {
		t.Skip("the system does not name its boots")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log.db")
	l := mustOpen(t, path)
	broadcasts(t, l, "app", "room", 3, 0)
	broadcasts(t, l, "app", "lobby", 2, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if m := setting(t, path, runKey); m != "" {
		t.Fatalf("a clean close left the mark %q", m)
	}
	var logs bytes.Buffer
	open := func() (room, lobby string) {
		logs.Reset()
		l, err := Open(ctx, Config{Path: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if m := setting(t, path, runKey); m != boot+" normal" {
			t.Fatalf("the open log's mark is %q, want %q", m, boot+" normal")
		}
		for _, ch := range []string{"room", "lobby"} {
			info, err := l.Channel(ctx, "app", ch)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]uint64{"room": 3, "lobby": 2}[ch]; info.Head != want {
				t.Fatalf("%s's head %d, want %d", ch, info.Head, want)
			}
			if ch == "room" {
				room = info.Epoch
			} else {
				lobby = info.Epoch
			}
		}
		return room, lobby
	}
	room, lobby := open()
	for _, tc := range []struct {
		name, mark string
		renewed    bool
	}{
		{"closed cleanly", "", false},
		{"the process crashed", boot + " normal", false},
		{"the machine crashed under durability full", "00000000-0000-0000-0000-000000000000 full", false},
		{"the machine crashed", "00000000-0000-0000-0000-000000000000 normal", true},
	} {
		setSetting(t, path, runKey, tc.mark)
		r, b := open()
		told := strings.Contains(logs.String(), "booted since")
		switch {
		case tc.renewed && (r == room || b == lobby || r == b || !told):
			t.Errorf("%s: epochs %s, %s (were %s, %s), told %v; want new ones, told", tc.name, r, b, room, lobby, told)
		case !tc.renewed && (r != room || b != lobby || told):
			t.Errorf("%s: epochs %s, %s, want %s, %s kept (told %v)", tc.name, r, b, room, lobby, told)
		}
		room, lobby = r, b
	}
}

// A backup's copy does not carry the mark of a live log's run: its first
// open is not taken for one after a crash. The copy of a file left by a
// crash of its machine keeps that mark when it keeps the epochs, so that
// its first open renews them; a copy with new epochs needs it no more.
func TestABackupCarriesARunMarkOnlyOfACrash(t *testing.T) {
	if bootID() == "" {
		t.Skip("the system does not name its boots")
	}
	ctx := context.Background()
	dir, src, l := sourceLog(t)
	broadcasts(t, l, "app", "x", 2, 0)
	live := filepath.Join(dir, "live.db")
	if _, err := Backup(ctx, src, live, CopyOptions{KeepEpochs: true}); err != nil {
		t.Fatal(err)
	}
	if m := setting(t, live, runKey); m != "" {
		t.Fatalf("the copy of a live log has the mark %q", m)
	}
	info, err := l.Channel(ctx, "app", "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	crashed := "00000000-0000-0000-0000-000000000000 normal"
	setSetting(t, src, runKey, crashed)
	kept, renewed := filepath.Join(dir, "kept.db"), filepath.Join(dir, "renewed.db")
	if _, err := Backup(ctx, src, kept, CopyOptions{KeepEpochs: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(ctx, src, renewed, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := setting(t, renewed, runKey); m != "" {
		t.Fatalf("a copy with new epochs has the mark %q", m)
	}
	if m := setting(t, kept, runKey); m != crashed {
		t.Fatalf("a copy that keeps the epochs of a crashed run has the mark %q, want %q", m, crashed)
	}
	k := mustOpen(t, kept)
	after, err := k.Channel(ctx, "app", "x")
	if err != nil {
		t.Fatal(err)
	}
	if after.Epoch == info.Epoch || after.Head != info.Head {
		t.Fatalf("the copy's first open: epoch %s head %d, was %s head %d; want a new epoch", after.Epoch, after.Head, info.Epoch, info.Head)
	}
}

// The open that marks the run leaves the writer at the durability asked
// for: the mark's own commit is synced (synchronous FULL) whatever it is.
func TestTheRunsMarkLeavesTheDurability(t *testing.T) {
	for d, want := range map[Durability]int{DurabilityNormal: 1, DurabilityFull: 2} {
		l := mustOpenConfig(t, Config{Path: filepath.Join(t.TempDir(), "log.db"), Durability: d})
		var got int
		if err := l.wdb.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil || got != want {
			t.Errorf("%s: synchronous %d (%v), want %d", d, got, err, want)
		}
	}
}

// A copy that keeps its epochs keeps a run's mark that says the run may
// have lost commits with its machine: of another boot under normal, or,
// where the system names no boot, any under normal.
func TestWhichMarksACopyKeeps(t *testing.T) {
	for _, tc := range []struct {
		mark, boot string
		keep       bool
	}{
		{"", "b", false}, {"", "", false},
		{"a normal", "b", true}, {"b normal", "b", false}, {"a full", "b", false},
		{"a normal", "", true}, {"a full", "", false},
	} {
		if got := mayHaveLost(tc.mark, tc.boot); got != tc.keep {
			t.Errorf("mark %q in boot %q: kept %v, want %v", tc.mark, tc.boot, got, tc.keep)
		}
	}
}
