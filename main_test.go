package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

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
