//go:build linux

package server

import (
	"syscall"
	"unsafe"
)

// directWriteSupported: the flushers write sockets with writev(2) here.
const directWriteSupported = true

// iovMax is the most buffers one writev(2) takes (IOV_MAX).
const iovMax = 1024

// rawWrite is one non-blocking write of a socket's frames, run by
// syscall.RawConn.Write inside the socket's write lock (so its descriptor
// cannot be closed and reused meanwhile). Its write never asks to wait.
// Owned by one flushWorker.
type rawWrite struct {
	frames [][]byte
	n      int           // bytes written
	errno  syscall.Errno // EAGAIN when the send buffer filled up
	used   int           // iovecs holding pointers, cleared after the write
	iov    [iovMax]syscall.Iovec
}

func (w *rawWrite) prepare(frames [][]byte) {
	w.frames, w.n, w.errno = frames, 0, 0
}

// blocked reports whether the write stopped because the socket's send
// buffer is full.
func (w *rawWrite) blocked() bool { return w.errno == syscall.EAGAIN }

// write writes w.frames to fd with as few writev(2) calls as IOV_MAX
// allows. A short write means the send buffer is full: it stops there as
// if the next call had answered EAGAIN, saving that call. Always true:
// RawConn.Write must not wait on the poller.
func (w *rawWrite) write(fd uintptr) bool {
	frames := w.frames
	for len(frames) > 0 {
		k, cnt, want := 0, 0, 0
		for ; k < len(frames) && cnt < len(w.iov); k++ {
			if b := frames[k]; len(b) > 0 {
				w.iov[cnt].Base = &b[0]
				w.iov[cnt].SetLen(len(b))
				cnt++
				want += len(b)
			}
		}
		w.used = max(w.used, cnt)
		if cnt == 0 {
			break
		}
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(cnt))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			w.errno = e
			break
		}
		w.n += int(r)
		if int(r) < want {
			w.errno = syscall.EAGAIN
			break
		}
		frames = frames[k:]
	}
	clear(w.iov[:w.used]) // keep no frame alive
	w.used = 0
	return true
}
