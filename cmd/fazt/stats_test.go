package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStatsCLI(t *testing.T) {
	tn, _, _ := auditScenario(t)
	out := mustCLI(t, "stats", "--db", tn.cfg.DBPath)
	for _, want := range []string{"events    13 (seq 1 to 13)", "channels  3", "messages  3 retained, oldest 20", "kicked        1      8"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lacks %q:\n%s", want, out)
		}
	}
	st := jsonLines(t, mustCLI(t, "stats", "--db", tn.cfg.DBPath, "--app", "chat", "--json"))[0]
	if st["events"] != float64(10) || st["messages"] != float64(2) || st["file_bytes"].(float64) <= 0 {
		t.Errorf("stats of chat: %v", st)
	}
	kinds := map[string]float64{}
	for _, k := range st["kinds"].([]any) {
		k := k.(map[string]any)
		kinds[k["type"].(string)] = k["count"].(float64)
	}
	if kinds["client.connected.v1"] != 2 || kinds["client.kicked.v1"] != 1 || kinds["message.broadcast.v1"] != 2 {
		t.Errorf("stats kinds: %v", kinds)
	}
}

// TestCLIDatabaseErrors checks that every reading command fails with one
// clear line, and a non-zero exit, on a missing, foreign or locked file.
func TestCLIDatabaseErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.db")
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not sqlite ", 1000)), 0o644)
	empty := filepath.Join(dir, "empty.db")
	raw := openRaw(t, empty)
	mustExec(t, raw, `CREATE TABLE other (x)`)

	commands := [][]string{
		{"history", "--channel", "room"},
		{"history", "--channel", "room", "--last", "0"}, // the newest none, of a file that is there
		{"audit"},
		{"members", "--channel", "room"},
		{"stats"},
		{"rebuild"},
	}
	for _, tc := range []struct {
		db, want string
	}{
		{missing, "does not exist"},
		{garbage, "is not a fazt database"},
		{empty, "is not a fazt database"},
	} {
		for _, c := range commands {
			_, _, err := cli(t, append(c, "--db", tc.db)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("fazt %s on %s: %v, want one line with %q", c[0], filepath.Base(tc.db), err, tc.want)
			}
		}
	}

	// A file of an older schema, as a server before schema 5 left it, and
	// one of a newer schema: refused, in one line that names the file once.
	old := startTestNode(t, nil)
	old.publish("", "room", 1)
	old.stop()
	older := old.cfg.DBPath
	newer := filepath.Join(dir, "newer.db")
	raw = openRaw(t, older)
	mustExec(t, raw, `VACUUM main INTO ?`, newer)
	mustExec(t, raw, `DROP TABLE trimmed_broadcasts`)
	mustExec(t, raw, `DROP INDEX events_app_channel`)
	mustExec(t, raw, `CREATE INDEX events_app_channel ON events (app, channel, seq) WHERE channel <> ''`)
	mustExec(t, raw, `DELETE FROM schema_migrations WHERE version = 5`)
	raw = openRaw(t, newer)
	mustExec(t, raw, `INSERT INTO schema_migrations (version, name, applied) VALUES (1000, 'from a newer fazt', 0)`)
	for _, tc := range []struct {
		db, want string
	}{
		{older, "database " + older + ": schema version 4 is older than this fazt's"},
		{newer, "database " + newer + ": schema version 1000 is newer than this fazt's"},
	} {
		for _, c := range commands {
			_, _, err := cli(t, append(c, "--db", tc.db)...)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Count(err.Error(), tc.db) != 1 || strings.Contains(err.Error(), "\n") {
				t.Errorf("fazt %s on %s: %v, want one line starting %q", c[0], filepath.Base(tc.db), err, tc.want)
			}
		}
	}

	// A database another process holds an exclusive lock on: the reader
	// waits out SQLite's busy timeout, then says so.
	tn := startTestNode(t, nil)
	tn.publish("", "room", 1)
	tn.stop()
	locker := openRaw(t, tn.cfg.DBPath)
	locker.SetMaxOpenConns(1)
	mustExec(t, locker, `PRAGMA locking_mode = EXCLUSIVE`)
	mustExec(t, locker, `INSERT INTO settings (key, value) VALUES ('lock', 'held')`)
	_, _, err := cli(t, "stats", "--db", tn.cfg.DBPath)
	if err == nil || !strings.Contains(err.Error(), "is locked by another process") || strings.Contains(err.Error(), "\n") {
		t.Errorf("stats on a locked database: %v", err)
	}
}
