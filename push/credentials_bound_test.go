package push

import (
	"errors"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestCredentialVersionsBounded: a put beyond
// storage.MaxUsablePushCredentials usable versions revokes the oldest at
// once, as a revoke does: its live client is retired, lookups by its
// number fail, the list shows it revoked, and the audit log says why.
func TestCredentialVersionsBounded(t *testing.T) {
	m, audit, _, _ := newTestCredentials(t, testCredKey)
	by := CredentialActor{Source: "test"}
	for range storage.MaxUsablePushCredentials {
		if _, err := m.Put("app1", ProviderAPNs, apnsBody(t, testP8(t)), by); err != nil {
			t.Fatal(err)
		}
	}
	first, err := m.Registry().Version("app1", ProviderAPNs, 1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Put("app1", ProviderAPNs, apnsBody(t, testP8(t)), by)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Revoked() {
		t.Fatal("v1 is still live after the put beyond the bound")
	}
	if _, err := m.Registry().Version("app1", ProviderAPNs, 1); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("lookup of v1: %v", err)
	}
	if c, err := m.Registry().Current("app1", ProviderAPNs); err != nil || c.Version != v.Version {
		t.Fatalf("current: %+v %v", c, err)
	}
	list, err := m.List("app1", ProviderAPNs)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[uint64]string{}
	for _, cv := range list[0].Versions {
		statuses[cv.Version] = cv.Status
	}
	if statuses[1] != StatusRevoked || statuses[2] != StatusRetiring || statuses[v.Version] != StatusActive {
		t.Fatalf("statuses %v", statuses)
	}
	var revoked []string
	for _, e := range audit.all() {
		if e.Action == AuditCredentialRevoked {
			revoked = append(revoked, e.Reason)
		}
	}
	if len(revoked) != 1 || !strings.HasPrefix(revoked[0], "apns v1 ") {
		t.Fatalf("revocations audited: %q", revoked)
	}
}
