package admin

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// errNoPeerCred means the platform cannot tell who is on the other end of
// a unix socket; Linux always can.
var errNoPeerCred = errors.New("admin: peer credentials are not available on this platform")

// peerUID is the uid of the process at the other end of c (SO_PEERCRED:
// its credentials when it connected, which it cannot forge).
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("admin: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("admin: peer credentials: %w", err)
	}
	if credErr != nil {
		return 0, fmt.Errorf("admin: peer credentials: %w", credErr)
	}
	return cred.Uid, nil
}
