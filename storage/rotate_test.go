package storage

import (
	"fmt"
	"testing"
	"time"
)

func TestRotateSecret(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := App{ID: "a", Key: "k", Secret: "old"}
	tcs := []struct {
		name  string
		grace time.Duration
		at    time.Time
		want  []string
	}{
		{"within grace", time.Hour, now.Add(59 * time.Minute), []string{"new", "old"}},
		{"after grace", time.Hour, now.Add(time.Hour), []string{"new"}},
		{"no grace revokes at once", 0, now, []string{"new"}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			r := a.RotateSecret("new", tc.grace, now)
			if got := r.Secrets(tc.at); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("secrets %v, want %v", got, tc.want)
			}
		})
	}
	// A second rotation drops the first secret entirely.
	r := a.RotateSecret("new", time.Hour, now).RotateSecret("newer", time.Hour, now)
	if got := r.Secrets(now); fmt.Sprint(got) != "[newer new]" {
		t.Fatalf("secrets %v", got)
	}
}

func TestRotateBeamsKey(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	none := App{ID: "a"}
	if got := none.BeamsKeys(now); got != nil {
		t.Fatalf("an app without a key has keys %v", got)
	}
	withKey := none.RotateBeamsKey("k1", time.Hour, now)
	tcs := []struct {
		name string
		app  App
		at   time.Time
		want []string
	}{
		{"generated: no previous key", withKey, now, []string{"k1"}},
		{"rotated within grace", withKey.RotateBeamsKey("k2", time.Hour, now), now.Add(59 * time.Minute), []string{"k2", "k1"}},
		{"rotated after grace", withKey.RotateBeamsKey("k2", time.Hour, now), now.Add(time.Hour), []string{"k2"}},
		{"rotated without grace", withKey.RotateBeamsKey("k2", 0, now), now, []string{"k2"}},
		{"revoked keeps nothing", withKey.RotateBeamsKey("k2", time.Hour, now).RotateBeamsKey("", time.Hour, now), now, nil},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.app.BeamsKeys(tc.at); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("keys %v, want %v", got, tc.want)
			}
		})
	}
	k, err := NewBeamsKey()
	if err != nil || len(k) != 64 || k == withKey.BeamsSecretKey {
		t.Fatalf("NewBeamsKey = %q, %v", k, err)
	}
}
