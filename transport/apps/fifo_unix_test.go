//go:build unix

package apps

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fazt-realtime/fazt/domain"
)

// A FIFO named app.json (or a directory) is not read: opening a FIFO
// waits for a writer, and the registry's lock would stop every lookup of
// every app meanwhile. It is an app.json that cannot be read.
func TestAppJSONThatIsNotAFileIsRefused(t *testing.T) {
	r, dir, _, logs := chatRegistry(t)
	if err := syscall.Mkfifo(filepath.Join(dir, "chat", "app.json"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Lookup("chat"); done <- err }()
	select {
	case err := <-done:
		if domain.CodeOf(err) != domain.CodeUnavailable || !strings.Contains(logs.String(), "not a regular file") {
			t.Fatalf("a FIFO app.json: %v; want unavailable, and the log saying why:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lookup waited on a FIFO app.json")
	}
}
