package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// cliResult is what one command run produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

// lockTimeout is the database lock wait of testProgram; shortLockTimeout
// lowers it for one test.
var lockTimeout = storage.DefaultTimeout

// testProgram stands in for package main: it reads the settings the way
// main's cliSettings does (tested there) for the variables these tests set.
func testProgram() Program {
	return Program{
		Version: "dev",
		Serve: func(_ context.Context, _ map[string]string, stderr io.Writer) int {
			fmt.Fprint(stderr, "serving")
			return 0
		},
		Settings: func(environ map[string]string) Settings {
			s := Settings{DBPath: cmp.Or(environ["SOCKUDO_DB_PATH"], "./sockudo.db"),
				DefaultAppID: cmp.Or(environ["SOCKUDO_DEFAULT_APP_ID"], "app-id")}
			if environ["SOCKUDO_ADMIN_SOCKET_ENABLED"] != "false" {
				s.AdminSocket = cmp.Or(environ["SOCKUDO_ADMIN_SOCKET"], s.DBPath+".sock")
			}
			s.Host = cmp.Or(environ["HOST"], "0.0.0.0")
			if s.Port, s.ListenErr = strconv.Atoi(cmp.Or(environ["PORT"], "6001")); s.ListenErr != nil {
				s.ListenErr = fmt.Errorf("PORT: %q is not an integer", environ["PORT"])
			}
			return s
		},
		LockTimeout: lockTimeout,
	}
}

// runCLI runs the command line args against environ.
func runCLI(t *testing.T, environ map[string]string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, environ, &out, &errOut, testProgram())
	return cliResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// testEnv returns an environment pointing SOCKUDO_DB_PATH into t.TempDir.
func testEnv(t *testing.T) map[string]string {
	return map[string]string{"SOCKUDO_DB_PATH": filepath.Join(t.TempDir(), "sockudo.db")}
}

// shortLockTimeout makes database lock waits quick for this test.
func shortLockTimeout(t *testing.T) {
	old := lockTimeout
	lockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { lockTimeout = old })
}

func decodeApp(t *testing.T, s string) storage.App {
	t.Helper()
	var a storage.App
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatalf("output is not an app as JSON: %v\n%s", err, s)
	}
	return a
}

