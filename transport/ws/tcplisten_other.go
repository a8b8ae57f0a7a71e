//go:build !linux

package ws

import "net"

// listenConfig leaves keep-alive to net, which sets it on each
// connection accepted.
func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{}
}
