//go:build !unix

package ws

// rawWrites: a socket cannot be written through its descriptor here, so
// connections get no flusher; each writes through its own writer
// (conn.write), with net.Conn.Write.
const rawWrites = false

// rawWrite is never called: no connection has a flusher.
func (f *flusher) rawWrite(uintptr) {
	f.wn, f.werr = 0, nil
}