func TestAppsLifecycle(t *testing.T) {
	env := testEnv(t)
	const secret = "0123456789abcdef0123456789abcdef"

	r := runCLI(t, env, "apps", "create", "--id", "42", "--key", "key42", "--secret", secret,
		"--enable-client-messages", "--allowed-origins", "https://a.example.com, https://*.b.example.com",
		"--max-connections", "3")
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	created := decodeApp(t, r.stdout)
	if created.Secret != secret || created.ID != "42" || created.Key != "key42" || !created.Enabled ||
		!created.EnableClientMessages || created.MaxConnections != 3 ||
		len(created.AllowedOrigins) != 2 || created.MaxEventBatchSize != storage.DefaultMaxEventBatchSize {
		t.Fatalf("create printed %+v", created)
	}
	if !strings.Contains(r.stderr, "will not show it again") {
		t.Errorf("create did not warn that the secret is shown once: %q", r.stderr)
	}

	// The secret appears in create's output and nowhere else.
	for _, args := range [][]string{
		{"apps", "list"},
		{"apps", "list", "--json"},
		{"apps", "show", "42"},
		{"apps", "update", "42", "--enable-subscription-count"},
	} {
		r := runCLI(t, env, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("%v printed the secret:\n%s", args, r.stdout)
		}
	}

	r = runCLI(t, env, "apps", "list")
	if !regexp.MustCompile(`(?m)^42\s+key42\s+true\s+client-messages,subscription-count$`).MatchString(r.stdout) {
		t.Errorf("list table:\n%s", r.stdout)
	}
	r = runCLI(t, env, "apps", "list", "--json")
	var listed []storage.App
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 1 || listed[0].Secret != hiddenSecret {
		t.Errorf("list --json = %s (%v)", r.stdout, err)
	}

	r = runCLI(t, env, "apps", "show", "42")
	shown := decodeApp(t, r.stdout)
	if shown.Secret != hiddenSecret || !shown.EnableSubscriptionCount || !shown.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("show = %+v", shown)
	}

	// Flags after the id, "=false" and an explicit zero all apply; the rest
	// stays as it was.
	r = runCLI(t, env, "apps", "update", "42", "--enabled=false", "--max-connections", "0", "--key", "key42b")
	if r.code != 0 {
		t.Fatalf("update: exit %d\n%s", r.code, r.stderr)
	}
	updated := decodeApp(t, r.stdout)
	if updated.Enabled || updated.MaxConnections != 0 || updated.Key != "key42b" ||
		!updated.EnableClientMessages || len(updated.AllowedOrigins) != 2 {
		t.Errorf("update = %+v", updated)
	}

	// Update without flags changes nothing, not even UpdatedAt.
	r = runCLI(t, env, "apps", "update", "42")
	if r.code != 0 || !strings.Contains(r.stderr, "unchanged") {
		t.Errorf("update without flags: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, env, "apps", "show", "42")
	if again := decodeApp(t, r.stdout); !again.UpdatedAt.Equal(updated.UpdatedAt) {
		t.Errorf("update without flags moved UpdatedAt %v -> %v", updated.UpdatedAt, again.UpdatedAt)
	}

	r = runCLI(t, env, "apps", "delete", "42")
	if r.code != 0 {
		t.Fatalf("delete: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, env, "apps", "show", "42")
	if r.code != 3 || !strings.Contains(r.stderr, `no app with id "42"`) {
		t.Errorf("show after delete: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, env, "apps", "list")
	if strings.Contains(r.stdout, "42") {
		t.Errorf("list after delete:\n%s", r.stdout)
	}
}

// TestAppsPushLimits: the push limit overrides round-trip through update and
// show, other updates keep them, and 0 clears them.
func TestAppsPushLimits(t *testing.T) {
	env := testEnv(t)
	if r := runCLI(t, env, "apps", "create", "--id", "p", "--key", "keyp"); r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	r := runCLI(t, env, "apps", "update", "p", "--push-max-devices-per-user", "3",
		"--push-max-interests-per-device", "50", "--push-registrations-per-ip-per-minute", "10")
	want := storage.AppPushLimits{MaxDevicesPerUser: 3, MaxInterestsPerDevice: 50, RegistrationsPerMinute: 10}
	if r.code != 0 || decodeApp(t, r.stdout).PushLimits != want {
		t.Fatalf("update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, env, "apps", "update", "p", "--max-connections", "9"); r.code != 0 {
		t.Fatalf("second update: exit %d\n%s", r.code, r.stderr)
	}
	if got := decodeApp(t, runCLI(t, env, "apps", "show", "p").stdout).PushLimits; got != want {
		t.Fatalf("show after another update: %+v, want %+v", got, want)
	}
	r = runCLI(t, env, "apps", "update", "p", "--push-max-devices-per-user", "0",
		"--push-max-interests-per-device", "0", "--push-registrations-per-ip-per-minute", "0")
	if r.code != 0 || strings.Contains(r.stdout, "push_limits") {
		t.Fatalf("clearing the overrides: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestAppsCreateGenerates(t *testing.T) {
	env := testEnv(t)
	r := runCLI(t, env, "apps", "create")
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	a := decodeApp(t, r.stdout)
	if !regexp.MustCompile(`^[1-9][0-9]{8}$`).MatchString(a.ID) {
		t.Errorf("generated id %q", a.ID)
	}
	if !regexp.MustCompile(`^[0-9a-f]{20}$`).MatchString(a.Key) {
		t.Errorf("generated key %q", a.Key)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32,}$`).MatchString(a.Secret) {
		t.Errorf("generated secret %q", a.Secret)
	}
	if !a.Enabled {
		t.Error("a new app is disabled by default")
	}
	// Two creates never share credentials.
	b := decodeApp(t, runCLI(t, env, "apps", "create").stdout)
	if a.ID == b.ID || a.Key == b.Key || a.Secret == b.Secret {
		t.Errorf("two generated apps share credentials: %+v %+v", a, b)
	}
}

func TestAppsErrors(t *testing.T) {
	tcs := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"apps without command", []string{"apps"}, 2, "Usage: sockudo apps"},
		{"unknown apps command", []string{"apps", "rename"}, 2, `unknown command "rename"`},
		{"duplicate id", []string{"apps", "create", "--id", "1"}, 1, `an app with id "1" already exists`},
		{"key of another app", []string{"apps", "create", "--id", "2", "--key", "key1"}, 1, `key "key1" already belongs`},
		{"bad key", []string{"apps", "create", "--key", "a/b"}, 2, "--key: may contain only"},
		{"bad origin", []string{"apps", "create", "--allowed-origins", "https://*.*.x"}, 2, "--allowed-origins"},
		{"negative limit", []string{"apps", "create", "--max-event-batch-size", "-1"}, 2, "--max-event-batch-size"},
		{"negative push limit", []string{"apps", "update", "1", "--push-max-devices-per-user", "-1"}, 2, "--push-max-devices-per-user: must be at least 0"},
		{"bool flag value after a space", []string{"apps", "create", "--enabled", "false"}, 2, "--enabled=false"},
		{"unknown flag", []string{"apps", "create", "--colour", "red"}, 2, "flag provided but not defined"},
		{"update unknown id", []string{"apps", "update", "nope", "--enabled=false"}, 3, `no app with id "nope"`},
		{"update without id", []string{"apps", "update", "--enabled=false"}, 2, "missing app id"},
		{"update two ids", []string{"apps", "update", "1", "2"}, 2, "want one app id"},
		{"update to a taken key", []string{"apps", "update", "1", "--key", "key3"}, 1, "already belongs"},
		{"delete unknown id", []string{"apps", "delete", "nope"}, 3, `no app with id "nope"`},
		{"show unknown id", []string{"apps", "show", "nope"}, 3, `no app with id "nope"`},
		{"list with argument", []string{"apps", "list", "x"}, 2, `unexpected argument "x"`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			for _, id := range []string{"1", "3"} {
				if r := runCLI(t, env, "apps", "create", "--id", id, "--key", "key"+id); r.code != 0 {
					t.Fatalf("seed: %s", r.stderr)
				}
			}
			r := runCLI(t, env, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
}

func TestAppsMissingDatabase(t *testing.T) {
	env := testEnv(t)
	for _, args := range [][]string{
		{"apps", "list"},
		{"apps", "show", "1"},
		{"apps", "update", "1", "--enabled=false"},
		{"apps", "delete", "1"},
	} {
		r := runCLI(t, env, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no database at") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestAppsLockedDatabase(t *testing.T) {
	shortLockTimeout(t)
	env := testEnv(t)
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, args := range [][]string{{"apps", "list"}, {"apps", "create"}} {
		r := runCLI(t, env, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "is in use: a server is running") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestAppsDefaultAppNote(t *testing.T) {
	env := testEnv(t)
	env["SOCKUDO_DEFAULT_APP_ID"] = "main"
	runCLI(t, env, "apps", "create", "--id", "main")
	r := runCLI(t, env, "apps", "update", "main", "--enable-client-messages")
	if r.code != 0 || !strings.Contains(r.stderr, "SOCKUDO_DEFAULT_APP_") {
		t.Errorf("update of the default app: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestTopLevelCommands(t *testing.T) {
	tcs := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "version", args: []string{"version"}, stdout: "sockudo dev"},
		{name: "help", args: []string{"help"}, stdout: "Usage: sockudo"},
		{name: "-h", args: []string{"-h"}, stdout: "3  not found"},
		{name: "--help", args: []string{"--help"}, stdout: "Commands:"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: "Usage: sockudo"},
		{name: "serve with arguments", args: []string{"serve", "now"}, code: 2, stderr: "takes no arguments"},
		{name: "serve -h", args: []string{"serve", "-h"}, stdout: "Usage: sockudo"},
		{name: "no command serves", args: nil, stderr: "serving"},
		{name: "serve", args: []string{"serve"}, stderr: "serving"},
		{name: "apps help", args: []string{"apps", "help"}, stdout: "Usage: sockudo apps"},
		{name: "create -h", args: []string{"apps", "create", "-h"}, stderr: "-enable-client-messages"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, testEnv(t), tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q",
					r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}
