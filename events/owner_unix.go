//go:build unix

package events

import (
	"fmt"
	"os"
	"syscall"
)

// sameOwner gives the file at path the owner and group of like, when
// they differ (a restore run as root, of a service user's database).
func sameOwner(path string, like os.FileInfo) error {
	want, ok := like.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if have, ok := st.Sys().(*syscall.Stat_t); ok && have.Uid == want.Uid && have.Gid == want.Gid {
		return nil
	}
	if err := os.Chown(path, int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("give the copy the owner of the file it replaces (%d:%d): %w", want.Uid, want.Gid, err)
	}
	return nil
}
