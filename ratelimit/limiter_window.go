package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultFlushInterval is how often [Window.Run] writes counts to the store
// when Window.FlushInterval is zero: the most a crash can forget.
const DefaultFlushInterval = time.Second

// CounterStore persists window counters. storage.DB implements it.
type CounterStore interface {
	// AddCounter adds delta to the counter named key for the window starting
	// at start, returning the new value; counters of older windows for key
	// may be dropped. A delta of 0 reads the counter (0 if absent) without
	// writing. It must be safe for concurrent use.
	AddCounter(key string, start time.Time, delta int64) (int64, error)
}

// Window is a [Limiter] of fixed-window counters for long windows such as
// daily quotas, persisted through a [CounterStore] so that a restart does not
// reset them. It is safe for concurrent use.
//
// Windows are aligned to multiples of the window length since the zero
// time, so a 24h window starts at midnight UTC. Only allowed requests count:
// a client hammering an exhausted quota does not push its usage further.
//
// # Durability
//
// Allow never writes: it counts in memory, and reads the store only the
// first time it sees a key in a window (to pick up what an earlier process
// counted). Flush, which Run calls every FlushInterval and Close calls once,
// adds the new counts to the store, one write transaction per key that
// changed. A crash therefore forgets at most one FlushInterval of requests,
// which lets clients slightly exceed a quota; a clean shutdown forgets
// nothing.
//
// # Store errors
//
// Window fails open but keeps counting: if the first read of a key fails,
// the key starts from zero in memory; if a flush fails, its counts stay
// pending and are retried by the next Flush. The limit is still enforced on
// what this process has seen, the next successful flush brings back what the
// store held, and every error goes to OnError. Refusing every request while
// the disk is unhappy would turn a storage fault into an outage.
type Window struct {
	// FlushInterval is how often Run writes counts to the store. Zero means
	// DefaultFlushInterval. Set it before calling Run.
	FlushInterval time.Duration

	// OnError, if set, receives every store error, wrapped with the key.
	// Allow, Run and Close call it; it must be quick and safe for concurrent
	// use. Set it before first use.
	OnError func(error)

	// Fixed at construction, read without locks.
	store  CounterStore
	limit  int64
	window time.Duration
	now    func() time.Time
	seed   maphash.Seed

	shards [numShards]winShard

	// flushMu serialises Flush, so that the store's answers are applied in
	// the order the writes happened.
	flushMu sync.Mutex

	loop      periodic
	closeOnce sync.Once
	closeErr  error
}

type winShard struct {
	mu sync.Mutex // guards m and every field of its entries
	m  map[string]*winEntry
}

// winEntry is one key's count in its current window: base + pending.
type winEntry struct {
	start   time.Time // the window counted
	base    int64     // what the store held at the last load or flush
	pending int64     // allowed requests not written yet
}

// NewWindow returns a Window allowing limit requests per window for each
// key, counting in store. now is the clock; nil means time.Now. limit <= 0
// means unlimited (nothing is counted). It starts no goroutine: run
// [Window.Run] to flush. It panics if store is nil or window is not positive,
// both programming errors.
func NewWindow(store CounterStore, limit int64, window time.Duration, now func() time.Time) *Window {
	if store == nil {
		panic("ratelimit: NewWindow: nil store")
	}
	if window <= 0 {
		panic(fmt.Sprintf("ratelimit: NewWindow: window %s must be positive", window))
	}
	if now == nil {
		now = time.Now
	}
	w := &Window{
		store:  store,
		limit:  limit,
		window: window,
		now:    now,
		seed:   maphash.MakeSeed(),
		loop:   newPeriodic(),
	}
	for i := range w.shards {
		w.shards[i].m = make(map[string]*winEntry)
	}
	return w
}

// Allow counts one request for key in the current window if the window's
// limit has not been reached, and reports the outcome. When refused,
// RetryAfter and Reset are the time until the window ends.
func (w *Window) Allow(key string) Decision {
	return w.AllowLimit(key, w.limit)
}

// AllowLimit is Allow with limit instead of the configured one, for per-app
// quotas. limit <= 0 means unlimited. Counts are per key whatever the limit,
// so lowering a key's limit mid-window takes effect at once.
func (w *Window) AllowLimit(key string, limit int64) Decision {
	return w.AllowN(key, 1, limit)
}

