package js

import (
	"io/fs"
	"syscall"
)

// changeOf returns fi's status change time (unix ns) and inode.
func changeOf(fi fs.FileInfo) (change int64, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano(), st.Ino
	}
	return 0, 0
}
