package cli

import (
	"net/http"
	"testing"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/storage"
)

// TestAppsThroughAdminSocket runs the apps commands against a running
// server's admin socket, which sends secrets only in the answers of create
// and rotate: create still prints the secret once, update keeps it, and
// list and show have nothing to hide.
func TestAppsThroughAdminSocket(t *testing.T) {
	env := testEnv(t)
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := admin.Listen(env["SOCKUDO_DB_PATH"] + ".sock")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: admin.NewServer(db, nil, nil).Handler()}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done; db.Close() })

	const secret = "0123456789abcdef0123456789abcdef"
	r := runCLI(t, env, "apps", "create", "--id", "42", "--key", "key42", "--secret", secret)
	if r.code != 0 || decodeApp(t, r.stdout).Secret != secret {
		t.Fatalf("create: exit %d, printed %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "apps", "update", "42", "--max-connections", "7"); r.code != 0 {
		t.Fatalf("update: exit %d %s", r.code, r.stderr)
	}
	stored, err := db.App("42")
	if err != nil || stored.Secret != secret || stored.MaxConnections != 7 {
		t.Fatalf("after update %+v %v", stored, err)
	}
	for _, args := range [][]string{{"apps", "list", "--json"}, {"apps", "show", "42"}} {
		if r := runCLI(t, env, args...); r.code != 0 {
			t.Fatalf("%v: exit %d %s", args, r.code, r.stderr)
		}
	}
	r = runCLI(t, env, "apps", "rotate-secret", "42", "--grace", "1h")
	if rotated := decodeApp(t, r.stdout); r.code != 0 || rotated.Secret == "" || rotated.Secret == secret {
		t.Fatalf("rotate: exit %d, printed %s %s", r.code, r.stdout, r.stderr)
	}
}
