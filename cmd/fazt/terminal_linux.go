package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// fileIsTerminal asks for f's terminal settings, which only a terminal
// has.
func fileIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
