package admin

import (
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
