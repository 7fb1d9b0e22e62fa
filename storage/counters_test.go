package storage

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestAddCounter(t *testing.T) {
	day := 24 * time.Hour
	d0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d1 := d0.Add(day)

	type step struct {
		key   string
		start time.Time
		delta int64
		want  int64
	}
	tcs := []struct {
		name  string
		steps []step
	}{
		{name: "adds up", steps: []step{
			{"app-1", d0, 1, 1}, {"app-1", d0, 1, 2}, {"app-1", d0, 5, 7},
		}},
		{name: "zero delta reads", steps: []step{
			{"app-1", d0, 0, 0}, {"app-1", d0, 3, 3}, {"app-1", d0, 0, 3},
		}},
		{name: "negative delta", steps: []step{
			{"app-1", d0, 4, 4}, {"app-1", d0, -3, 1},
		}},
		{name: "new window starts at zero", steps: []step{
			{"app-1", d0, 9, 9}, {"app-1", d1, 1, 1},
		}},
		{name: "keys are independent", steps: []step{
			{"app-1", d0, 2, 2}, {"app-2", d0, 5, 5}, {"app-1", d0, 1, 3},
		}},
		{name: "key that extends another", steps: []step{
			// "a" and "a\x00..." must not share a prefix, or writing a's new
			// window would delete the other's counter.
			{"a", d0, 1, 1}, {"a\x00\x00\x00\x00\x00\x00\x00\x00\x00", d0, 7, 7},
			{"ab", d0, 2, 2}, {"a", d1, 1, 1},
			{"a\x00\x00\x00\x00\x00\x00\x00\x00\x00", d0, 0, 7}, {"ab", d0, 0, 2},
		}},
		{name: "empty key", steps: []step{
			{"", d0, 2, 2}, {"", d0, 0, 2}, {"x", d0, 0, 0},
		}},
		{name: "windows before 1970 keep order", steps: []step{
			{"old", time.Unix(-100, 0), 3, 3}, {"old", time.Unix(100, 0), 1, 1},
			{"old", time.Unix(-100, 0), 0, 0},
		}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t)
			for i, s := range tc.steps {
				got, err := db.AddCounter(s.key, s.start, s.delta)
				if err != nil {
					t.Fatalf("step %d: AddCounter(%q, %v, %d): %v", i, s.key, s.start, s.delta, err)
				}
				if got != s.want {
					t.Fatalf("step %d: AddCounter(%q, %v, %d) = %d, want %d", i, s.key, s.start, s.delta, got, s.want)
				}
			}
		})
	}
}

func TestAddCounterDropsOlderWindows(t *testing.T) {
	db := openTestDB(t)
	hour := time.Hour
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	for i := range 5 {
		if _, err := db.AddCounter("app-1", t0.Add(time.Duration(i)*hour), 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.AddCounter("app-2", t0, 1); err != nil {
		t.Fatal(err)
	}

	// Only app-1's latest window and app-2's one window are left.
	var keys int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		keys = tx.Bucket(bucketCounters).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys != 2 {
		t.Fatalf("bucket holds %d keys, want 2", keys)
	}
	for i := range 4 {
		if n, err := db.Counter("app-1", t0.Add(time.Duration(i)*hour)); err != nil || n != 0 {
			t.Fatalf("window %d: Counter = %d, %v; want dropped (0)", i, n, err)
		}
	}
	if n, err := db.Counter("app-1", t0.Add(4*hour)); err != nil || n != 10 {
		t.Fatalf("latest window: Counter = %d, %v; want 10", n, err)
	}
	if n, err := db.Counter("app-2", t0); err != nil || n != 1 {
		t.Fatalf("app-2: Counter = %d, %v; want 1", n, err)
	}

	// Writing an older window than the newest does not drop the newer one.
	if _, err := db.AddCounter("app-1", t0, 1); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Counter("app-1", t0.Add(4*hour)); n != 10 {
		t.Fatalf("newer window after writing an older one = %d, want 10", n)
	}
}

func TestCounterPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sockudo.db")
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Reading before any write creates nothing and reports 0.
	if n, err := db.Counter("app-1", start); err != nil || n != 0 {
		t.Fatalf("Counter on a fresh db = %d, %v; want 0, nil", n, err)
	}
	if _, err := db.AddCounter("app-1", start, 41); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if n, err := db.Counter("app-1", start); err != nil || n != 41 {
		t.Fatalf("Counter after reopen = %d, %v; want 41", n, err)
	}
	if n, err := db.AddCounter("app-1", start, 1); err != nil || n != 42 {
		t.Fatalf("AddCounter after reopen = %d, %v; want 42", n, err)
	}
}

func TestAddCounterConcurrent(t *testing.T) {
	db := openTestDB(t)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := db.AddCounter("app-1", start, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n, err := db.Counter("app-1", start); err != nil || n != workers*each {
		t.Fatalf("Counter = %d, %v; want %d", n, err, workers*each)
	}
}

func TestCounterAfterClose(t *testing.T) {
	db := openTestDB(t)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddCounter("app-1", start, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddCounter after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Counter("app-1", start); !errors.Is(err, ErrClosed) {
		t.Fatalf("Counter after Close: %v, want ErrClosed", err)
	}
}
