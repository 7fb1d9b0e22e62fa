package apps

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func openDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestServiceAuditsEveryChange: each change is stored, then audited with
// the service's source; a failed change is not audited.
func TestServiceAuditsEveryChange(t *testing.T) {
	db := openDB(t)
	s := NewService(db, "cli")
	a := storage.App{ID: "a1", Key: "k1", Secret: "first", Enabled: true}
	if err := s.CreateApp(a); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateApp(a); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	a.EnableClientMessages = true
	if err := s.PutApp(a); err != nil {
		t.Fatal(err)
	}
	rotated, err := s.RotateSecret("a1", "", 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == "first" || len(rotated.Secret) != 40 || rotated.PreviousSecret != "first" {
		t.Fatalf("rotated %+v", rotated)
	}
	if stored, _ := s.App("a1"); stored.Secret != rotated.Secret {
		t.Fatal("the rotation was not stored")
	}
	if _, err := s.RotateSecret("nope", "", 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("rotate unknown: %v", err)
	}
	if err := s.DeleteApp("a1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp("a1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	entries, err := s.Audit(storage.AuditFilter{App: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ action, reason string }{
		{"app_deleted", "cli"}, {"secret_rotated", "grace 90s"}, {"app_updated", "cli"}, {"app_created", "cli"},
	}
	if len(entries) != len(want) {
		t.Fatalf("audit %+v", entries)
	}
	for i, w := range want {
		if entries[i].Action != w.action || entries[i].Reason != w.reason || entries[i].Time.IsZero() {
			t.Errorf("entry %d = %+v, want %s %q", i, entries[i], w.action, w.reason)
		}
	}
}

// failingAudit is a store whose audit log cannot be written.
type failingAudit struct{ *storage.DB }

func (failingAudit) AppendAudit([]storage.AuditEntry) error { return errors.New("disk full") }

func TestServiceNotAudited(t *testing.T) {
	s := NewService(failingAudit{openDB(t)}, "")
	err := s.CreateApp(storage.App{ID: "a", Key: "k", Secret: "s"})
	if !errors.Is(err, ErrNotAudited) {
		t.Fatalf("err = %v, want ErrNotAudited", err)
	}
	if _, err := s.App("a"); err != nil {
		t.Fatalf("the change did not stand: %v", err)
	}
}

// TestBeamsKey: generate, rotate (the old key valid for the grace period)
// and revoke, each audited; generate twice and rotate without a key are
// refused.
func TestBeamsKey(t *testing.T) {
	db := openDB(t)
	s := NewService(db, "cli")
	if err := s.CreateApp(storage.App{ID: "a1", Key: "k1", Secret: "first", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeamsKey("a1", BeamsKeyRotate, time.Hour); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("rotate without a key: %v", err)
	}
	a, err := s.BeamsKey("a1", BeamsKeyGenerate, 0)
	if err != nil || len(a.BeamsSecretKey) != 64 || a.BeamsSecretKey == a.Secret {
		t.Fatalf("generate: %+v, %v", a, err)
	}
	if _, err := s.BeamsKey("a1", BeamsKeyGenerate, 0); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("generate twice: %v", err)
	}
	r, err := s.BeamsKey("a1", BeamsKeyRotate, time.Hour)
	if err != nil || r.BeamsSecretKey == a.BeamsSecretKey || r.PreviousBeamsSecretKey != a.BeamsSecretKey {
		t.Fatalf("rotate: %+v, %v", r, err)
	}
	if got := r.BeamsKeys(time.Now()); len(got) != 2 {
		t.Fatalf("keys during grace %v", got)
	}
	v, err := s.BeamsKey("a1", BeamsKeyRevoke, time.Hour)
	if err != nil || v.BeamsSecretKey != "" || v.PreviousBeamsSecretKey != "" {
		t.Fatalf("revoke: %+v, %v", v, err)
	}
	if stored, _ := s.App("a1"); stored.BeamsKeys(time.Now()) != nil {
		t.Fatal("the revocation was not stored")
	}
	if _, err := s.BeamsKey("a1", "steal", 0); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
	entries, _ := s.Audit(storage.AuditFilter{App: "a1"})
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if want := "[beams_key_revoked beams_key_rotated beams_key_generated app_created]"; fmt.Sprint(actions) != want {
		t.Fatalf("audit %v, want %s", actions, want)
	}
}
