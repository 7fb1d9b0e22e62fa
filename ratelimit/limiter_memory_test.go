package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// near reports whether got is want, allowing the one-nanosecond rounding up
// tokenDuration does plus float error.
func near(got, want time.Duration) bool {
	return got >= want && got-want <= time.Microsecond
}

func checkDecision(t *testing.T, what string, got, want Decision) {
	t.Helper()
	if got.Allowed != want.Allowed || got.Limit != want.Limit || got.Remaining != want.Remaining ||
		!near(got.Reset, want.Reset) || !near(got.RetryAfter, want.RetryAfter) {
		t.Fatalf("%s: got %+v\nwant %+v", what, got, want)
	}
}

func TestMemoryBurstThenRefusal(t *testing.T) {
	tcs := []struct {
		name                string
		limit, burst        int
		window              time.Duration
		wantBurst           int           // allowed in a row from a full bucket
		wantPerToken        time.Duration // Window/Limit
		wantConfiguredBurst int
	}{
		{name: "10 per second", limit: 10, window: time.Second, wantBurst: 10, wantPerToken: 100 * time.Millisecond},
		{name: "5 per minute", limit: 5, window: time.Minute, wantBurst: 5, wantPerToken: 12 * time.Second},
		{name: "10 per second burst 3", limit: 10, burst: 3, window: time.Second, wantBurst: 3, wantPerToken: 100 * time.Millisecond},
		{name: "1 per hour", limit: 1, window: time.Hour, wantBurst: 1, wantPerToken: time.Hour},
		{name: "3 per second", limit: 3, window: time.Second, wantBurst: 3, wantPerToken: time.Second / 3},
		{name: "2 per minute burst 6", limit: 2, burst: 6, window: time.Minute, wantBurst: 6, wantPerToken: 30 * time.Second},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := NewMemory(MemoryConfig{Limit: tc.limit, Burst: tc.burst, Window: tc.window, Now: clock.Now})

			for i := range tc.wantBurst {
				used := i + 1
				checkDecision(t, fmt.Sprintf("request %d", used), m.Allow("k"), Decision{
					Allowed:   true,
					Limit:     tc.limit,
					Remaining: tc.wantBurst - used,
					Reset:     time.Duration(used) * tc.wantPerToken,
				})
			}
			refused := Decision{
				Allowed:    false,
				Limit:      tc.limit,
				Remaining:  0,
				Reset:      time.Duration(tc.wantBurst) * tc.wantPerToken,
				RetryAfter: tc.wantPerToken,
			}
			// Refusals do not consume: every retry at the same instant gets
			// the same answer.
			for i := range 3 {
				checkDecision(t, fmt.Sprintf("refusal %d", i), m.Allow("k"), refused)
			}
		})
	}
}

func TestMemoryRefill(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Limit: 10, Burst: 4, Window: time.Second, Now: clock.Now})
	for range 4 {
		m.Allow("k")
	}

	steps := []struct {
		name    string
		advance time.Duration
		want    Decision
	}{
		{"half a token is not enough", 50 * time.Millisecond,
			Decision{Limit: 10, Reset: 350 * time.Millisecond, RetryAfter: 50 * time.Millisecond}},
		{"a whole token is", 50 * time.Millisecond,
			Decision{Allowed: true, Limit: 10, Reset: 400 * time.Millisecond}},
		{"which was spent", 0,
			Decision{Limit: 10, Reset: 400 * time.Millisecond, RetryAfter: 100 * time.Millisecond}},
		{"two and a half tokens", 250 * time.Millisecond,
			Decision{Allowed: true, Limit: 10, Remaining: 1, Reset: 250 * time.Millisecond}},
		{"full after Reset, never more than Burst", time.Hour,
			Decision{Allowed: true, Limit: 10, Remaining: 3, Reset: 100 * time.Millisecond}},
	}
	for _, s := range steps {
		clock.Add(s.advance)
		checkDecision(t, s.name, m.Allow("k"), s.want)
	}
}

