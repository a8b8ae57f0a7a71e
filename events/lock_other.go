//go:build !unix

package events

import "os"

// lockFile does nothing where flock(2) is missing: nothing stops a second
// writer of the same file there (see lock_unix.go).
func lockFile(path string) (*os.File, error) { return nil, nil }
