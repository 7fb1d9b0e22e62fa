package storage

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func addCred(t *testing.T, db *DB, app, provider, fp string) PushCredential {
	t.Helper()
	c, _, err := db.AddPushCredential(app, provider, PushCredential{Fingerprint: fp, CreatedAt: time.Unix(1, 0).UTC()},
		func(v uint64) ([]byte, error) { return fmt.Appendf(nil, "sealed-%s-%s-%d", app, provider, v), nil })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPushCredentialVersions(t *testing.T) {
	db := openTestDB(t)
	if _, err := db.CurrentPushCredential("a", "apns"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("current of nothing: %v", err)
	}
	c1 := addCred(t, db, "a", "apns", "fp1")
	c2 := addCred(t, db, "a", "apns", "fp2")
	addCred(t, db, "a", "fcm", "fp3")
	addCred(t, db, "b", "apns", "fp4")
	if c1.Version != 1 || c2.Version != 2 || c2.Status != PushCredentialActive {
		t.Fatalf("versions %d %d status %q", c1.Version, c2.Version, c2.Status)
	}
	cur, err := db.CurrentPushCredential("a", "apns")
	if err != nil || cur.Version != 2 || string(cur.Sealed) != "sealed-a-apns-2" {
		t.Fatalf("current: %+v %v", cur, err)
	}
	all, err := db.PushCredentials("a", "")
	if err != nil || len(all) != 3 {
		t.Fatalf("list: %+v %v", all, err)
	}
	for _, c := range all {
		if c.Sealed != nil {
			t.Fatal("a list carries a sealed blob")
		}
	}
	only, _ := db.PushCredentials("a", "fcm")
	if len(only) != 1 || only[0].Fingerprint != "fp3" {
		t.Fatalf("fcm list: %+v", only)
	}
	if none, err := db.PushCredentials("zzz", ""); err != nil || len(none) != 0 {
		t.Fatalf("unknown app: %+v %v", none, err)
	}

	// Revoking the current version falls back to the previous one.
	at := time.Unix(100, 0)
	got, err := db.RevokePushCredential("a", "apns", 2, at)
	if err != nil || len(got) != 1 || got[0] != 2 {
		t.Fatalf("revoke v2: %v %v", got, err)
	}
	if cur, _ := db.CurrentPushCredential("a", "apns"); cur.Version != 1 {
		t.Fatalf("after revoking v2 current is v%d", cur.Version)
	}
	if again, err := db.RevokePushCredential("a", "apns", 2, at); err != nil || len(again) != 0 {
		t.Fatalf("revoking twice: %v %v", again, err)
	}
	v2, _ := db.PushCredential("a", "apns", 2)
	if v2.Status != PushCredentialRevoked || !v2.RevokedAt.Equal(at) {
		t.Fatalf("v2 after revoke: %+v", v2)
	}
	if _, err := db.RevokePushCredential("a", "apns", 9, at); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	if _, err := db.RevokePushCredential("a", "webpush", 0, at); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown provider: %v", err)
	}
	got, err = db.RevokePushCredential("a", "apns", 0, at)
	if err != nil || len(got) != 1 || got[0] != 1 {
		t.Fatalf("revoke all: %v %v", got, err)
	}
	if _, err := db.CurrentPushCredential("a", "apns"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("current after revoking all: %v", err)
	}
	// Versions are never reused.
	if c := addCred(t, db, "a", "apns", "fp5"); c.Version != 3 {
		t.Fatalf("next version %d", c.Version)
	}
	// Other apps are untouched.
	if c, err := db.CurrentPushCredential("b", "apns"); err != nil || c.Fingerprint != "fp4" {
		t.Fatalf("app b: %+v %v", c, err)
	}
}

