//go:build !linux

package events

// lowerThreadPriority does nothing where threads have no priority of their
// own: the background work runs as any other.
func lowerThreadPriority() error { return nil }
