package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is an in-memory CounterStore that behaves like storage.DB: one
// counter per key, dropped when a later window is written.
type memStore struct {
	mu     sync.Mutex
	m      map[string]memCounter
	reads  int
	writes int
	fail   error // returned by every call while set
}

type memCounter struct {
	start time.Time
	n     int64
}

func newMemStore() *memStore { return &memStore{m: make(map[string]memCounter)} }

func (s *memStore) AddCounter(key string, start time.Time, delta int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	c := s.m[key]
	if delta == 0 {
		s.reads++
		if c.start.Equal(start) {
			return c.n, nil
		}
		return 0, nil
	}
	s.writes++
	if !c.start.Equal(start) {
		c = memCounter{start: start}
	}
	c.n += delta
	s.m[key] = c
	return c.n, nil
}

func (s *memStore) get(key string, start time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.m[key]; c.start.Equal(start) {
		return c.n
	}
	return 0
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

func (s *memStore) counts() (reads, writes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.writes
}

func TestWindowCounts(t *testing.T) {
	clock := newFakeClock() // 10:00 UTC
	day := 24 * time.Hour
	today := clock.Now().Truncate(day)
	store := newMemStore()
	w := NewWindow(store, 3, day, clock.Now)

	steps := []struct {
		name    string
		advance time.Duration
		want    Decision
	}{
		{"1st", 0, Decision{Allowed: true, Limit: 3, Remaining: 2, Reset: 14 * time.Hour}},
		{"2nd", time.Hour, Decision{Allowed: true, Limit: 3, Remaining: 1, Reset: 13 * time.Hour}},
		{"3rd", 0, Decision{Allowed: true, Limit: 3, Remaining: 0, Reset: 13 * time.Hour}},
		{"refused until midnight UTC", 0, Decision{Limit: 3, Reset: 13 * time.Hour, RetryAfter: 13 * time.Hour}},
		{"still refused", 13*time.Hour - time.Second, Decision{Limit: 3, Reset: time.Second, RetryAfter: time.Second}},
		{"next day", time.Second, Decision{Allowed: true, Limit: 3, Remaining: 2, Reset: day}},
	}
	for _, s := range steps {
		if s.name == "next day" {
			// Flush before the window ends, to check what was counted.
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if n := store.get("app-1", today); n != 3 {
				t.Fatalf("store holds %d for today, want 3 (refusals do not count)", n)
			}
		}
		clock.Add(s.advance)
		checkDecision(t, s.name, w.Allow("app-1"), s.want)
	}

	// Allow reads the store once per key and window and never writes.
	if reads, writes := store.counts(); reads != 2 || writes != 1 {
		t.Fatalf("store saw %d reads and %d writes, want 2 and 1 (the Flush)", reads, writes)
	}
	if d := w.Allow("app-2"); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("another key: %+v, want its own count", d)
	}
}

func TestWindowSurvivesRestart(t *testing.T) {
	tcs := []struct {
		name string
		// stop ends the first process after it counted 3 requests.
		stop          func(t *testing.T, w *Window)
		wantRemaining int // for the first request of the second process
	}{
		{"clean shutdown", func(t *testing.T, w *Window) {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}, 10 - 4},
		{"crash after a flush", func(t *testing.T, w *Window) {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}, 10 - 4},
		// What the durability doc promises: at most the unflushed requests
		// are forgotten.
		{"crash before any flush", func(*testing.T, *Window) {}, 10 - 1},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			store := newMemStore()
			w1 := NewWindow(store, 10, 24*time.Hour, clock.Now)
			for range 3 {
				w1.Allow("app-1")
			}
			tc.stop(t, w1)

			clock.Add(time.Hour)
			w2 := NewWindow(store, 10, 24*time.Hour, clock.Now)
			if d := w2.Allow("app-1"); !d.Allowed || d.Remaining != tc.wantRemaining {
				t.Fatalf("after restart: %+v, want Remaining %d", d, tc.wantRemaining)
			}
		})
	}
}

func TestWindowStoreErrors(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now().Truncate(time.Hour)
	store := newMemStore()
	boom := errors.New("disk on fire")

	// An earlier process counted 2.
	if _, err := store.AddCounter("app-1", start, 2); err != nil {
		t.Fatal(err)
	}

	var reported []error
	var mu sync.Mutex
	w := NewWindow(store, 5, time.Hour, clock.Now)
	w.OnError = func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	}

	// The first read fails: the key counts from zero in memory, so the
	// limit still holds for what this process sees.
	store.setFail(boom)
	for i := range 5 {
		if d := w.Allow("app-1"); !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("request %d with a failing store: %+v", i+1, d)
		}
	}
	if d := w.Allow("app-1"); d.Allowed {
		t.Fatalf("6th request allowed with a failing store: %+v", d)
	}
	if len(reported) != 1 || !errors.Is(reported[0], boom) {
		t.Fatalf("OnError got %v, want one error wrapping %v", reported, boom)
	}

	// A failed flush keeps the counts pending.
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	store.setFail(nil)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := store.get("app-1", start); n != 7 {
		t.Fatalf("store holds %d, want 2 + 5", n)
	}
	// The flush brought back what the store held: 7 of 5, still refused.
	// (In memory it already was; with limit 8 it shows in Remaining.)
	if d := w.AllowLimit("app-1", 8); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after the flush with limit 8: %+v, want allowed with 0 remaining", d)
	}
}

