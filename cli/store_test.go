package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func TestRotateSecretAndAuditWithoutServer(t *testing.T) {
	env := testEnv(t)
	if r := runCLI(t, env, "apps", "create", "--id", "a1", "--key", "k1", "--secret", "first-secret"); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	r := runCLI(t, env, "apps", "rotate-secret", "a1", "--grace", "1h")
	if r.code != 0 {
		t.Fatalf("rotate: %d %s", r.code, r.stderr)
	}
	a := decodeApp(t, r.stdout)
	if a.Secret == "first-secret" || len(a.Secret) != 40 || a.PreviousSecret != hiddenSecret ||
		time.Until(a.PreviousSecretExpiresAt) < 59*time.Minute {
		t.Fatalf("rotated app %+v", a)
	}
	if strings.Contains(r.stdout+r.stderr, "first-secret") {
		t.Fatal("the old secret was printed")
	}
	// show hides both secrets.
	if r := runCLI(t, env, "apps", "show", "a1"); strings.Contains(r.stdout, a.Secret) {
		t.Fatalf("show prints the secret: %s", r.stdout)
	}
	if r := runCLI(t, env, "apps", "rotate-secret", "nope"); r.code != 1 {
		t.Fatalf("unknown app: %d", r.code)
	}
	if r := runCLI(t, env, "apps", "rotate-secret", "a1", "--grace", "-1h"); r.code != 2 {
		t.Fatalf("negative grace: %d", r.code)
	}

	r = runCLI(t, env, "audit", "list", "--app", "a1", "--json")
	if r.code != 0 {
		t.Fatalf("audit: %d %s", r.code, r.stderr)
	}
	var entries []storage.AuditEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Action != "secret_rotated" || entries[1].Action != "app_created" {
		t.Fatalf("audit entries %+v", entries)
	}
	if r := runCLI(t, env, "audit", "list", "--since", "1h"); r.code != 0 || !strings.Contains(r.stdout, "secret_rotated") {
		t.Fatalf("audit table: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "audit", "list", "--since", "yesterday"); r.code != 2 {
		t.Fatalf("bad --since: %d", r.code)
	}
}

func TestHideSecretsBlanksWebhookHeaders(t *testing.T) {
	a := storage.App{Secret: "s", PreviousSecret: "p", Webhooks: []storage.Webhook{{URL: "https://x.test", Headers: map[string]string{"Authorization": "Bearer tok"}}}}
	orig := a.Webhooks[0].Headers
	hideSecrets(&a)
	if a.Secret != hiddenSecret || a.PreviousSecret != hiddenSecret || a.Webhooks[0].Headers["Authorization"] != hiddenSecret {
		t.Fatalf("not hidden: %+v", a)
	}
	if orig["Authorization"] != "Bearer tok" {
		t.Fatal("hideSecrets changed the caller's map")
	}
}

// TestAuditListShowsAggregates: a refusal repeated from one IP is one line
// with its count and last sighting; changes show neither.
func TestAuditListShowsAggregates(t *testing.T) {
	env := testEnv(t)
	if r := runCLI(t, env, "apps", "create", "--id", "a1", "--key", "k1", "--secret", "first-secret"); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	if _, err := db.PutAuditRefusals([]storage.AuditEntry{{Time: first, App: "a1", Action: "api_signature_denied",
		IP: "127.0.0.1", Reason: "signature", Count: 3000, LastSeen: first.Add(25 * time.Second)}}, 0); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	r := runCLI(t, env, "audit", "list", "--app", "a1")
	if r.code != 0 {
		t.Fatalf("audit: %d %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "COUNT") || !strings.Contains(lines[0], "LAST SEEN") {
		t.Fatalf("table:\n%s", r.stdout)
	}
	if f := strings.Fields(lines[1]); f[2] != "api_signature_denied" || f[6] != "3000" ||
		f[7] != first.Add(25*time.Second).Format(time.RFC3339) {
		t.Fatalf("aggregate line %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[2] != "app_created" || f[len(f)-2] != "-" || f[len(f)-1] != "-" {
		t.Fatalf("change line %q", lines[2])
	}
}
