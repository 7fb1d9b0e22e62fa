package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Listen opens the admin socket at path for this process's user. The
// socket's directory must be private: it is created (mode 0700) when
// missing, and refused when it is writable by group or others or owned by
// another user, since whoever can write there can replace the socket. The
// socket is created with mode 0600 under a umask of 0177, so it is never
// more open, not even between bind and chmod, and connections from other
// users than ours and root are closed unanswered (see peerAllowed); on
// systems without SO_PEERCRED the mode and the directory are the only
// guard. A stale socket file left by a crashed process is replaced.
func Listen(path string) (net.Listener, error) {
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: %s is in use by another process", path)
		}
		_ = os.Remove(path)
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	afterBind(path)
	// Redundant with the umask where it applies; kept for systems where
	// the socket's mode does not follow it.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: chmod %s: %w", path, err)
	}
	return &peerListener{UnixListener: ln.(*net.UnixListener), self: uint32(os.Geteuid())}, nil
}

// afterBind runs between bind and chmod; tests look at the socket's mode
// there.
var afterBind = func(string) {}

// ErrUnsafeDir is wrapped by Listen's error when the socket's directory is
// not private to this user.
var ErrUnsafeDir = errors.New("admin: the admin socket's directory is not private")

// privateDir checks that dir is a directory owned by us that neither group
// nor others can write, creating it with mode 0700 when it is missing.
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("admin: create %s: %w", dir, err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return checkPrivate(dir, fi)
}

// CheckSocketDir reports whether Listen would accept the directory of the
// socket at path, without creating anything: nil when the directory is
// private or missing (Listen creates it, mode 0700), else an error
// wrapping ErrUnsafeDir that says what to change. "sockudo doctor" uses
// it.
func CheckSocketDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return checkPrivate(dir, fi)
}

// checkPrivate checks that dir (fi) is a directory owned by us that
// neither group nor others can write.
func checkPrivate(dir string, fi fs.FileInfo) error {
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o); use a directory only sockudo's user "+
			"can write (chmod go-w, or SOCKUDO_ADMIN_SOCKET elsewhere)", ErrUnsafeDir, dir, fi.Mode().Perm())
	}
	if uid, ok := ownerUID(fi); ok && uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%w: %s belongs to uid %d, not to this process's uid %d", ErrUnsafeDir, dir, uid, os.Geteuid())
	}
	return nil
}

// peerAllowed decides whether a connection from a process running as uid
// may use the admin socket of a server running as self: the same user,
// or root, which can read the database and the server's memory anyway.
func peerAllowed(uid, self uint32) bool { return uid == self || uid == 0 }

// peerListener closes connections from users peerAllowed refuses before
// the HTTP server sees them.
type peerListener struct {
	*net.UnixListener
	self     uint32
	log      atomic.Pointer[slog.Logger]
	warnedAt atomic.Int64 // unix nanoseconds of the last refusal warning
}

// Accept returns the next connection from an allowed user.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c.(*net.UnixConn))
		if errors.Is(err, errNoPeerCred) || err == nil && peerAllowed(uid, l.self) {
			return c, nil
		}
		c.Close()
		l.refused(uid, err)
	}
}

// refused logs a refused connection, at most once per 10 s so that a local
// user cannot flood the log.
func (l *peerListener) refused(uid uint32, err error) {
	log := l.log.Load()
	if log == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.warnedAt.Load()
	if now-last < int64(10*time.Second) || !l.warnedAt.CompareAndSwap(last, now) {
		return
	}
	if err != nil {
		log.Warn("admin socket: connection refused: peer credentials unreadable", "err", err)
		return
	}
	log.Warn("admin socket: connection from another user refused", "uid", uid, "server_uid", l.self)
}

// SetLog makes ln, a listener from Listen, warn about refused connections
// on log.
func SetLog(ln net.Listener, log *slog.Logger) {
	if l, ok := ln.(*peerListener); ok && log != nil {
		l.log.Store(log)
	}
}
