package events

import (
	"runtime"
	"syscall"
)

// lowerThreadPriority runs the calling goroutine on a thread of its own, at
// the lowest scheduling priority (nice 19), for background work that must
// not take the CPU from serving. The thread ends with the goroutine.
func lowerThreadPriority() error {
	runtime.LockOSThread()
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
}
