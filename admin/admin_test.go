package admin

import (
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func newTestAdmin(t *testing.T) (*Client, *storage.DB, *int) {
	return newTestAdminWith(t, nil)
}

// newTestAdminWith serves an admin API over a fresh database on a unix
// socket; configure, if set, adjusts the server before it serves.
func newTestAdminWith(t *testing.T, configure func(*Server)) (*Client, *storage.DB, *int) {
	t.Helper()
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	srv := NewServer(db, func() error { reloads++; return nil }, nil)
	if configure != nil {
		configure(srv)
	}
	sock := filepath.Join(dir, "s.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); hs.Close(); <-done; db.Close() })
	return c, db, &reloads
}

func TestAdminAppsAndRotation(t *testing.T) {
	c, db, reloads := newTestAdmin(t)
	a := storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}
	if err := c.CreateApp(a); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateApp(a); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := c.App("nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing app: %v", err)
	}
	a.EnableClientMessages = true
	if err := c.PutApp(a); err != nil {
		t.Fatal(err)
	}
	got, err := db.App("a1")
	if err != nil || !got.EnableClientMessages {
		t.Fatalf("update not stored: %+v %v", got, err)
	}
	r, err := c.RotateSecret("a1", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r.Secret == "s1" || len(r.Secret) != 40 || r.PreviousSecret != "s1" || time.Until(r.PreviousSecretExpiresAt) < 59*time.Minute {
		t.Fatalf("rotation %+v", r)
	}
	if err := c.DeleteApp("a1"); err != nil {
		t.Fatal(err)
	}
	if *reloads != 4 {
		t.Fatalf("server reloaded %d times, want 4", *reloads)
	}
	entries, err := c.Audit(storage.AuditFilter{App: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	want := []string{"app_deleted", "secret_rotated", "app_updated", "app_created"}
	if len(actions) != len(want) {
		t.Fatalf("audit %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit %v, want %v", actions, want)
		}
	}
}

func TestDialWithoutServer(t *testing.T) {
	if _, err := Dial(filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, ErrNoServer) {
		t.Fatalf("got %v", err)
	}
}

func TestListenRefusesLiveSocketAndReplacesStale(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "x.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(sock); err == nil {
		t.Fatal("a live socket was replaced")
	}
	ln.Close()
	// net.UnixListener removes its file on Close; recreate a stale file.
	ln2, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ln2.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln2.Close()
	ln3, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln3.Close()
}

func TestAdminValidate(t *testing.T) {
	c, db, _ := newTestAdminWith(t, func(srv *Server) {
		srv.Validate = func(a storage.App) error {
			if a.Key == "bad" {
				return errors.New("key is bad")
			}
			return nil
		}
	})
	if err := c.CreateApp(storage.App{ID: "x", Key: "bad", Secret: "s"}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("invalid app accepted: %v", err)
	}
	if _, err := db.App("x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("an invalid app was stored")
	}
	if err := c.CreateApp(storage.App{ID: "x", Key: "good", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := c.PutApp(storage.App{ID: "x", Key: "bad", Secret: "s"}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("invalid update accepted: %v", err)
	}
}

type fakeDead struct {
	app string
	ids []uint64
}

func (f *fakeDead) DeadLetters(app string, limit int) ([]storage.DeadLetter, error) {
	return []storage.DeadLetter{{ID: 7, App: app, URL: "https://x.test"}}, nil
}

func (f *fakeDead) Replay(app string, ids []uint64) (int, int, error) {
	f.app, f.ids = app, ids
	return len(ids), 1, nil
}

func TestAdminDeadLetters(t *testing.T) {
	fake := &fakeDead{}
	c, db, _ := newTestAdminWith(t, func(srv *Server) { srv.DeadLetters = fake })
	dead, err := c.DeadLetters("a1", 0)
	if err != nil || len(dead) != 1 || dead[0].App != "a1" {
		t.Fatalf("dead letters %+v %v", dead, err)
	}
	res, err := c.ReplayDeadLetters("a1", []uint64{7, 8})
	if err != nil || res.Replayed != 2 || res.Skipped != 1 || fake.app != "a1" || len(fake.ids) != 2 {
		t.Fatalf("replay %+v %v (%+v)", res, err, fake)
	}
	entries, _ := db.Audit(storage.AuditFilter{Action: "dead_letters_replayed"})
	if len(entries) != 1 {
		t.Fatalf("replay not audited: %+v", entries)
	}
}
