package js

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// versionOf makes a version of app folder dir's main.js as it is now.
func versionOf(t *testing.T, dir string) *version {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(MainFile)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := newVersion("a", dir, MainFile, stampOf(fi), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.root.Close() })
	return v
}

// routesVersion makes an app folder with a main.js and an empty
// api/routes, and a version of it.
func routesVersion(t *testing.T) (string, *version) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "api", "routes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(MainFile)), []byte(`module.exports = 1;`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, versionOf(t, dir)
}

// TestFreshSeesAFolderSwappedUnderItsName replaces an app folder by
// another with the same files, the same sizes and the same times, as a
// deploy that renames a release into place does: the version, whose root
// is on the old folder, is no longer fresh. An edit to a file is seen too.
func TestFreshSeesAFolderSwappedUnderItsName(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a")
	mtime := time.Unix(1700000000, 0)
	write := func(dir, body string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(MainFile))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(dir, `module.exports = () => 1;`)
	v := versionOf(t, dir)
	if !v.fresh() {
		t.Fatal("a version just made is not fresh")
	}

	// The same file, size and time, in a new folder renamed into place.
	next := filepath.Join(base, "a.next")
	write(next, `module.exports = () => 2;`)
	if err := os.Rename(dir, filepath.Join(base, "a.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	if v.fresh() {
		t.Fatal("the app folder was swapped, and the version still counts as fresh")
	}

	// In place, an edit changes the stamp.
	w := versionOf(t, dir)
	if !w.fresh() {
		t.Fatal("a version of the new folder is not fresh")
	}
	write(dir, `module.exports = () => 33;`)
	if w.fresh() {
		t.Fatal("main.js grew by a byte, and the version still counts as fresh")
	}
}

// TestFreshRetriesAFileItCouldNotRead fails a load on a required file that
// is a symlink out of the app folder: replacing it with a real file may
// keep its size and time, so the failed version is tried again once it is
// a second old. A working version is not.
func TestFreshRetriesAFileItCouldNotRead(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a")
	if err := os.MkdirAll(filepath.Join(dir, "api", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		filepath.Join(dir, filepath.FromSlash(MainFile)): `module.exports = require("./lib/x");`,
		filepath.Join(base, "outside.js"):                `module.exports = 1;`,
	} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(base, "outside.js"), filepath.Join(dir, "api", "lib", "x.js")); err != nil {
		t.Fatal(err)
	}
	v := versionOf(t, dir)
	if _, err := v.load("api/lib/x.js"); err == nil || !strings.Contains(err.Error(), "outside the app folder") {
		t.Fatalf("loading a symlink out of the folder: %v", err)
	}
	if !v.fresh() {
		t.Fatal("a working version retries the file at once")
	}
	v.made = time.Now().Add(-2 * retryUnreadable)
	if !v.fresh() {
		t.Fatal("a working version retries the file it could not read")
	}
	v.fail(errors.New("load failed"))
	v.made = time.Now()
	if !v.fresh() {
		t.Fatal("a version that just failed is tried again at once")
	}
	v.made = time.Now().Add(-2 * retryUnreadable)
	if v.fresh() {
		t.Fatal("a version that failed on a file it could not read is never tried again")
	}
}

// TestFreshSeesFilesThatCameLater: a file that require() did not find,
// then found (a route's module written after the script loaded) is
// watched from then on, so that its edits are seen; and a working
// version looks for the files it did not find once a second, so that an
// optional require() at load sees its file appear. Before, such a file
// stayed "missing", which a working version never looked at.
func TestFreshSeesFilesThatCameLater(t *testing.T) {
	dir, v := routesVersion(t)
	route := filepath.Join(dir, "api", "routes", "x.js")
	if _, err := v.load("api/routes/x.js"); err == nil {
		t.Fatal("loaded a file that is not there")
	}
	if err := os.WriteFile(route, []byte(`module.exports = "one";`), 0o644); err != nil {
		t.Fatal(err)
	}
	v.absentChecked.Store(time.Now().UnixNano())
	if !v.fresh() {
		t.Fatal("a working version looked for its missing files twice in a second")
	}
	v.absentChecked.Store(time.Now().Add(-2 * time.Second).UnixNano())
	if v.fresh() {
		t.Fatal("the file that appeared is not seen")
	}
	// Asked for again, it is read: from then on it is a file like any.
	if _, err := v.load("api/routes/x.js"); err != nil {
		t.Fatal(err)
	}
	v.absentChecked.Store(time.Now().UnixNano())
	if !v.fresh() {
		t.Fatal("not fresh after reading the file")
	}
	if err := os.WriteFile(route, []byte(`module.exports = "two, longer";`), 0o644); err != nil {
		t.Fatal(err)
	}
	if v.fresh() {
		t.Fatal("an edit of the file is not seen")
	}
}

// TestFreshWatchesForABoundedNumberOfAbsentFiles: a script that requires
// by names from its requests notes at most maxAbsent files it did not
// find; one that it then finds and reads frees its place, and files it
// reads are noted whatever the count.
func TestFreshWatchesForABoundedNumberOfAbsentFiles(t *testing.T) {
	dir, v := routesVersion(t)
	count := func() (absent, read int) {
		for _, st := range *v.deps.Load() {
			if st == missing || st == unreadable {
				absent++
			} else {
				read++
			}
		}
		return absent, read
	}
	_, read0 := count()
	for i := 0; i < 2*maxAbsent; i++ {
		v.load(fmt.Sprintf("api/routes/r%d.js", i))
	}
	if absent, _ := count(); absent != maxAbsent {
		t.Fatalf("%d absent files noted, want %d", absent, maxAbsent)
	}
	// One of those noted appears and is read: its place is free again.
	if err := os.WriteFile(filepath.Join(dir, "api", "routes", "r0.js"), []byte(`module.exports = 0;`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.load("api/routes/r0.js"); err != nil {
		t.Fatal(err)
	}
	if absent, read := count(); absent != maxAbsent-1 || read != read0+1 {
		t.Fatalf("after a read: %d absent, %d read", absent, read)
	}
	v.load("api/routes/another.js")
	if absent, _ := count(); absent != maxAbsent {
		t.Fatalf("a new absent file in the freed place: %d absent", absent)
	}
}