func TestWindowFlushSeesOtherWriters(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now().Truncate(time.Hour)
	store := newMemStore()
	w := NewWindow(store, 10, time.Hour, clock.Now)

	w.Allow("app-1")
	// Another writer (a second process sharing the store) adds 6.
	if _, err := store.AddCounter("app-1", start, 6); err != nil {
		t.Fatal(err)
	}
	w.Allow("app-1")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if d := w.Allow("app-1"); d.Remaining != 10-9 {
		t.Fatalf("after flush: %+v, want Remaining 1 (2 + 6 elsewhere + this one)", d)
	}
}

func TestWindowFlushForgetsEndedWindows(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	w := NewWindow(store, 10, time.Hour, clock.Now)
	for i := range 100 {
		w.Allow(fmt.Sprint("app-", i))
	}
	clock.Add(time.Hour)
	w.Allow("app-0")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	held := 0
	for i := range w.shards {
		held += len(w.shards[i].m)
	}
	if held != 1 {
		t.Fatalf("%d entries held after the window ended, want 1", held)
	}
	// The ended window's counts were never needed again, so not written.
	if _, writes := store.counts(); writes != 1 {
		t.Fatalf("%d writes, want 1", writes)
	}
}

func TestWindowAllowLimit(t *testing.T) {
	clock := newFakeClock()
	w := NewWindow(newMemStore(), 100, time.Hour, clock.Now)
	for range 3 {
		w.AllowLimit("app-1", 3)
	}
	if d := w.AllowLimit("app-1", 3); d.Allowed || d.Limit != 3 {
		t.Fatalf("4th of 3: %+v", d)
	}
	// The count is per key: the configured limit sees the same 3.
	if d := w.Allow("app-1"); !d.Allowed || d.Remaining != 96 {
		t.Fatalf("configured limit after 3: %+v", d)
	}
	if d := w.AllowLimit("app-1", 0); d != (Decision{Allowed: true}) {
		t.Fatalf("limit 0: %+v, want unlimited", d)
	}
}

func TestWindowConcurrent(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now().Truncate(time.Hour)
	store := newMemStore()
	const limit, workers, each = 500, 16, 100
	w := NewWindow(store, limit, time.Hour, clock.Now)

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range each {
				if w.Allow("app-1").Allowed {
					allowed.Add(1)
				}
				if i%10 == 0 {
					if err := w.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := allowed.Load(); n != limit {
		t.Fatalf("%d allowed, want exactly %d", n, limit)
	}
	if n := store.get("app-1", start); n != limit {
		t.Fatalf("store holds %d, want %d", n, limit)
	}
}

func TestWindowRunFlushes(t *testing.T) {
	tcs := []struct {
		name string
		stop func(t *testing.T, cancel context.CancelFunc, w *Window)
	}{
		{"ctx cancelled", func(_ *testing.T, cancel context.CancelFunc, _ *Window) { cancel() }},
		{"Close", func(t *testing.T, _ context.CancelFunc, w *Window) {
			if err := w.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.Now().Truncate(time.Hour)
			store := newMemStore()
			w := NewWindow(store, 100, time.Hour, clock.Now)
			w.FlushInterval = time.Millisecond
			hook, wait := waitTick(t)
			w.loop.afterTick = hook

			w.Allow("app-1")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				w.Run(ctx)
				close(done)
			}()
			wait()
			if n := store.get("app-1", start); n != 1 {
				t.Fatalf("after a tick the store holds %d, want 1", n)
			}

			// Counted after the last tick, written by the final flush.
			w.Allow("app-1")
			tc.stop(t, cancel, w)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if n := store.get("app-1", start); n != 2 {
				t.Fatalf("after Run returned the store holds %d, want 2", n)
			}
		})
	}
}

func TestWindowCloseIsIdempotent(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	w := NewWindow(store, 10, time.Hour, clock.Now)
	w.Allow("app-1")
	store.setFail(errors.New("gone"))
	first := w.Close()
	if first == nil {
		t.Fatal("Close with a failing store returned nil")
	}
	store.setFail(nil)
	if err := w.Close(); err != first {
		t.Fatalf("second Close = %v, want the first result %v", err, first)
	}
}

func TestNewWindowPanics(t *testing.T) {
	tcs := []struct {
		name   string
		store  CounterStore
		window time.Duration
	}{
		{"nil store", nil, time.Hour},
		{"zero window", newMemStore(), 0},
		{"negative window", newMemStore(), -time.Hour},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("NewWindow did not panic")
				}
			}()
			NewWindow(tc.store, 1, tc.window, nil)
		})
	}
}

func BenchmarkWindowAllow(b *testing.B) {
	w := NewWindow(newMemStore(), 1<<62, 24*time.Hour, nil)
	b.Run("one key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w.Allow("app-1")
		}
	})
	b.Run("one key parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Allow("app-1")
			}
		})
	})
}

func TestWindowAllowN(t *testing.T) {
	store := newMemStore()
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	w := NewWindow(store, 0, 24*time.Hour, func() time.Time { return now })
	for _, c := range []struct {
		n       int64
		allowed bool
		left    int
	}{
		{6, true, 4},  // 6 of 10
		{5, false, 4}, // does not fit: nothing counted
		{4, true, 0},  // exactly fills
		{1, false, 0}, // full
		{0, false, 0}, // reading a full quota is refused too
	} {
		d := w.AllowN("app", c.n, 10)
		if d.Allowed != c.allowed || d.Remaining != c.left {
			t.Fatalf("AllowN(%d) = allowed %v remaining %d, want %v %d", c.n, d.Allowed, d.Remaining, c.allowed, c.left)
		}
	}
}
