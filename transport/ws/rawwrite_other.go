//go:build !unix

package ws

// rawWrite writes nothing where a socket cannot be written through its
// descriptor: the flusher then hands every write to the connection's own
// writer (conn.write), which uses net.Conn.Write.
func (f *flusher) rawWrite(uintptr) bool {
	f.wn, f.werr = 0, nil
	return true
}
