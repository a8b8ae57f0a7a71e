package js_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/transport/js"
)

// A realtime.js that ran and then vanishes, or is emptied, as a deploy or
// an editor does for a moment while writing it, keeps its hooks for
// VanishGrace rather than let every subscribe in; a new file applies at
// once; and one gone (or empty) past the grace is taken as it is.
func TestAHookFileGoneForAMomentKeepsItsHooks(t *testing.T) {
	const grace = 600 * time.Millisecond
	const closed = `exports.onSubscribe = (client, channel) => channel !== "staff";`
	for _, how := range []string{"removed", "emptied"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, map[string]string{"a/api/realtime.js": closed}, js.Config{VanishGrace: grace})
			ctx := context.Background()
			c := domain.Client{ID: "c1", App: "a"}
			subscribe := func() error { return e.eng.OnSubscribe(ctx, c, "staff") }
			if err := subscribe(); domain.CodeOf(err) != domain.CodeNotAllowed {
				t.Fatalf("with the hook: %v", err)
			}
			path := filepath.Join(e.dir, "a", "api", "realtime.js")
			vanish := func() {
				t.Helper()
				if how == "removed" {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			vanish()
			gone := time.Now()
			if err := subscribe(); domain.CodeOf(err) != domain.CodeNotAllowed {
				t.Fatalf("just after the file was %s: %v", how, err)
			}
			if !strings.Contains(e.logs.String(), "js script gone or empty") {
				t.Fatalf("nothing logged:\n%s", e.logs.String())
			}
			// Written again within the grace: the new file applies at once.
			e.write("a/api/realtime.js", `exports.onSubscribe = () => "open now";`)
			if err := subscribe(); err != nil {
				t.Fatalf("after the file came back: %v", err)
			}
			e.write("a/api/realtime.js", closed)
			if err := subscribe(); domain.CodeOf(err) != domain.CodeNotAllowed {
				t.Fatalf("closed again: %v", err)
			}
			// Gone for longer than the grace: taken as gone (or empty),
			// and an app without hooks allows.
			vanish()
			gone = time.Now()
			for {
				err := subscribe()
				if err == nil {
					if since := time.Since(gone); since < grace {
						t.Fatalf("allowed %v after the file was %s, within the grace of %v", since, how, grace)
					}
					break
				}
				if domain.CodeOf(err) != domain.CodeNotAllowed {
					t.Fatalf("within the grace: %v", err)
				}
				if time.Since(gone) > grace+10*time.Second {
					t.Fatalf("still refused %v after the file was %s", time.Since(gone), how)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
