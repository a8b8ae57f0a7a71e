package js_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/js"
)

// An edit that keeps the file's size and modification time, as a deploy
// by rsync -a or cp -p may (here "staff-" became "admin-"), applies at
// the next run: the file's status change time says it changed.
func TestAnEditThatKeepsSizeAndTimeApplies(t *testing.T) {
	e := newEnv(t, map[string]string{"a/api/realtime.js": `exports.onSubscribe = (c, ch) => !ch.startsWith("staff-");`}, js.Config{})
	ctx := context.Background()
	c := domain.Client{ID: "c1", App: "a"}
	if err := e.eng.OnSubscribe(ctx, c, "staff-room"); domain.CodeOf(err) != domain.CodeNotAllowed {
		t.Fatalf("before the edit: %v", err)
	}
	path := filepath.Join(e.dir, "a", "api", "realtime.js")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	e.write("a/api/realtime.js", `exports.onSubscribe = (c, ch) => !ch.startsWith("admin-");`)
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(path); err != nil || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("the edit changed the size or time: %v", err)
	}
	if err := e.eng.OnSubscribe(ctx, c, "staff-room"); err != nil {
		t.Fatalf("after the edit: %v", err)
	}
	if err := e.eng.OnSubscribe(ctx, c, "admin-room"); domain.CodeOf(err) != domain.CodeNotAllowed {
		t.Fatalf("after the edit, the new rule: %v", err)
	}
}
