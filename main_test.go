package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/cli"
	"github.com/sockudo/sockudo/storage"
)

// cliResult is what one command line run produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runMain runs the command line args against environ, as main does.
func runMain(t *testing.T, environ map[string]string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, environ, &out, &errOut)
	return cliResult{code: code, stdout: out.String(), stderr: errOut.String()}
}

// testEnv returns an environment pointing SOCKUDO_DB_PATH into t.TempDir.
func testEnv(t *testing.T) map[string]string {
	return map[string]string{"SOCKUDO_DB_PATH": filepath.Join(t.TempDir(), "sockudo.db")}
}

// shortLockTimeout makes database lock waits quick for this test.
func shortLockTimeout(t *testing.T) {
	old := dbLockTimeout
	dbLockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { dbLockTimeout = old })
}

// TestRunWiresCLI: the command line reaches package cli with main's
// version, lock timeout and settings.
func TestRunWiresCLI(t *testing.T) {
	if r := runMain(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "sockudo dev (") {
		t.Fatalf("version: %+v", r)
	}
	env := testEnv(t)
	if r := runMain(t, env, "apps", "create", "--id", "a1", "--key", "k1"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if r := runMain(t, env, "apps", "list"); r.code != 0 || !strings.Contains(r.stdout, "a1") {
		t.Fatalf("list: %+v", r)
	}
	shortLockTimeout(t)
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
	if r := runMain(t, env, "apps", "list"); r.code != 1 || !strings.Contains(r.stderr, "is in use") {
		t.Fatalf("locked: %+v", r)
	}
}

func TestCLISettings(t *testing.T) {
	tcs := []struct {
		name string
		env  map[string]string
		want cli.Settings
		// listenErr wants HOST or PORT unreadable.
		listenErr bool
	}{
		{name: "port not a number", env: map[string]string{"PORT": "http"}, listenErr: true,
			want: cli.Settings{DBPath: "./sockudo.db", AdminSocket: "./sockudo.db.sock", DefaultAppID: "app-id"}},
		{name: "defaults", env: nil,
			want: cli.Settings{DBPath: "./sockudo.db", AdminSocket: "./sockudo.db.sock", DefaultAppID: "app-id",
				Host: "0.0.0.0", Port: 6001}},
		{name: "paths and default app",
			env: map[string]string{"SOCKUDO_DB_PATH": "/d/s.db", "SOCKUDO_DEFAULT_APP_ID": "main"},
			want: cli.Settings{DBPath: "/d/s.db", AdminSocket: "/d/s.db.sock", DefaultAppID: "main",
				Host: "0.0.0.0", Port: 6001}},
		{name: "admin socket set", env: map[string]string{"SOCKUDO_ADMIN_SOCKET": "/run/a.sock"},
			want: cli.Settings{DBPath: "./sockudo.db", AdminSocket: "/run/a.sock", DefaultAppID: "app-id",
				Host: "0.0.0.0", Port: 6001}},
		{name: "admin socket disabled", env: map[string]string{"SOCKUDO_ADMIN_SOCKET_ENABLED": "false"},
			want: cli.Settings{DBPath: "./sockudo.db", DefaultAppID: "app-id", Host: "0.0.0.0", Port: 6001}},
		{name: "unreadable admin and default app variables",
			env:  map[string]string{"SOCKUDO_ADMIN_SOCKET_ENABLED": "maybe", "SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS": "x"},
			want: cli.Settings{DBPath: "./sockudo.db", Host: "0.0.0.0", Port: 6001}},
		{name: "unrelated bad variable", env: map[string]string{"DEBUG": "maybe"},
			want: cli.Settings{DBPath: "./sockudo.db", AdminSocket: "./sockudo.db.sock", DefaultAppID: "app-id",
				Host: "0.0.0.0", Port: 6001}},
		{name: "listen address", env: map[string]string{"HOST": "::1", "PORT": "7001"},
			want: cli.Settings{DBPath: "./sockudo.db", AdminSocket: "./sockudo.db.sock", DefaultAppID: "app-id",
				Host: "::1", Port: 7001}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := cliSettings(tc.env)
			// The push settings are TestCLIPushSettings'.
			got.Push = cli.PushSettings{}
			if tc.listenErr {
				if got.ListenErr == nil || !strings.Contains(got.ListenErr.Error(), "PORT") {
					t.Fatalf("ListenErr = %v, want PORT named", got.ListenErr)
				}
				got.ListenErr = nil
			}
			if got != tc.want {
				t.Fatalf("cliSettings = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestServeInvalidConfig(t *testing.T) {
	var stderr bytes.Buffer
	code := serve(context.Background(), map[string]string{
		"PORT":              "0",
		"LOG_OUTPUT_FORMAT": "xml",
	}, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, v := range []string{"PORT:", "LOG_OUTPUT_FORMAT:"} {
		if !strings.Contains(stderr.String(), v) {
			t.Errorf("stderr does not name %s:\n%s", v, stderr.String())
		}
	}
}

func TestServeLockedDatabase(t *testing.T) {
	shortLockTimeout(t)
	env := testEnv(t)
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var stderr bytes.Buffer
	if code := serve(context.Background(), env, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "in use by another sockudo process") {
		t.Errorf("stderr does not explain the lock:\n%s", stderr.String())
	}
}

func TestEnsureDefaultApp(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// First start: public defaults, one loud warning, secret never logged.
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg, err := loadConfig(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureDefaultApp(db, cfg.DefaultApp(), log); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "public=id,key,secret") {
		t.Errorf("warning does not list the public credentials:\n%s", logs.String())
	}
	first, err := db.App("app-id")
	if err != nil {
		t.Fatal(err)
	}

	// An edit made with "apps update" is overwritten by the environment on
	// the next start, which keeps CreatedAt.
	edited := first
	edited.EnableClientMessages = true
	edited.MaxConnections = 99
	if err := db.PutApp(edited); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	cfg, err = loadConfig(map[string]string{
		"SOCKUDO_DEFAULT_APP_KEY":    "privatekey",
		"SOCKUDO_DEFAULT_APP_SECRET": "very-private-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureDefaultApp(db, cfg.DefaultApp(), log); err != nil {
		t.Fatal(err)
	}
	got, err := db.App("app-id")
	if err != nil {
		t.Fatal(err)
	}
	if got.EnableClientMessages || got.MaxConnections != 0 || got.Key != "privatekey" {
		t.Errorf("environment did not win: %+v", got)
	}
	if !got.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("CreatedAt changed %v -> %v", first.CreatedAt, got.CreatedAt)
	}
	if _, err := db.AppByKey("app-key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("old key still resolves: %v", err)
	}
	if strings.Contains(logs.String(), "very-private-secret") {
		t.Errorf("secret logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "public=id") || strings.Contains(logs.String(), "public=id,key") {
		t.Errorf("warning should name only the id:\n%s", logs.String())
	}

	// The env key may not steal another app's key.
	if err := db.CreateApp(storage.App{ID: "other", Key: "otherkey", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	a := cfg.DefaultApp()
	a.Key = "otherkey"
	err = ensureDefaultApp(db, a, log)
	if !errors.Is(err, storage.ErrKeyInUse) || !strings.Contains(err.Error(), "SOCKUDO_DEFAULT_APP_KEY") {
		t.Errorf("key conflict: %v", err)
	}
}

// TestEnsureDefaultAppBeamsKey: without SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY
// a stored Beams key (from "apps beams-key") survives a restart; with it,
// the variable wins; the key is never logged.
func TestEnsureDefaultAppBeamsKey(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	env := map[string]string{"SOCKUDO_DEFAULT_APP_SECRET": "very-private-secret"}
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureDefaultApp(db, cfg.DefaultApp(), log); err != nil {
		t.Fatal(err)
	}
	stored, _ := db.App("app-id")
	if stored.BeamsSecretKey != "" {
		t.Fatalf("a Beams key by default: %+v", stored)
	}
	stored = stored.RotateBeamsKey("K1-0123456789abcdef0123456789abcdef", 0, time.Now())
	if err := db.PutApp(stored); err != nil {
		t.Fatal(err)
	}
	if err := ensureDefaultApp(db, cfg.DefaultApp(), log); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.App("app-id"); got.BeamsSecretKey != stored.BeamsSecretKey {
		t.Fatalf("restart dropped the stored Beams key: %+v", got)
	}
	env["SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY"] = "K2-env-0123456789abcdef0123456789abcdef"
	if cfg, err = loadConfig(env); err != nil {
		t.Fatal(err)
	}
	if err := ensureDefaultApp(db, cfg.DefaultApp(), log); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.App("app-id"); got.BeamsSecretKey != env["SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY"] {
		t.Fatalf("the variable did not win: %+v", got)
	}
	if strings.Contains(logs.String(), "K1-") || strings.Contains(logs.String(), "K2-") {
		t.Fatalf("Beams key logged:\n%s", logs.String())
	}
	for _, bad := range []string{"short", "very-private-secret-very-private-secret", "has a space 0123456789abcdef0123456789"} {
		env2 := map[string]string{"SOCKUDO_DEFAULT_APP_SECRET": "very-private-secret-very-private-secret",
			"SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY": bad}
		_, err := loadConfig(env2)
		if err == nil || !strings.Contains(err.Error(), "SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY") || strings.Contains(err.Error(), bad) {
			t.Errorf("key %q: %v", bad, err)
		}
	}
}
