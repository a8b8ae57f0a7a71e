package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestBackupOfALiveServerServedAgain: fazt backup of a serving node's file,
// put in place by fazt restore (which refuses the file a server holds, and
// makes no database where none was unless told to), is served by another
// node as the history up to the backup. A client of
// the first node that saw offsets the copy does not hold, and resumes on
// the copy's node after that node has handed those offsets out again, is
// replayed the whole channel, as the copy's channels have new epochs;
// with --keep-epochs (to both), the same resume is given only what follows its
// offset, missing the messages the copy's node gave the offsets it had
// already seen.
func TestBackupOfALiveServerServedAgain(t *testing.T) {
	tn := startTestNode(t, nil)
	c := tn.dial("", "")
	c.subscribe(map[string]any{"channel": "room"})
	var epoch string
	for i := 1; i <= 3; i++ {
		epoch = tn.publish("", "room", i).Epoch
	}
	dir := t.TempDir()
	copies := map[bool]string{false: filepath.Join(dir, "new.db"), true: filepath.Join(dir, "kept.db")}
	for keep, path := range copies {
		args := []string{"backup", "--db", tn.cfg.DBPath, path}
		if keep {
			args = append(args, "--keep-epochs")
		}
		out := mustCLI(t, args...)
		if !strings.Contains(out, "5 events up to seq 5") {
			t.Fatalf("fazt %v: %q", args, out)
		}
	}
	if _, errs, err := cli(t, "backup", "--db", tn.cfg.DBPath, copies[false]); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a backup onto a file there: %v %s", err, errs)
	}
	// The client sees two more offsets than the copies hold.
	tn.publish("", "room", 4)
	tn.publish("", "room", 5)
	if got := offsets(c.messages("room", 5)); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("live on the first node: %v", got)
	}
	if runtime.GOOS == "linux" { // the only system with the writer's lock
		if _, _, err := cli(t, "restore", "--db", tn.cfg.DBPath, copies[false]); err == nil || !strings.Contains(err.Error(), "open for writing") {
			t.Fatalf("restore over the served database: %v", err)
		}
	}
	tn.stop()

	// Without --db or FAZT_DB, no database is made where none was.
	t.Chdir(t.TempDir()) // FAZT_DB is unset for every test (TestMain)
	if _, _, err := cli(t, "restore", copies[false]); err == nil || !strings.Contains(err.Error(), "give --db") {
		t.Fatalf("restore to the default database, which is not there: %v", err)
	}

	for keep, path := range copies {
		cfg := tn.cfg
		cfg.DBPath = filepath.Join(dir, fmt.Sprintf("served-%v.db", keep))
		args := []string{"restore", "--db", cfg.DBPath, path}
		if keep {
			args = append(args, "--keep-epochs")
		}
		if out := mustCLI(t, args...); !strings.Contains(out, "5 events up to seq 5") {
			t.Fatalf("fazt restore: %q", out)
		}
		restored := startOn(t, cfg)
		for i := 4; i <= 6; i++ {
			if p := restored.publish("", "room", i*10); p.Offset != uint64(i) || (p.Epoch == epoch) != keep {
				t.Fatalf("keep-epochs %v: published at offset %d in epoch %s, was %s", keep, p.Offset, p.Epoch, epoch)
			}
		}
		r := restored.dial("", "")
		sub := r.subscribe(map[string]any{"channel": "room", "offset": 5, "epoch": epoch})
		want := []uint64{1, 2, 3, 4, 5, 6}
		if keep {
			want = []uint64{6} // 4 and 5 of the copy's node are missed
		}
		if (sub["epoch_changed"] == true) == keep || sub.num("replay") != uint64(len(want)) {
			t.Fatalf("keep-epochs %v: subscribed %v", keep, sub)
		}
		got := r.messages("room", len(want))
		if !slices.Equal(offsets(got), want) || got[len(got)-1]["data"] != 60.0 {
			t.Fatalf("keep-epochs %v: replayed %v", keep, got)
		}
		// The first node's session, open in the copy, is ended by the
		// start on it, as after a crash.
		ends := restored.audit("", "type=disconnected").Events
		if len(ends) != 1 || !strings.Contains(fmt.Sprint(ends[0]), c.id) || !strings.Contains(fmt.Sprint(ends[0]), "server_restart") {
			t.Fatalf("keep-epochs %v: disconnections on the restored node: %v", keep, ends)
		}
		restored.stop()
	}
}