func TestPushCredentialUse(t *testing.T) {
	db := openTestDB(t)
	addCred(t, db, "a", "fcm", "fp")
	at := time.Unix(50, 0).UTC()
	if err := db.RecordPushCredentialUse("a", "fcm", 1, at, strings.Repeat("x", 2000)); err != nil {
		t.Fatal(err)
	}
	c, _ := db.PushCredential("a", "fcm", 1)
	if !c.LastUsedAt.Equal(at) || len(c.LastError) != maxPushCredentialError || !c.LastErrorAt.Equal(at) {
		t.Fatalf("after a failure: %+v", c)
	}
	if err := db.RecordPushCredentialUse("a", "fcm", 1, at.Add(time.Second), ""); err != nil {
		t.Fatal(err)
	}
	c, _ = db.PushCredential("a", "fcm", 1)
	if c.LastError != "" || !c.LastErrorAt.IsZero() {
		t.Fatalf("a success keeps the error: %+v", c)
	}
	// A check records its outcome, not a use.
	if err := db.RecordPushCredentialCheck("a", "fcm", 1, at.Add(time.Hour), "refused"); err != nil {
		t.Fatal(err)
	}
	c, _ = db.PushCredential("a", "fcm", 1)
	if c.LastError != "refused" || !c.LastUsedAt.Equal(at.Add(time.Second)) {
		t.Fatalf("after a check: %+v", c)
	}
	// Unknown and revoked versions are ignored.
	if err := db.RecordPushCredentialUse("a", "fcm", 7, at, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokePushCredential("a", "fcm", 1, at); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordPushCredentialUse("a", "fcm", 1, at.Add(time.Hour), "late"); err != nil {
		t.Fatal(err)
	}
	if c, _ = db.PushCredential("a", "fcm", 1); c.LastError == "late" {
		t.Fatal("a revoked version was updated")
	}
	if err := db.DeletePushCredentials("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PushCredential("a", "fcm", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := db.DeletePushCredentials("a"); err != nil {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestPushCredentialSealFailureStoresNothing(t *testing.T) {
	db := openTestDB(t)
	boom := errors.New("boom")
	_, _, err := db.AddPushCredential("a", "apns", PushCredential{}, func(uint64) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if all, _ := db.PushCredentials("a", ""); len(all) != 0 {
		t.Fatalf("stored %+v", all)
	}
	// The failed transaction rolled the sequence back too.
	if c := addCred(t, db, "a", "apns", "fp"); c.Version != 1 {
		t.Fatalf("version %d", c.Version)
	}
}

func TestDeleteAppDeletesItsPushCredentials(t *testing.T) {
	db := openTestDB(t)
	if err := db.PutApp(App{ID: "a", Key: "k", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	addCred(t, db, "a", "apns", "fp")
	if err := db.DeleteApp("a"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(App{ID: "a", Key: "k", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if all, _ := db.PushCredentials("a", ""); len(all) != 0 {
		t.Fatalf("a new app with the old id inherits %+v", all)
	}
}

func TestResealPushCredentials(t *testing.T) {
	db := openTestDB(t)
	addCred(t, db, "a", "apns", "fp")
	addCred(t, db, "a", "fcm", "fp")
	addCred(t, db, "b", "apns", "fp")
	if _, err := db.RevokePushCredential("a", "fcm", 1, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	n, err := db.ResealPushCredentials("", func(c PushCredential) ([]byte, error) {
		if c.App == "b" {
			return nil, nil // already current
		}
		return append([]byte("new-"), c.Sealed...), nil
	})
	if err != nil || n["a"] != 2 || n["b"] != 0 {
		t.Fatalf("resealed %v %v", n, err)
	}
	c, _ := db.PushCredential("a", "fcm", 1)
	if string(c.Sealed) != "new-sealed-a-fcm-1" || c.Status != PushCredentialRevoked {
		t.Fatalf("after reseal: %+v", c)
	}
	boom := errors.New("boom")
	if _, err := db.ResealPushCredentials("a", func(PushCredential) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

// TestPushCredentialVersionsBounded: a put beyond MaxUsablePushCredentials
// usable versions revokes the oldest usable one and reports it; beyond
// MaxStoredPushCredentials versions the oldest revoked ones are deleted.
func TestPushCredentialVersionsBounded(t *testing.T) {
	db := openTestDB(t)
	at := time.Unix(1, 0).UTC()
	add := func() []uint64 {
		t.Helper()
		_, retired, err := db.AddPushCredential("a", "apns", PushCredential{CreatedAt: at},
			func(v uint64) ([]byte, error) { return []byte("sealed"), nil })
		if err != nil {
			t.Fatal(err)
		}
		return retired
	}
	for i := 1; i <= MaxUsablePushCredentials; i++ {
		if r := add(); len(r) != 0 {
			t.Fatalf("put %d retired %v", i, r)
		}
	}
	if _, err := db.RevokePushCredential("a", "apns", 3, at); err != nil {
		t.Fatal(err)
	}
	if r := add(); len(r) != 0 { // v3 revoked by hand: 10 usable with v11
		t.Fatalf("put 11 retired %v", r)
	}
	if r := add(); !slices.Equal(r, []uint64{1}) {
		t.Fatalf("put 12 retired %v, want [1]", r)
	}
	c, err := db.PushCredential("a", "apns", 1)
	if err != nil || c.Status != PushCredentialRevoked || !c.RevokedAt.Equal(at) || string(c.Sealed) != "sealed" {
		t.Fatalf("v1 after the bound: %+v %v", c, err)
	}
	if c, _ := db.PushCredential("a", "apns", 2); c.Status != PushCredentialActive {
		t.Fatalf("v2 %+v", c)
	}

	for range 2 * MaxStoredPushCredentials {
		if r := add(); len(r) != 1 {
			t.Fatalf("retired %v", r)
		}
	}
	all, err := db.PushCredentials("a", "apns")
	if err != nil || len(all) != MaxStoredPushCredentials {
		t.Fatalf("%d versions stored, want %d (%v)", len(all), MaxStoredPushCredentials, err)
	}
	usable := 0
	for _, c := range all {
		if c.Status == PushCredentialActive {
			usable++
		}
	}
	last := all[len(all)-1].Version
	if usable != MaxUsablePushCredentials || all[0].Version != last-MaxStoredPushCredentials+1 {
		t.Fatalf("%d usable, oldest v%d, newest v%d", usable, all[0].Version, last)
	}
	if _, err := db.PushCredential("a", "apns", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("v1 kept: %v", err)
	}
	// Another provider and app are bounds of their own.
	if _, r, _ := db.AddPushCredential("a", "fcm", PushCredential{}, func(uint64) ([]byte, error) { return nil, nil }); len(r) != 0 {
		t.Fatalf("fcm retired %v", r)
	}
}
