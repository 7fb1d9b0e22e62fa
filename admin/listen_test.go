package admin

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListenRefusesUnsafeDirs(t *testing.T) {
	tcs := []struct {
		name  string
		mode  os.FileMode
		owner int // -1: ours
		ok    bool
	}{
		{"private", 0o700, -1, true},
		{"readable by others", 0o755, -1, true},
		{"group writable", 0o770, -1, false},
		{"world writable", 0o777, -1, false},
		{"sticky like /tmp", 0o1777, -1, false},
		{"another user's", 0o700, 65534, false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("changing a directory's owner needs root")
				}
				if err := os.Chown(dir, tc.owner, tc.owner); err != nil {
					t.Fatal(err)
				}
			}
			ln, err := Listen(filepath.Join(dir, "s.sock"))
			if tc.ok != (err == nil) {
				t.Fatalf("Listen: %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrUnsafeDir) {
					t.Fatalf("error %v does not wrap ErrUnsafeDir", err)
				}
				return
			}
			ln.Close()
		})
	}
	t.Run("missing directory is created private", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new")
		ln, err := Listen(filepath.Join(dir, "s.sock"))
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("created %v %v, want mode 0700", fi.Mode(), err)
		}
	})
}

// TestListenNoModeWindow: the socket is 0600 from the moment it exists,
// not only after the chmod that follows bind.
func TestListenNoModeWindow(t *testing.T) {
	var atBind os.FileMode
	afterBind = func(path string) {
		if fi, err := os.Stat(path); err == nil {
			atBind = fi.Mode().Perm()
		}
	}
	t.Cleanup(func() { afterBind = func(string) {} })
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if atBind != 0o600 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode at bind %04o, after Listen %04o; want 0600 both", atBind, fi.Mode().Perm())
	}
}

func TestPeerAllowed(t *testing.T) {
	const self = 1000
	tcs := []struct {
		name string
		uid  uint32
		want bool
	}{
		{"same user", self, true},
		{"root", 0, true},
		{"another user", 1001, false},
		{"nobody", 65534, false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := peerAllowed(tc.uid, self); got != tc.want {
				t.Fatalf("peerAllowed(%d, %d) = %v, want %v", tc.uid, self, got, tc.want)
			}
		})
	}
}

// TestPeerListenerRefuses: the listener hands over connections from the
// server's own user and closes others unanswered. Another user is the
// server pretending to run as someone else when we are not root, or, as
// root, a client running as nobody (uid 65534) through python3, on a
// socket loosened to 0666 as if its mode had failed.
func TestPeerListenerRefuses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no SO_PEERCRED on this platform")
	}
	dir, err := os.MkdirTemp("", "admin-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // reachable by nobody, still safe for Listen
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pl := ln.(*peerListener)
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()

	// Our own user: handed over.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case got := <-conns:
		got.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection from the server's own user was not accepted")
	}

	// Another user: closed, never handed over.
	if os.Geteuid() != 0 {
		pl.self = uint32(os.Geteuid()) + 4242
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var b [1]byte
		if _, err := c.Read(b[:]); !errors.Is(err, io.EOF) {
			t.Fatalf("read from a refused connection: %v, want EOF", err)
		}
	} else {
		// A system python: one under root's home (pyenv) is not nobody's to run.
		py := "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			t.Skip("needs /usr/bin/python3 to connect as another user")
		}
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(py, "-c", `import socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
try:
    s.sendall(b"GET /ping HTTP/1.0\r\n\r\n"); print("closed" if s.recv(1) == b"" else "answered")
except (BrokenPipeError, ConnectionResetError):
    print("closed")`, sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "closed" {
			t.Fatalf("client as nobody: %v, output %q; want the connection closed unanswered", err, out)
		}
	}
	ln.Close()
	for got := range conns {
		got.Close()
		t.Fatal("a connection from another user was accepted")
	}
}
