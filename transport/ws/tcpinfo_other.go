//go:build !linux

package ws

import "time"

// peerTaking reports false: this system's TCP state is not read.
func (c *conn) peerTaking(time.Duration) bool { return false }