// TestMemoryRetryAfterIsEnough checks the promise HTTP clients rely on: a
// refused client that waits exactly RetryAfter is allowed, whatever the
// rate's float rounding. Without tokenDuration's rounding up, a few of these
// random walks fail.
func TestMemoryRetryAfterIsEnough(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same walks every run
	for range 2_000 {
		clock := newFakeClock()
		limit := 1 + r.IntN(1000)
		window := time.Duration(1+r.IntN(3_600_000)) * time.Millisecond
		m := NewMemory(MemoryConfig{Limit: limit, Window: window, Now: clock.Now})
		for range min(3*limit, 300) {
			d := m.Allow("k")
			if d.Allowed {
				// Sometimes let part of a token refill, so that refusals
				// happen at fractional token counts.
				if r.IntN(3) == 0 {
					clock.Add(time.Duration(r.Int64N(int64(window)/int64(limit) + 1)))
				}
				continue
			}
			clock.Add(d.RetryAfter)
			if d2 := m.Allow("k"); !d2.Allowed {
				t.Fatalf("limit %d per %s: refused again after waiting RetryAfter %s: %+v",
					limit, window, d.RetryAfter, d2)
			}
		}
	}
}

func TestMemoryKeysAreIsolated(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Limit: 2, Window: time.Minute, Now: clock.Now})
	m.Allow("a")
	m.Allow("a")
	if d := m.Allow("a"); d.Allowed {
		t.Fatalf("a's third request allowed: %+v", d)
	}
	for _, key := range []string{"b", "", "a ", "A"} {
		if d := m.Allow(key); !d.Allowed || d.Remaining != 1 {
			t.Fatalf("key %q after a was drained: %+v, want a full bucket", key, d)
		}
	}
}

func TestAlwaysAllows(t *testing.T) {
	clock := newFakeClock()
	tcs := []struct {
		name string
		lim  Limiter
	}{
		{"Disabled", Disabled{}},
		{"Memory with limit 0", NewMemory(MemoryConfig{Now: clock.Now})},
		{"Memory with negative limit", NewMemory(MemoryConfig{Limit: -1, Window: time.Second, Now: clock.Now})},
		{"Window with limit 0", NewWindow(newMemStore(), 0, time.Hour, clock.Now)},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 1000 {
				if d := tc.lim.Allow("k"); d != (Decision{Allowed: true}) {
					t.Fatalf("request %d: %+v, want allowed with Limit 0", i, d)
				}
			}
			if m, ok := tc.lim.(*Memory); ok && m.Stats().Keys != 0 {
				t.Fatalf("unlimited Memory stored %d keys", m.Stats().Keys)
			}
		})
	}
}

func TestMemoryAllowQuota(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Limit: 100, Window: time.Minute, Now: clock.Now})

	q := Quota{Limit: 2, Window: time.Minute}
	checkDecision(t, "override 1", m.AllowQuota("app-1", q),
		Decision{Allowed: true, Limit: 2, Remaining: 1, Reset: 30 * time.Second})
	checkDecision(t, "override 2", m.AllowQuota("app-1", q),
		Decision{Allowed: true, Limit: 2, Remaining: 0, Reset: time.Minute})
	checkDecision(t, "override refused", m.AllowQuota("app-1", q),
		Decision{Limit: 2, Reset: time.Minute, RetryAfter: 30 * time.Second})

	// Other keys keep the configured limit.
	if d := m.Allow("app-2"); d.Limit != 100 || d.Remaining != 99 {
		t.Fatalf("configured limit on another key: %+v", d)
	}

	// Raising the quota keeps the spent tokens and refills at the new rate:
	// 2 per second refills a token in 500ms.
	up := Quota{Limit: 2, Window: time.Second, Burst: 10}
	checkDecision(t, "raised, still empty", m.AllowQuota("app-1", up),
		Decision{Limit: 2, Reset: 5 * time.Second, RetryAfter: 500 * time.Millisecond})
	clock.Add(time.Second)
	checkDecision(t, "raised, refilled at the new rate", m.AllowQuota("app-1", up),
		Decision{Allowed: true, Limit: 2, Remaining: 1, Reset: 4500 * time.Millisecond})

	// Zero window means the Memory's; Limit <= 0 is unlimited.
	if d := m.AllowQuota("app-3", Quota{Limit: 6}); d.Reset != 10*time.Second {
		t.Fatalf("zero quota window: Reset %s, want 10s (6 per minute)", d.Reset)
	}
	if d := m.AllowQuota("app-3", Quota{}); d != (Decision{Allowed: true}) {
		t.Fatalf("zero quota: %+v, want unlimited", d)
	}
}

