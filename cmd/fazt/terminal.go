package main

import (
	"io"
	"os"
)

// isTerminal says whether w is a terminal, where a bar redrawn in place
// reads as one line; in a file or a pipe it would be hundreds.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && fileIsTerminal(f)
}