// AllowN is AllowLimit for n requests at once (a publish to n devices
// against a daily notification quota): all n are counted, or none when
// they do not fit in what is left. n <= 0 counts nothing and reports the
// usage.
func (w *Window) AllowN(key string, n, limit int64) Decision {
	if limit <= 0 {
		return Decision{Allowed: true}
	}
	n = max(n, 0)
	now := w.now()
	start := now.Truncate(w.window)
	s := &w.shards[shardIndex(w.seed, key)]

	s.mu.Lock()
	e := s.m[key]
	if e == nil || e.start.Before(start) {
		s.mu.Unlock()
		// No store I/O under the shard lock. Concurrent first requests may
		// each load; the first to relock installs the entry, the others
		// count in it.
		base := w.load(key, start)
		s.mu.Lock()
		e = s.m[key]
		if e == nil || e.start.Before(start) {
			// Counts still pending for an ended window are dropped: no
			// decision depends on them any more.
			e = &winEntry{start: start, base: base}
			s.m[key] = e
		}
	}
	used := e.base + e.pending
	allowed := used+n <= limit && (n > 0 || used < limit)
	if allowed {
		e.pending += n
		used += n
	}
	// e.start is later than start only if another caller's clock read was
	// later than ours; count in its window.
	end := e.start.Add(w.window)
	s.mu.Unlock()

	d := Decision{Allowed: allowed, Limit: int(limit), Reset: end.Sub(now)}
	if used < limit {
		d.Remaining = int(limit - used)
	}
	if !allowed {
		d.RetryAfter = d.Reset
	}
	return d
}

// load reads what the store holds for key's window, or 0 on an error.
func (w *Window) load(key string, start time.Time) int64 {
	v, err := w.store.AddCounter(key, start, 0)
	if err != nil {
		w.report(fmt.Errorf("ratelimit: load counter %s: %w", key, err))
		return 0
	}
	return v
}

// Flush adds every pending count to the store and forgets keys whose window
// has ended. Counts whose write fails stay pending for the next Flush; the
// errors are returned joined (not passed to OnError). Safe to call at any
// time, concurrently with Allow.
func (w *Window) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()

	type write struct {
		key   string
		e     *winEntry
		delta int64
	}
	var writes []write
	current := w.now().Truncate(w.window)
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		for key, e := range s.m {
			if e.start.Before(current) {
				delete(s.m, key)
				continue
			}
			if e.pending > 0 {
				// Moved to base now, so that Allow keeps seeing these counts
				// while the write is in flight.
				writes = append(writes, write{key: key, e: e, delta: e.pending})
				e.base += e.pending
				e.pending = 0
			}
		}
		s.mu.Unlock()
	}

	var errs []error
	for _, wr := range writes {
		v, err := w.store.AddCounter(wr.key, wr.e.start, wr.delta)
		if err != nil {
			errs = append(errs, fmt.Errorf("ratelimit: flush counter %s: %w", wr.key, err))
		}
		s := &w.shards[shardIndex(w.seed, wr.key)]
		s.mu.Lock()
		// Only if the entry is still the one written: a key that rolled into
		// a new window meanwhile has a new entry, which this result is not
		// about. (start is fixed per entry, so reading it unlocked above is
		// safe.)
		if s.m[wr.key] == wr.e {
			if err != nil {
				wr.e.base -= wr.delta
				wr.e.pending += wr.delta
			} else {
				// The store's value also includes what other writers added.
				wr.e.base = v
			}
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Run flushes every FlushInterval until ctx is done or Close is called, then
// flushes once more. Errors go to OnError. It blocks; start it on the
// caller's tracked goroutine. Called after Close, it only flushes once.
func (w *Window) Run(ctx context.Context) {
	interval := w.FlushInterval
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	flush := func() {
		if err := w.Flush(); err != nil {
			w.report(err)
		}
	}
	w.loop.run(ctx, interval, flush)
	flush()
}

// Close stops Run, waits for it, and flushes what is pending, returning the
// flush's error. It is idempotent: later calls return the first call's
// result. Allow keeps counting after Close, but only a later Flush writes
// those counts.
func (w *Window) Close() error {
	w.closeOnce.Do(func() {
		w.loop.close()
		w.closeErr = w.Flush()
	})
	return w.closeErr
}

func (w *Window) report(err error) {
	if w.OnError != nil {
		w.OnError(err)
	}
}
