package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/providers"
	"github.com/sockudo/sockudo/storage"
)

// runPush runs a command with the push credential key set (or not).
func runPush(t *testing.T, environ map[string]string, key string, args ...string) cliResult {
	t.Helper()
	return runPushSettings(t, environ, PushSettings{CredentialKey: key}, args...)
}

// runPushSettings runs a command with these push settings.
func runPushSettings(t *testing.T, environ map[string]string, ps PushSettings, args ...string) cliResult {
	t.Helper()
	p := testProgram()
	inner := p.Settings
	p.Settings = func(env map[string]string) Settings {
		s := inner(env)
		s.Push = ps
		return s
	}
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, environ, &out, &errOut, p)
	return cliResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

func TestPushCredentialsCommands(t *testing.T) {
	env := testEnv(t)
	env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	p8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	p8File := filepath.Join(t.TempDir(), "AuthKey.p8")
	if err := os.WriteFile(p8File, p8, 0o600); err != nil {
		t.Fatal(err)
	}
	secretLine := strings.Split(string(p8), "\n")[1]
	key := strings.Repeat("k", 32)
	put := []string{"push", "credentials", "put", "apns", "--app", "a1", "--p8", p8File, "--team-id", "TEAM123456",
		"--key-id", "KEY1234567"}

	// Without the key, writes are refused with a clear error.
	r := runPush(t, env, "", put...)
	if r.code != 1 || !strings.Contains(r.stderr, "PUSH_CREDENTIAL_ENCRYPTION_KEY") {
		t.Fatalf("put without key: %+v", r)
	}

	r = runPush(t, env, key, put...)
	if r.code != 0 || !strings.Contains(r.stdout, "Stored apns credential version 1 of app a1") {
		t.Fatalf("put: %+v", r)
	}
	r = runPush(t, env, key, "push", "credentials", "generate-vapid", "--app", "a1", "--subject", "mailto:ops@example.com")
	if r.code != 0 || !strings.Contains(r.stdout, "vapid_public_key: B") || strings.Contains(r.stdout, "private") {
		t.Fatalf("generate: %+v", r)
	}
	r = runPush(t, env, key, "push", "credentials", "validate", "apns", "--app", "a1")
	if r.code != 0 || !strings.Contains(r.stdout, "apns version 1 works") {
		t.Fatalf("validate: %+v", r)
	}
	for _, args := range [][]string{{"list", "--app", "a1"}, {"list", "--app", "a1", "--json"}} {
		r = runPush(t, env, "", append([]string{"push", "credentials"}, args...)...) // reads need no key
		if r.code != 0 || !strings.Contains(r.stdout, "TEAM123456") || strings.Contains(r.stdout, secretLine) {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	r = runPush(t, env, "", "push", "credentials", "revoke", "apns", "--app", "a1") // revoke needs no key
	if r.code != 0 || !strings.Contains(r.stdout, "Revoked apns version(s) [1]") || !strings.Contains(r.stdout, "No apns credential is active") {
		t.Fatalf("revoke: %+v", r)
	}

	// A change of encryption key: the old one opens until reseal.
	newKey := strings.Repeat("n", 32)
	if r = runPush(t, env, key, put...); r.code != 0 {
		t.Fatalf("put v2: %+v", r)
	}
	if r = runPush(t, env, newKey, "push", "credentials", "validate", "apns", "--app", "a1"); r.code != 1 ||
		!strings.Contains(r.stderr, "another encryption key") {
		t.Fatalf("validate with the new key only: %+v", r)
	}
	both := PushSettings{CredentialKey: newKey, PreviousCredentialKeys: key}
	r = runPushSettings(t, env, both, "push", "credentials", "reseal")
	if r.code != 0 || !strings.Contains(r.stdout, "Resealed 3 credential versions") {
		t.Fatalf("reseal: %+v", r)
	}
	if r = runPush(t, env, newKey, "push", "credentials", "validate", "apns", "--app", "a1"); r.code != 0 {
		t.Fatalf("validate after reseal: %+v", r)
	}

	// Refusals.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"put", "mqtt", "--app", "a1"}, 2, `unknown provider "mqtt"`},
		{[]string{"put", "--app", "a1"}, 2, "missing provider"},
		{[]string{"put", "apns", "--app", "a1", "--team-id", "TEAM123456"}, 2, "--p8 is required"},
		{[]string{"put", "apns", "--app", "nope", "--p8", p8File, "--team-id", "TEAM123456", "--key-id", "KEY1234567"}, 3, `no app with id "nope"`},
		{[]string{"put", "apns", "--app", "a1", "--p8", p8File + ".nope", "--team-id", "T", "--key-id", "K"}, 2, "no such file"},
		{[]string{"put", "webpush", "--app", "a1", "--subject", "mailto:ops@example.com", "--private-key-file", p8File}, 2, "private_key is too long"},
		{[]string{"revoke", "apns", "--app", "a1", "--version", "9"}, 3, "no such credential version"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	} {
		r = runPush(t, env, key, append([]string{"push", "credentials"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, secretLine) {
			t.Errorf("%v: %+v, want code %d and %q", tc.args, r, tc.code, tc.want)
		}
	}

	// Every change is in the audit log, from the CLI.
	db, err = storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	entries, err := db.Audit(storage.AuditFilter{App: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Action] = true
		if !strings.Contains(e.Reason, "by cli") || strings.Contains(e.Reason, secretLine) {
			t.Errorf("entry %+v", e)
		}
	}
	for _, a := range []string{"push_credential_put", "push_vapid_generated", "push_credential_validated", "push_credential_revoked",
		"push_credentials_resealed"} {
		if !got[a] {
			t.Errorf("no %s entry (have %v)", a, got)
		}
	}
}

// TestPushCredentialsThroughAdminSocket runs the commands against a
// "running server": the database held open by a push.Service whose admin
// handler answers on the admin socket. Changes reach its registry at once.
func TestPushCredentialsThroughAdminSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sk") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dbPath := filepath.Join(dir, "s.db")
	db, err := storage.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PutApp(storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	svc, err := push.New(push.Config{CredentialKey: bytes.Repeat([]byte{5}, 32)},
		push.Deps{DB: db, Apps: noApps{}, Audit: syncRecorder{db}, ClientBuilder: providers.Builder(push.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	as := admin.NewServer(db, func() error { return nil }, nil)
	as.Push = svc.AdminHandler()
	ln, err := admin.Listen(dbPath + ".sock")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: as.Handler(), ReadHeaderTimeout: time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	env := map[string]string{"SOCKUDO_DB_PATH": dbPath}

	// No key on the CLI's side: the server's key seals.
	r := runPush(t, env, "", "push", "credentials", "generate-vapid", "--app", "a1", "--subject", "mailto:ops@example.com")
	if r.code != 0 || !strings.Contains(r.stdout, "Generated Web Push key v1") {
		t.Fatalf("generate: %+v", r)
	}
	c, err := svc.Credentials().Registry().Current("a1", push.ProviderWebPush)
	if err != nil || c.Version != 1 {
		t.Fatalf("the running server does not see v1: %+v %v", c, err)
	}
	r = runPush(t, env, "", "push", "credentials", "list", "--app", "a1", "--provider", "webpush")
	if r.code != 0 || !strings.Contains(r.stdout, "webpush   1") || !strings.Contains(r.stdout, "active") {
		t.Fatalf("list: %+v", r)
	}
	r = runPush(t, env, "", "push", "credentials", "validate", "webpush", "--app", "a1")
	if r.code != 0 || !strings.Contains(r.stdout, "webpush version 1 works") {
		t.Fatalf("validate: %+v", r)
	}
	r = runPush(t, env, "", "push", "credentials", "revoke", "webpush", "--app", "a1", "--version", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "Revoked webpush version(s) [1]") {
		t.Fatalf("revoke: %+v", r)
	}
	if !c.Revoked() {
		t.Fatal("the running server still sends with the revoked version")
	}
	r = runPush(t, env, "", "push", "credentials", "reseal")
	if r.code != 0 || !strings.Contains(r.stdout, "Resealed 0 credential versions") {
		t.Fatalf("reseal: %+v", r)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"put", "apns", "--app", "a1", "--file", garbage}, 2, "the body must be one JSON object"},
		{[]string{"revoke", "fcm", "--app", "a1"}, 3, "no such credential version"},
		{[]string{"list", "--app", "nope"}, 3, `no app with id "nope"`},
	} {
		r = runPush(t, env, "", append([]string{"push", "credentials"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %+v, want %q", tc.args, r, tc.want)
		}
	}
	entries, _ := db.Audit(storage.AuditFilter{App: "a1"})
	if len(entries) < 3 || !strings.Contains(entries[0].Reason, "by admin") {
		t.Fatalf("audit %+v", entries)
	}
}

type noApps struct{}

func (noApps) AppCredentials(string) (string, []string, bool) { return "", nil, false }
func (noApps) AppPushLimits(string) storage.AppPushLimits     { return storage.AppPushLimits{} }
func (noApps) AppBeamsKeys(string) []string                   { return nil }

// syncRecorder writes audit entries at once.
type syncRecorder struct{ db *storage.DB }

func (s syncRecorder) Record(e storage.AuditEntry) { _ = s.db.AppendAudit([]storage.AuditEntry{e}) }
