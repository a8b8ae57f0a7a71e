//go:build !linux

package main

import (
	"io"
	"os"
)

// isTerminal says whether w is a terminal, where a bar redrawn in place
// reads as one line; in a file or a pipe it would be hundreds. Here a
// character device is taken for one (/dev/null too).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
