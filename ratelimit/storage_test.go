package ratelimit_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/storage"
)

// storage.DB is the CounterStore main passes to Window.
var _ ratelimit.CounterStore = (*storage.DB)(nil)

func TestWindowWithStorageSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sockudo.db")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const limit = 5

	// First process: 3 requests, then a clean shutdown.
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := ratelimit.NewWindow(db, limit, 24*time.Hour, clock)
	for range 3 {
		if d := w.Allow("app-1"); !d.Allowed {
			t.Fatalf("first process refused: %+v", d)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Second process, an hour later: the quota carries on.
	now = now.Add(time.Hour)
	db, err = storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	w = ratelimit.NewWindow(db, limit, 24*time.Hour, clock)
	for i, want := range []ratelimit.Decision{
		{Allowed: true, Limit: limit, Remaining: 1, Reset: 13 * time.Hour},
		{Allowed: true, Limit: limit, Remaining: 0, Reset: 13 * time.Hour},
		{Allowed: false, Limit: limit, Remaining: 0, Reset: 13 * time.Hour, RetryAfter: 13 * time.Hour},
	} {
		if d := w.Allow("app-1"); d != want {
			t.Fatalf("request %d after restart: %+v, want %+v", i+1, d, want)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Counter("app-1", now.Truncate(24*time.Hour)); err != nil || n != limit {
		t.Fatalf("stored counter = %d, %v; want %d", n, err, limit)
	}

	// The next day starts afresh, and writing it drops the old window.
	now = now.Add(24 * time.Hour)
	if d := w.Allow("app-1"); !d.Allowed || d.Remaining != limit-1 {
		t.Fatalf("next day: %+v", d)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Counter("app-1", now.Add(-24*time.Hour).Truncate(24*time.Hour)); n != 0 {
		t.Fatalf("yesterday's counter = %d, want dropped", n)
	}
}