func TestMemoryConfigDefaults(t *testing.T) {
	tcs := []struct {
		name        string
		cfg         MemoryConfig
		wantBurst   int
		wantIdleTTL time.Duration
		wantPerShd  int
	}{
		{name: "short window: at least a minute", cfg: MemoryConfig{Limit: 10, Window: time.Second},
			wantBurst: 10, wantIdleTTL: time.Minute, wantPerShd: DefaultMaxKeys/numShards + 1},
		{name: "long window: twice the window", cfg: MemoryConfig{Limit: 10, Window: 10 * time.Minute},
			wantBurst: 10, wantIdleTTL: 20 * time.Minute, wantPerShd: DefaultMaxKeys/numShards + 1},
		{name: "big burst: its refill time", cfg: MemoryConfig{Limit: 1, Burst: 100, Window: time.Minute},
			wantBurst: 100, wantIdleTTL: 100 * time.Minute, wantPerShd: DefaultMaxKeys/numShards + 1},
		{name: "explicit TTL and keys", cfg: MemoryConfig{Limit: 1, Window: time.Hour, IdleTTL: time.Second, MaxKeys: 640},
			wantBurst: 1, wantIdleTTL: time.Second, wantPerShd: 10},
		{name: "fewer keys than shards", cfg: MemoryConfig{Limit: 1, Window: time.Hour, MaxKeys: 1},
			wantBurst: 1, wantIdleTTL: 2 * time.Hour, wantPerShd: 1},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory(tc.cfg)
			if m.burst != tc.wantBurst || !near(m.idleTTL, tc.wantIdleTTL) || m.perShd != tc.wantPerShd {
				t.Fatalf("burst %d, idle TTL %s, keys per shard %d; want %d, %s, %d",
					m.burst, m.idleTTL, m.perShd, tc.wantBurst, tc.wantIdleTTL, tc.wantPerShd)
			}
		})
	}
}

func TestMemoryConfigValidate(t *testing.T) {
	tcs := []struct {
		name    string
		cfg     MemoryConfig
		wantErr bool
	}{
		{name: "zero is unlimited", cfg: MemoryConfig{}},
		{name: "valid", cfg: MemoryConfig{Limit: 1, Window: time.Second}},
		{name: "limit without window", cfg: MemoryConfig{Limit: 1}, wantErr: true},
		{name: "negative window", cfg: MemoryConfig{Limit: 1, Window: -time.Second}, wantErr: true},
		{name: "negative burst", cfg: MemoryConfig{Limit: 1, Window: time.Second, Burst: -1}, wantErr: true},
		{name: "negative idle TTL", cfg: MemoryConfig{Limit: 1, Window: time.Second, IdleTTL: -1}, wantErr: true},
		{name: "negative max keys", cfg: MemoryConfig{Limit: 1, Window: time.Second, MaxKeys: -1}, wantErr: true},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				NewMemory(tc.cfg)
				return false
			}()
			if panicked != tc.wantErr {
				t.Fatalf("NewMemory panicked = %v, want %v", panicked, tc.wantErr)
			}
		})
	}
}

