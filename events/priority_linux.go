package events

import (
	"runtime"
	"syscall"
)

// ioprioIdle is the idle I/O scheduling class, as ioprio_set(2) takes it:
// class 3, shifted past the 13 bits of level.
const ioprioIdle = 3 << 13

// idleIOPriority runs the calling goroutine on a thread of its own
// whose disk I/O (the checkpoint's writes and fsyncs) waits for everyone
// else's: the idle I/O class. Its CPU priority is left alone: a thread at
// a low CPU priority that runs Go code would hold up every goroutine
// waiting for the processor it holds. The thread ends with the goroutine.
func idleIOPriority() error {
	runtime.LockOSThread()
	_, _, errno := syscall.Syscall(syscall.SYS_IOPRIO_SET, 1 /* IOPRIO_WHO_PROCESS */, uintptr(syscall.Gettid()), ioprioIdle)
	if errno != 0 {
		return errno
	}
	return nil
}
