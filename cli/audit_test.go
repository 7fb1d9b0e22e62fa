package cli

import (
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/storage"
)

// seedPushAudit writes n chained entries for each app into the database at
// env's path, and closes it.
func seedPushAudit(t *testing.T, env map[string]string, n int, apps ...string) {
	t.Helper()
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < n; i++ {
		for _, app := range apps {
			if _, err := db.AppendPushAudit([]storage.PushAuditEntry{{App: app, Actor: "operator:cli",
				Action: "credential.put", Target: "credential:apns/v1", Details: json.RawMessage(`{"provider":"apns"}`)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// tamperPushAudit rewrites app's entry id in the file with bbolt itself, as
// someone with the file would: the server's storage package is not
// involved.
func tamperPushAudit(t *testing.T, env map[string]string, app string, id uint64, from, to string) {
	t.Helper()
	bdb, err := bolt.Open(env["SOCKUDO_DB_PATH"], 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("push_audit"))
		k := binary.BigEndian.AppendUint64([]byte(app+"\x00"), id)
		v := string(b.Get(k))
		if !strings.Contains(v, from) {
			t.Fatalf("entry %s/%d has no %q: %s", app, id, from, v)
		}
		return b.Put(k, []byte(strings.Replace(v, from, to, 1)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerify(t *testing.T) {
	env := testEnv(t)
	seedPushAudit(t, env, 3, "a1", "a2")

	r := runCLI(t, env, "audit", "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "a1") || !strings.Contains(r.stdout, "a2") || r.stderr != "" {
		t.Fatalf("clean: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "audit", "verify", "--app", "a2", "--json")
	var reports []storage.PushAuditReport
	if err := json.Unmarshal([]byte(r.stdout), &reports); err != nil || r.code != 0 || len(reports) != 1 ||
		reports[0] != (storage.PushAuditReport{App: "a2", Entries: 3, OK: true}) {
		t.Fatalf("clean --json: exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	tamperPushAudit(t, env, "a1", 2, `"operator:cli"`, `"system"`)
	r = runCLI(t, env, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stderr, `app "a1": chain broken at entry 2`) || strings.Contains(r.stderr, "a2") {
		t.Fatalf("tampered: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "audit", "verify", "--app", "a2"); r.code != 0 {
		t.Fatalf("the untouched app: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "audit", "verify", "--app", "a1", "--json")
	reports = nil
	if err := json.Unmarshal([]byte(r.stdout), &reports); err != nil || r.code != 1 || len(reports) != 1 ||
		reports[0].OK || reports[0].FirstBad != 2 || reports[0].Problem == "" {
		t.Fatalf("tampered --json: exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	for _, args := range [][]string{{"audit", "verify", "extra"}, {"audit", "verify", "--bogus"}, {"audit", "nope"}, {"audit"}} {
		if r := runCLI(t, env, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
	if r := runCLI(t, env, "audit", "verify", "-h"); r.code != 0 || !strings.Contains(r.stderr, "audit verify") {
		t.Errorf("help: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, testEnv(t), "audit", "verify"); r.code != 1 || !strings.Contains(r.stderr, "no database") {
		t.Errorf("no database: exit %d\n%s", r.code, r.stderr)
	}
}

// TestAuditVerifyThroughAdminSocket verifies while a server holds the
// database.
func TestAuditVerifyThroughAdminSocket(t *testing.T) {
	env := testEnv(t)
	seedPushAudit(t, env, 2, "a1")
	tamperPushAudit(t, env, "a1", 1, `"credential.put"`, `"credential.revoke"`)
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

	r := runCLI(t, env, "audit", "verify")
	if r.code != 1 || !strings.Contains(r.stderr, `app "a1": chain broken at entry 1`) {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