func TestMemorySweepEvictsIdleKeys(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	m := NewMemory(MemoryConfig{Limit: 1, Window: time.Second, IdleTTL: time.Minute, Now: clock.Now})

	m.Allow("old")
	clock.Add(30 * time.Second)
	m.Allow("young")
	m.Allow("touched")
	clock.Add(20 * time.Second)
	m.Allow("touched")

	steps := []struct {
		at       time.Duration
		wantGone int
		wantKeys int
	}{
		{at: 59 * time.Second, wantGone: 0, wantKeys: 3},
		{at: time.Minute, wantGone: 1, wantKeys: 2},        // old
		{at: 90 * time.Second, wantGone: 1, wantKeys: 1},   // young
		{at: 110 * time.Second, wantGone: 1, wantKeys: 0},  // touched
		{at: 1000 * time.Second, wantGone: 0, wantKeys: 0}, // nothing left
	}
	for _, s := range steps {
		if n := m.Sweep(t0.Add(s.at)); n != s.wantGone {
			t.Fatalf("Sweep(t0+%s) evicted %d, want %d", s.at, n, s.wantGone)
		}
		if st := m.Stats(); st.Keys != s.wantKeys {
			t.Fatalf("after Sweep(t0+%s): %d keys, want %d", s.at, st.Keys, s.wantKeys)
		}
	}
	if st := m.Stats(); st.Expired != 3 || st.Evicted != 0 {
		t.Fatalf("stats %+v, want 3 expired, 0 evicted", st)
	}
}

// TestMemorySweepForgetsNothing checks why the default IdleTTL is what it
// is: a key evicted after the default IdleTTL gets the same answer as one
// that was kept.
func TestMemorySweepForgetsNothing(t *testing.T) {
	for _, cfg := range []MemoryConfig{
		{Limit: 10, Window: time.Second},
		{Limit: 10, Window: 10 * time.Minute},
		{Limit: 1, Burst: 50, Window: time.Minute},
	} {
		clock := newFakeClock()
		cfg.Now = clock.Now
		kept, swept := NewMemory(cfg), NewMemory(cfg)
		for range cfg.Limit + cfg.Burst + 1 {
			kept.Allow("k")
			swept.Allow("k")
		}
		clock.Add(swept.idleTTL)
		if n := swept.Sweep(clock.Now()); n != 1 {
			t.Fatalf("%+v: Sweep evicted %d, want 1", cfg, n)
		}
		if a, b := kept.Allow("k"), swept.Allow("k"); a != b {
			t.Fatalf("%+v: kept %+v, evicted and recreated %+v", cfg, a, b)
		}
	}
}

func TestMemoryMaxKeysUnderFlood(t *testing.T) {
	clock := newFakeClock()
	const maxKeys, flood = 10_000, 200_000
	m := NewMemory(MemoryConfig{Limit: 1, Window: time.Hour, MaxKeys: maxKeys, Now: clock.Now})

	// A client that is busy during the flood keeps its (spent) bucket: LRU
	// evicts the flood's own keys first.
	if d := m.Allow("busy"); !d.Allowed {
		t.Fatal("busy's first request refused")
	}
	for i := range flood {
		if d := m.Allow("ip-" + strconv.Itoa(i)); !d.Allowed {
			t.Fatalf("new key %d refused: %+v; a flood must not lock out new clients", i, d)
		}
		if i%50 == 0 {
			m.Allow("busy")
		}
	}

	st := m.Stats()
	bound := m.perShd * numShards // MaxKeys rounded up to the shard count
	if st.Keys > bound || bound > maxKeys+numShards {
		t.Fatalf("%d keys held (bound %d) after %d distinct keys with MaxKeys %d", st.Keys, bound, flood, maxKeys)
	}
	if st.Evicted != uint64(flood+1-st.Keys) {
		t.Fatalf("evicted %d, want %d", st.Evicted, flood+1-st.Keys)
	}
	// The count matches the maps.
	held := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		held += len(s.m)
		n := 0
		for e := s.lru.next; e != &s.lru; e = e.next {
			n++
		}
		if n != len(s.m) {
			t.Errorf("shard %d: LRU list has %d entries, map %d", i, n, len(s.m))
		}
		s.mu.Unlock()
	}
	if held != st.Keys {
		t.Fatalf("Stats says %d keys, shards hold %d", st.Keys, held)
	}
	if d := m.Allow("busy"); d.Allowed {
		t.Fatalf("busy was evicted during the flood and got a fresh bucket: %+v", d)
	}
	// The first flood keys were evicted, so they start afresh.
	if d := m.Allow("ip-0"); !d.Allowed {
		t.Fatalf("ip-0 should have been evicted and start with a full bucket: %+v", d)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	clock := newFakeClock() // frozen: no refill, so exactly Limit pass per key
	const limit, keys, workers, each = 100, 4, 16, 200
	m := NewMemory(MemoryConfig{Limit: limit, Window: time.Hour, MaxKeys: 1000, Now: clock.Now})

	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				k := (w + i) % keys
				if d := m.Allow("key-" + strconv.Itoa(k)); d.Allowed {
					allowed[k].Add(1)
				}
				if i%20 == 0 {
					m.AllowQuota("quota-"+strconv.Itoa(w), Quota{Limit: 5})
					m.Sweep(clock.Now())
					_ = m.Stats()
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		if n := allowed[k].Load(); n != limit {
			t.Errorf("key-%d: %d allowed, want exactly %d", k, n, limit)
		}
	}
}

