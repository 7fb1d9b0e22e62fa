//go:build !linux

package server

// directWriteSupported: elsewhere every socket flushes from a goroutine of
// its own (conn.flush); the flushers never start.
const directWriteSupported = false

// rawWrite is unused here.
type rawWrite struct {
	frames [][]byte
	n      int
}

func (w *rawWrite) prepare(frames [][]byte) { w.frames, w.n = frames, 0 }
func (w *rawWrite) blocked() bool           { return false }
func (w *rawWrite) write(uintptr) bool      { return true }
