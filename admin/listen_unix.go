//go:build unix

package admin

import (
	"io/fs"
	"net"
	"sync"
	"syscall"
)

// umaskMu serialises Listen's umask change: the umask is per process.
var umaskMu sync.Mutex

// listenPrivate binds a unix socket at path under a umask of 0177, so the
// socket file is created with mode 0600. Files other goroutines create
// meanwhile come out at most that open too, never more.
func listenPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// ownerUID is the owner of the file fi describes.
func ownerUID(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
