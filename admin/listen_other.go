//go:build !unix

package admin

import (
	"io/fs"
	"net"
)

// listenPrivate binds a unix socket at path; without a umask, Listen's
// chmod sets its mode.
func listenPrivate(path string) (net.Listener, error) { return net.Listen("unix", path) }

// ownerUID reports no owner: file ownership is not a uid here.
func ownerUID(fs.FileInfo) (uint32, bool) { return 0, false }
