//go:build !linux

package admin

import (
	"errors"
	"net"
)

// errNoPeerCred means the platform cannot tell who is on the other end of
// a unix socket: the standard library reads SO_PEERCRED only on Linux
// (BSDs and macOS have getpeereid, which needs golang.org/x/sys). There the
// socket's mode and private directory are the only guard.
var errNoPeerCred = errors.New("admin: peer credentials are not available on this platform")

func peerUID(*net.UnixConn) (uint32, error) { return 0, errNoPeerCred }
