//go:build unix

package server

import (
	"io"
	"net"
	"os"
	"syscall"
)

// useRaw makes w read nc's socket through syscall.RawConn when nc is TCP.
// Deadlines and Close work as for nc.Read: RawConn.Read waits on the same
// poller and holds the same read lock.
func (w *wire) useRaw(nc net.Conn) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	w.raw, w.readFn = raw, w.rawRead
}

// rawRead is one read(2) into w.p; false means "would block: wait". It
// keeps its frame small: it is the deepest call of an idle socket's read
// goroutine.
func (w *wire) rawRead(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), w.p)
		if err == nil {
			w.n = n
			if n == 0 && len(w.p) > 0 {
				w.err = io.EOF
			}
			return true
		}
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if w.c.canDoze() { // nothing to read between messages: sleep
				w.quiet = true
				w.n, w.err = 0, errDozing
				return true
			}
			return false
		}
		w.n, w.err = 0, os.NewSyscallError("read", err)
		return true
	}
}
