package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults applied by [NewMemory] to zero MemoryConfig fields.
const (
	// DefaultMaxKeys bounds the number of keys a Memory tracks.
	DefaultMaxKeys = 100_000

	// MinIdleTTL is the shortest default IdleTTL.
	MinIdleTTL = time.Minute
)

// MemoryConfig configures a [Memory]. Zero values mean the defaults.
type MemoryConfig struct {
	// Limit is the number of requests allowed per Window. Zero or less means
	// unlimited: every request is allowed and nothing is stored.
	Limit int

	// Window is the period Limit applies to; the bucket refills at
	// Limit/Window. It must be positive when Limit is.
	Window time.Duration

	// Burst is the bucket size: how many requests may arrive at once after a
	// quiet period. Zero means Limit.
	Burst int

	// IdleTTL is how long a key may go untouched before Sweep evicts it.
	// Zero means the longest of 2×Window, the time an empty bucket takes to
	// refill, and MinIdleTTL, so that evicting a key never forgets a budget
	// that was still partly spent. A shorter explicit value is honoured and
	// makes limits more lenient.
	IdleTTL time.Duration

	// MaxKeys bounds the number of keys kept. Zero means DefaultMaxKeys. Each
	// of the 64 shards holds at most MaxKeys/64 (rounded up), so at most
	// MaxKeys+63 keys are kept, and a full shard may start evicting a little
	// before the total reaches MaxKeys. See the package Caveats for what eviction
	// means; each key costs about 160 bytes plus its own length.
	MaxKeys int

	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem with c, for main's config validation to
// include. NewMemory panics on a config that fails it.
func (c MemoryConfig) Validate() error {
	var errs []error
	if c.Limit > 0 && c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window %s must be positive when limit is %d", c.Window, c.Limit))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst %d must not be negative", c.Burst))
	}
	if c.IdleTTL < 0 {
		errs = append(errs, fmt.Errorf("idle TTL %s must not be negative", c.IdleTTL))
	}
	if c.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("max keys %d must not be negative", c.MaxKeys))
	}
	return errors.Join(errs...)
}

// Quota overrides a Memory's limit for one call of [Memory.AllowQuota], for
// per-app limits. Zero Window means the Memory's Window (one second if the
// Memory has none); zero Burst means Limit; Limit <= 0 means unlimited.
type Quota struct {
	Limit  int
	Window time.Duration
	Burst  int
}

// Memory is a [Limiter] keeping one token bucket (golang.org/x/time/rate) per
// key in this process. It is safe for concurrent use: keys are spread over 64
// shards with a mutex each, so there is no global lock.
//
// Memory is bounded: keys untouched for IdleTTL are evicted by Sweep (which
// Run calls periodically), and once MaxKeys are held a new key evicts its
// shard's least recently used key.
type Memory struct {
	// Fixed at construction, read without locks.
	limit   int
	perSec  rate.Limit // refill rate, tokens per second
	burst   int
	window  time.Duration
	idleTTL time.Duration
	perShd  int // keys per shard
	now     func() time.Time
	seed    maphash.Seed

	shards [numShards]memShard

	keys    atomic.Int64  // entries held, moved on every insert and removal
	expired atomic.Uint64 // evicted by Sweep
	evicted atomic.Uint64 // evicted to make room for a new key

	loop periodic
}

// memShard is one part of a Memory's keys. Lock order: a shard's mu, then the
// rate.Limiter's own mutex; never two shards at once.
type memShard struct {
	mu sync.Mutex // guards m, lru and every field of their entries
	m  map[string]*memEntry
	// lru is the sentinel of a circular list ordered by last use: lru.next is
	// the most recent entry, lru.prev the least recent one.
	lru memEntry
}

type memEntry struct {
	key string
	lim *rate.Limiter
	// perSec and burst are what lim was built for, so AllowQuota notices an
	// override that changed since.
	perSec     rate.Limit
	burst      int
	lastUsed   int64 // Unix nanoseconds of the last Allow
	prev, next *memEntry
}