func TestMemoryRunSweepsUntilStopped(t *testing.T) {
	tcs := []struct {
		name string
		stop func(t *testing.T, cancel context.CancelFunc, m *Memory)
	}{
		{"ctx cancelled", func(_ *testing.T, cancel context.CancelFunc, _ *Memory) { cancel() }},
		{"Close", func(t *testing.T, _ context.CancelFunc, m *Memory) {
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := NewMemory(MemoryConfig{Limit: 1, Window: time.Second, IdleTTL: 2 * time.Millisecond, Now: clock.Now})
			hook, wait := waitTick(t)
			m.loop.afterTick = hook

			m.Allow("a")
			clock.Add(time.Second) // idle on the fake clock; the timer is real

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				m.Run(ctx)
				close(done)
			}()
			wait()
			if st := m.Stats(); st.Keys != 0 || st.Expired != 1 {
				t.Fatalf("after a tick: %+v, want the idle key expired", st)
			}

			tc.stop(t, cancel, m)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
}

func TestMemoryCloseIsIdempotent(t *testing.T) {
	m := NewMemory(MemoryConfig{Limit: 1, Window: time.Second})
	for range 3 {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Run after Close returns at once; Allow still works.
	m.Run(context.Background())
	if d := m.Allow("k"); !d.Allowed {
		t.Fatalf("Allow after Close: %+v", d)
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "203.0.113." + strconv.Itoa(i)
	}
	newM := func() *Memory {
		// A high limit, so the benchmark measures the allowed path; the
		// refused path does the same work.
		return NewMemory(MemoryConfig{Limit: 1_000_000_000, Window: time.Second})
	}

	b.Run("one key", func(b *testing.B) {
		m := newM()
		b.ReportAllocs()
		for b.Loop() {
			m.Allow(keys[0])
		}
	})
	b.Run("10k keys", func(b *testing.B) {
		m := newM()
		for _, k := range keys {
			m.Allow(k)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.Allow(keys[i%len(keys)])
			i++
		}
	})
	b.Run("one key parallel", func(b *testing.B) {
		m := newM()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Allow(keys[0])
			}
		})
	})
	b.Run("10k keys parallel", func(b *testing.B) {
		m := newM()
		for _, k := range keys {
			m.Allow(k)
		}
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1) * 7919)
			for pb.Next() {
				m.Allow(keys[i%len(keys)])
				i++
			}
		})
	})
	b.Run("new key at MaxKeys", func(b *testing.B) {
		m := NewMemory(MemoryConfig{Limit: 10, Window: time.Second, MaxKeys: len(keys) / 2})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.Allow(keys[i%len(keys)])
			i++
		}
	})
}
