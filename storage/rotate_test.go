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
