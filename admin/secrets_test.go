package admin

import (
	"errors"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// TestAdminSecretsOnlyOnCreateAndRotate: listing or reading apps shows no
// secret, a PUT without one keeps the stored secrets, and rotation still
// answers with the new secret.
func TestAdminSecretsOnlyOnCreateAndRotate(t *testing.T) {
	c, db, _ := newTestAdmin(t)
	if err := c.CreateApp(storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	r, err := c.RotateSecret("a1", "s2", time.Hour)
	if err != nil || r.Secret != "s2" || r.PreviousSecret != "s1" {
		t.Fatalf("rotate answered %+v %v", r, err)
	}
	list, err := c.Apps()
	if err != nil || len(list) != 1 {
		t.Fatalf("apps %+v %v", list, err)
	}
	one, err := c.App("a1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []storage.App{list[0], one} {
		if a.Secret != "" || a.PreviousSecret != "" || a.Key != "k1" || a.PreviousSecretExpiresAt.IsZero() {
			t.Fatalf("read an app with secrets or without its other fields: %+v", a)
		}
	}
	// Read, change, write back: the secrets stay.
	one.MaxConnections = 5
	if err := c.PutApp(one); err != nil {
		t.Fatal(err)
	}
	stored, err := db.App("a1")
	if err != nil || stored.Secret != "s2" || stored.PreviousSecret != "s1" || stored.MaxConnections != 5 {
		t.Fatalf("stored %+v %v", stored, err)
	}
	// A PUT with a secret still sets it.
	one.Secret = "s3"
	if err := c.PutApp(one); err != nil {
		t.Fatal(err)
	}
	if stored, _ := db.App("a1"); stored.Secret != "s3" {
		t.Fatalf("secret not set by PUT: %+v", stored)
	}
}

// TestAdminBeamsKey: the key is shown once by beams-key (without the app
// secret), hidden from reads, kept by a PUT that tries to change it, and
// rotation keeps the old key for the grace period.
func TestAdminBeamsKey(t *testing.T) {
	c, db, reloads := newTestAdmin(t)
	if err := c.CreateApp(storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	g, err := c.BeamsKey("a1", "generate", 0)
	if err != nil || len(g.BeamsSecretKey) != 64 || g.Secret != "" {
		t.Fatalf("generate answered %+v %v", g, err)
	}
	if *reloads == 0 {
		t.Fatal("the running server was not told")
	}
	one, err := c.App("a1")
	if err != nil || one.BeamsSecretKey != "" {
		t.Fatalf("read an app with its Beams key: %+v %v", one, err)
	}
	one.BeamsSecretKey = "chosen-by-put"
	if err := c.PutApp(one); err != nil {
		t.Fatal(err)
	}
	if stored, _ := db.App("a1"); stored.BeamsSecretKey != g.BeamsSecretKey {
		t.Fatalf("a PUT changed the Beams key: %q", stored.BeamsSecretKey)
	}
	r, err := c.BeamsKey("a1", "rotate", time.Hour)
	if err != nil || r.BeamsSecretKey == g.BeamsSecretKey || r.PreviousBeamsSecretKey != g.BeamsSecretKey {
		t.Fatalf("rotate answered %+v %v", r, err)
	}
	if _, err := c.BeamsKey("a1", "generate", 0); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("generate over a key: %v", err)
	}
	if _, err := c.BeamsKey("a1", "rotate", -time.Hour); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("negative grace: %v", err)
	}
	if _, err := c.BeamsKey("nope", "generate", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
	if _, err := c.BeamsKey("a1", "revoke", 0); err != nil {
		t.Fatal(err)
	}
	if stored, _ := db.App("a1"); stored.BeamsKeys(time.Now()) != nil {
		t.Fatalf("revoked key still valid: %+v", stored)
	}
}
