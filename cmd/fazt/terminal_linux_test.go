package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The bar of --progress auto is drawn on a terminal only: in a file or a
// pipe (a cron job's log) each redraw would be a line of its own.
func TestProgressAutoIsForTerminals(t *testing.T) {
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0) // a pseudo-terminal's side
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer tty.Close()
	if !isTerminal(tty) {
		t.Errorf("a pseudo-terminal not taken for a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "rebuild.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"a file": f, "/dev/null": null, "a pipe": w, "a buffer": &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}
