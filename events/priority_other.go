//go:build !linux

package events

// idleIOPriority does nothing where threads have no I/O priority of their
// own: the checkpoints' I/O competes as any other.
func idleIOPriority() error { return nil }
