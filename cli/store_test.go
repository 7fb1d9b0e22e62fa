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
	if r := runCLI(t, env, "apps", "rotate-secret", "nope"); r.code != 3 {
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

// TestBeamsKeyWithoutServer: generate prints the key once (never the app
// secret), show hides it, rotate keeps the old one for --grace, revoke
// removes both; bad operations and grace are usage errors.
func TestBeamsKeyWithoutServer(t *testing.T) {
	env := testEnv(t)
	if r := runCLI(t, env, "apps", "create", "--id", "a1", "--key", "k1", "--secret", "first-secret"); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	var out beamsKeyAnswer
	r := runCLI(t, env, "apps", "beams-key", "generate", "a1")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out.BeamsSecretKey) != 64 || out.InstanceID != "a1" {
		t.Fatalf("generate: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "first-secret") {
		t.Fatal("generate printed the app secret")
	}
	if r := runCLI(t, env, "apps", "show", "a1"); r.code != 0 || strings.Contains(r.stdout, out.BeamsSecretKey) {
		t.Fatalf("show prints the Beams key: %s", r.stdout)
	}
	first := out.BeamsSecretKey
	r = runCLI(t, env, "apps", "beams-key", "rotate", "a1", "--grace", "1h")
	out = beamsKeyAnswer{}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.BeamsSecretKey == first ||
		time.Until(out.PreviousKeyValidUntil) < 59*time.Minute || strings.Contains(r.stdout, first) {
		t.Fatalf("rotate: %d %s %s", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"generate over a key", []string{"generate", "a1"}, 2}, // storage.ErrInvalid: invalid input
		{"unknown app", []string{"generate", "nope"}, 3},
		{"unknown operation", []string{"show", "a1"}, 2},
		{"negative grace", []string{"rotate", "a1", "--grace", "-1h"}, 2},
		{"missing id", []string{"rotate"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := runCLI(t, env, append([]string{"apps", "beams-key"}, tc.args...)...); r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
		})
	}
	if r := runCLI(t, env, "apps", "beams-key", "revoke", "a1"); r.code != 0 {
		t.Fatalf("revoke: %d %s", r.code, r.stderr)
	}
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if a, _ := db.App("a1"); a.BeamsKeys(time.Now()) != nil || a.Secret != "first-secret" {
		t.Fatalf("after revoke %+v", a)
	}
}