// NewMemory returns a ready Memory. It starts no goroutine: run [Memory.Run]
// to evict idle keys. It panics if cfg fails [MemoryConfig.Validate], which
// is a programming error: config is validated at startup.
func NewMemory(cfg MemoryConfig) *Memory {
	if err := cfg.Validate(); err != nil {
		panic("ratelimit: NewMemory: " + err.Error())
	}
	m := &Memory{
		limit:  cfg.Limit,
		burst:  cfg.Burst,
		window: cfg.Window,
		now:    cfg.Now,
		seed:   maphash.MakeSeed(),
		loop:   newPeriodic(),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.burst == 0 {
		m.burst = m.limit
	}
	if m.limit > 0 {
		m.perSec = perSecond(m.limit, m.window)
	}

	m.idleTTL = cfg.IdleTTL
	if m.idleTTL == 0 {
		m.idleTTL = max(2*m.window, MinIdleTTL)
		if m.limit > 0 {
			m.idleTTL = max(m.idleTTL, tokenDuration(float64(m.burst), m.perSec))
		}
	}

	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	m.perShd = (maxKeys + numShards - 1) / numShards

	for i := range m.shards {
		s := &m.shards[i]
		s.m = make(map[string]*memEntry)
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return m
}

func perSecond(limit int, window time.Duration) rate.Limit {
	return rate.Limit(float64(limit) / window.Seconds())
}

// Quota returns the limit m enforces (Burst filled in), so that a limiter
// counting elsewhere, such as a shared one in Redis that falls back to m,
// can enforce the same one. Limit 0 means unlimited.
func (m *Memory) Quota() Quota {
	return Quota{Limit: m.limit, Window: m.window, Burst: m.burst}
}

// Allow counts one request against key's bucket and reports the outcome. A
// Memory with Limit <= 0 always allows and reports Limit 0.
func (m *Memory) Allow(key string) Decision {
	if m.limit <= 0 {
		return Decision{Allowed: true}
	}
	return m.allow(key, m.limit, m.perSec, m.burst)
}

// AllowQuota is Allow with q instead of the configured limit, for per-app
// overrides. Keys share one namespace: if a key's quota changes between
// calls, its bucket keeps its tokens (capped at the new burst) and refills at
// the new rate. An IdleTTL shorter than q's refill time makes q lenient.
func (m *Memory) AllowQuota(key string, q Quota) Decision {
	if q.Limit <= 0 {
		return Decision{Allowed: true}
	}
	window := q.Window
	if window <= 0 {
		window = m.window
	}
	if window <= 0 {
		// An unlimited Memory has no window to default to; treat the
		// override as being per second rather than refusing everything.
		window = time.Second
	}
	burst := q.Burst
	if burst <= 0 {
		burst = q.Limit
	}
	return m.allow(key, q.Limit, perSecond(q.Limit, window), burst)
}

func (m *Memory) allow(key string, limit int, perSec rate.Limit, burst int) Decision {
	now := m.now()
	s := &m.shards[shardIndex(m.seed, key)]

	s.mu.Lock()
	e := s.m[key]
	switch {
	case e == nil:
		e = m.insertLocked(s, key, perSec, burst)
		s.pushFrontLocked(e)
	case s.lru.next != e:
		s.unlinkLocked(e)
		s.pushFrontLocked(e)
	}
	if e.perSec != perSec || e.burst != burst {
		e.lim.SetLimitAt(now, perSec)
		e.lim.SetBurstAt(now, burst)
		e.perSec, e.burst = perSec, burst
	}
	e.lastUsed = now.UnixNano()

	// AllowN and TokensAt run under the shard lock so that the Remaining we
	// report is the state this request left, not a concurrent one's.
	ok := e.lim.AllowN(now, 1)
	tokens := e.lim.TokensAt(now)
	s.mu.Unlock()

	d := Decision{Allowed: ok, Limit: limit}
	if tokens >= 1 {
		d.Remaining = int(tokens)
	}
	d.Reset = tokenDuration(float64(burst)-tokens, perSec)
	if !ok {
		// Computed from the tokens rather than with ReserveN, which would
		// allocate a Reservation and have to be cancelled.
		d.RetryAfter = tokenDuration(1-tokens, perSec)
	}
	return d
}

// insertLocked adds a full bucket for key, first evicting the shard's least
// recently used entry if the shard is at its share of MaxKeys. The entry is
// not linked into the LRU list yet. s.mu must be held.
func (m *Memory) insertLocked(s *memShard, key string, perSec rate.Limit, burst int) *memEntry {
	if len(s.m) >= m.perShd {
		if old := s.lru.prev; old != &s.lru {
			s.unlinkLocked(old)
			delete(s.m, old.key)
			m.keys.Add(-1)
			m.evicted.Add(1)
		}
	}
	e := &memEntry{key: key, lim: rate.NewLimiter(perSec, burst), perSec: perSec, burst: burst}
	s.m[key] = e
	m.keys.Add(1)
	return e
}

func (s *memShard) unlinkLocked(e *memEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *memShard) pushFrontLocked(e *memEntry) {
	e.prev = &s.lru
	e.next = s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

// Sweep evicts every key untouched for IdleTTL as of now and returns how
// many it evicted. It locks one shard at a time and visits only the entries
// it evicts (plus one per shard): it walks each shard's LRU list from the
// least recent end and stops at the first entry still in use. Callers that
// read the clock just before a concurrent caller can leave a slightly
// younger entry nearer that end; the entries it shields go at a later Sweep.
func (m *Memory) Sweep(now time.Time) int {
	cutoff := now.Add(-m.idleTTL).UnixNano()
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for e := s.lru.prev; e != &s.lru && e.lastUsed <= cutoff; e = s.lru.prev {
			s.unlinkLocked(e)
			delete(s.m, e.key)
			n++
		}
		s.mu.Unlock()
	}
	m.keys.Add(-int64(n))
	m.expired.Add(uint64(n))
	return n
}

// Run sweeps idle keys every IdleTTL/2 until ctx is done or Close is called.
// It blocks; start it on the caller's tracked goroutine. It returns at once
// after Close.
func (m *Memory) Run(ctx context.Context) {
	m.loop.run(ctx, max(m.idleTTL/2, time.Millisecond), func() { m.Sweep(m.now()) })
}

// Close stops Run and waits for it to return. It is idempotent and always
// returns nil. Allow keeps working after Close; only the sweeping stops, and
// MaxKeys still bounds memory.
func (m *Memory) Close() error {
	m.loop.close()
	return nil
}

// MemoryStats is a snapshot of a Memory's counters, for metrics.
type MemoryStats struct {
	Keys    int    // keys held now
	Expired uint64 // keys evicted by Sweep since NewMemory
	Evicted uint64 // keys evicted because MaxKeys was reached; a sign of a flood
}

// Stats returns the current counters. It takes no lock.
func (m *Memory) Stats() MemoryStats {
	return MemoryStats{
		Keys:    int(m.keys.Load()),
		Expired: m.expired.Load(),
		Evicted: m.evicted.Load(),
	}
}
