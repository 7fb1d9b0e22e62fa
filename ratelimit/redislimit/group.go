package redislimit

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults applied by [NewGroup] to zero Options fields.
const (
	// DefaultTimeout bounds one check in Redis.
	DefaultTimeout = 250 * time.Millisecond
	// DefaultRetryInterval is how long checks skip Redis after it failed.
	DefaultRetryInterval = time.Second
)

// Options tunes a [Group]. The zero value (or nil) means the defaults.
type Options struct {
	// Timeout bounds each check in Redis; zero means DefaultTimeout. The
	// client must honour context deadlines (go-redis
	// Options.ContextTimeoutEnabled, as the cluster node's client does)
	// for the bound to cover a Redis that accepts and never answers.
	Timeout time.Duration
	// RetryInterval is how long checks go straight to their fallback
	// after a failed one, before one check tries Redis again; zero means
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// Log receives one warning when Redis fails and one line when it
	// answers again (never a key). nil discards.
	Log *slog.Logger
	// OnError, when set, is called with the first error of each outage,
	// on the goroutine of the check that met it; it must not block.
	OnError func(err error)
	// OnRecover, when set, is called when Redis answers after an outage,
	// likewise.
	OnRecover func()
	// Now is the node's clock, used only to time the retries (the buckets
	// use Redis's clock). nil means time.Now.
	Now func() time.Time
}

// Group is the limiters of one node on one Redis: they share its client,
// its key prefix and what it knows of an outage, so that the first check
// to fail sends every limiter of the group to its fallback, the outage is
// reported once, and one check per RetryInterval, whichever limiter makes
// it, tries Redis again. It is safe for concurrent use and holds no
// goroutine.
type Group struct {
	// Fixed at construction.
	rdb       redis.Scripter
	prefix    string
	timeout   time.Duration
	retry     time.Duration
	log       *slog.Logger
	onError   func(error)
	onRecover func()
	now       func() time.Time

	down      atomic.Bool  // Redis failed and no probe has succeeded since
	retryAt   atomic.Int64 // while down: Unix ns after which one check probes Redis
	failures  atomic.Uint64
	fallbacks atomic.Uint64
}

// NewGroup returns a Group using rdb (the caller's, closed by it) under
// prefix. opts may be nil.
func NewGroup(rdb redis.Scripter, prefix string, opts *Options) (*Group, error) {
	var errs []error
	if rdb == nil {
		errs = append(errs, errors.New("nil Redis client"))
	}
	if prefix == "" || strings.ContainsAny(prefix, " \t\r\n") {
		errs = append(errs, fmt.Errorf("prefix %q must be non-empty without spaces", prefix))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redislimit: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	g := &Group{rdb: rdb, prefix: prefix, timeout: o.Timeout, retry: o.RetryInterval, log: o.Log,
		onError: o.OnError, onRecover: o.OnRecover, now: o.Now}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	if g.retry <= 0 {
		g.retry = DefaultRetryInterval
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

// skip reports whether a check must go to its fallback without asking
// Redis (Redis is down and this is not the one check of the interval that
// probes it), and whether the check is that probe.
func (g *Group) skip() (probe, skip bool) {
	if !g.down.Load() {
		return false, false
	}
	now := g.now().UnixNano()
	at := g.retryAt.Load()
	if now < at || !g.retryAt.CompareAndSwap(at, now+int64(g.retry)) {
		g.fallbacks.Add(1)
		return false, true
	}
	return true, false
}

// fail starts or prolongs an outage; its first failure is reported.
func (g *Group) fail(limiter string, err error) {
	g.failures.Add(1)
	g.fallbacks.Add(1)
	g.retryAt.Store(g.now().UnixNano() + int64(g.retry))
	if g.down.CompareAndSwap(false, true) {
		g.log.Warn("Redis is unreachable: rate limits are counted on this node alone until it answers",
			"limiter", limiter, "retry_every", g.retry, "err", err)
		if g.onError != nil {
			g.onError(err)
		}
	}
}

// recovered ends an outage after a successful probe. Only a probe ends
// one: a check already in flight when another failed says little about
// Redis now.
func (g *Group) recovered(limiter string) {
	if g.down.CompareAndSwap(true, false) {
		g.log.Info("Redis answers again: rate limits are shared across the cluster again", "limiter", limiter)
		if g.onRecover != nil {
			g.onRecover()
		}
	}
}

// Stats is a snapshot of a Group's counters, for metrics.
type Stats struct {
	Down      bool   // Redis failed and has not answered since
	Failures  uint64 // checks in Redis that failed
	Fallbacks uint64 // checks answered by a fallback (failures included)
}

// Stats returns the current counters. It takes no lock.
func (g *Group) Stats() Stats {
	return Stats{Down: g.down.Load(), Failures: g.failures.Load(), Fallbacks: g.fallbacks.Load()}
}
