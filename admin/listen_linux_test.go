package admin

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestPeerUID reads the real SO_PEERCRED of a connection: ours.
func TestPeerUID(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	uid, err := peerUID(srv.(*net.UnixConn))
	if err != nil || uid != uint32(os.Geteuid()) {
		t.Fatalf("peerUID = %d, %v; want %d", uid, err, os.Geteuid())
	}
}
