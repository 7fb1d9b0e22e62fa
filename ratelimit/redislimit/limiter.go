package redislimit

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/ratelimit"
)

// Defaults applied by [New] to zero Options fields.
const (
	// DefaultTimeout bounds one check in Redis.
	DefaultTimeout = 250 * time.Millisecond
	// DefaultRetryInterval is how long checks skip Redis after it failed.
	DefaultRetryInterval = time.Second
)

// maxPlainKey is the longest key used as it is in a Redis key name.
const maxPlainKey = 64

//go:embed gcra.lua
var gcraSource string

// gcra is the one script; redis.Script runs it with EVALSHA and loads it
// with EVAL when Redis does not know it (after a restart or SCRIPT FLUSH).
var gcra = redis.NewScript(gcraSource)

// Options tunes a [Limiter]. The zero value (or nil) means the defaults.
type Options struct {
	// Timeout bounds each check in Redis; zero means DefaultTimeout. The
	// client must honour context deadlines (go-redis
	// Options.ContextTimeoutEnabled, as the cluster node's client does)
	// for the bound to cover a Redis that accepts and never answers.
	Timeout time.Duration
	// RetryInterval is how long checks go straight to the fallback after
	// a failed one, before one check tries Redis again; zero means
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// Log receives one warning when Redis fails and one line when it
	// answers again (never the key). nil discards.
	Log *slog.Logger
	// OnError, when set, is called with the first error of each outage,
	// on the goroutine of the check that met it; it must not block.
	OnError func(err error)
	// OnRecover, when set, is called when Redis answers after an outage.
	OnRecover func()
	// Now is the node's clock, used only to time the retries (the buckets
	// use Redis's clock). nil means time.Now.
	Now func() time.Time
}

// Limiter is a [ratelimit.Limiter] counting in Redis (see the package
// doc). It is safe for concurrent use and holds no goroutine: there is
// nothing to run or close. The Redis client is the caller's.
type Limiter struct {
	// Fixed at construction.
	rdb       redis.Scripter
	keyPrefix string // "<prefix>:rl:<name>:"
	name      string
	limit     int
	window    time.Duration
	burst     int
	fallback  ratelimit.Limiter
	timeout   time.Duration
	retry     time.Duration
	log       *slog.Logger
	onError   func(error)
	onRecover func()
	now       func() time.Time

	down      atomic.Bool  // Redis failed and has not answered since
	retryAt   atomic.Int64 // while down: Unix ns after which one check tries Redis
	fallbacks atomic.Uint64
	failures  atomic.Uint64
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// quotaLimiter is a limiter taking a per-call limit (ratelimit.Memory,
// Limiter); the server and push use it for per-app overrides.
type quotaLimiter interface {
	AllowQuota(key string, q ratelimit.Quota) ratelimit.Decision
}

var _ quotaLimiter = (*Limiter)(nil)

// New returns a Limiter enforcing q (as [ratelimit.NewMemory] would with
// the same Limit, Window and Burst; Limit <= 0 allows everything without
// asking Redis) in the keys <prefix>:rl:<name>:…, answering from fallback
// while Redis fails. fallback is normally the [ratelimit.Memory] built for
// the same limit (its Quota); it must not be nil, and its own background
// work (Memory.Run) stays the caller's. name tells limiters sharing a
// prefix apart: letters, digits, '_' and '-'. opts may be nil.
func New(rdb redis.Scripter, prefix, name string, q ratelimit.Quota, fallback ratelimit.Limiter, opts *Options) (*Limiter, error) {
	var errs []error
	if rdb == nil {
		errs = append(errs, errors.New("nil Redis client"))
	}
	if fallback == nil {
		errs = append(errs, errors.New("nil fallback limiter"))
	}
	if prefix == "" || strings.ContainsAny(prefix, " \t\r\n") {
		errs = append(errs, fmt.Errorf("prefix %q must be non-empty without spaces", prefix))
	}
	if name == "" || strings.IndexFunc(name, func(r rune) bool {
		return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		errs = append(errs, fmt.Errorf("name %q must be letters, digits, '_' or '-'", name))
	}
	if q.Limit > 0 && q.Window <= 0 {
		errs = append(errs, fmt.Errorf("window %s must be positive when limit is %d", q.Window, q.Limit))
	}
	if q.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst %d must not be negative", q.Burst))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redislimit: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	l := &Limiter{
		rdb:       rdb,
		keyPrefix: prefix + ":rl:" + name + ":",
		name:      name,
		limit:     q.Limit,
		window:    q.Window,
		burst:     q.Burst,
		fallback:  fallback,
		timeout:   o.Timeout,
		retry:     o.RetryInterval,
		log:       o.Log,
		onError:   o.OnError,
		onRecover: o.OnRecover,
		now:       o.Now,
	}
	if l.burst == 0 {
		l.burst = l.limit
	}
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	if l.retry <= 0 {
		l.retry = DefaultRetryInterval
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Allow counts one request against key's shared bucket and reports the
// outcome, from the fallback while Redis fails.
func (l *Limiter) Allow(key string) ratelimit.Decision {
	if l.limit <= 0 {
		return ratelimit.Decision{Allowed: true}
	}
	return l.allow(key, l.limit, l.window, l.burst, func() ratelimit.Decision { return l.fallback.Allow(key) })
}

// AllowQuota is Allow with q instead of the configured limit, for per-app
// overrides, with [ratelimit.Memory.AllowQuota]'s defaults (zero Window:
// the Limiter's, or one second; zero Burst: Limit). A bucket whose quota
// changes keeps its tokens, capped at the new burst. While Redis fails the
// fallback answers, with q if it takes quotas.
func (l *Limiter) AllowQuota(key string, q ratelimit.Quota) ratelimit.Decision {
	if q.Limit <= 0 {
		return ratelimit.Decision{Allowed: true}
	}
	window := q.Window
	if window <= 0 {
		window = l.window
	}
	if window <= 0 {
		window = time.Second
	}
	burst := q.Burst
	if burst <= 0 {
		burst = q.Limit
	}
	return l.allow(key, q.Limit, window, burst, func() ratelimit.Decision {
		if f, ok := l.fallback.(quotaLimiter); ok {
			return f.AllowQuota(key, q)
		}
		return l.fallback.Allow(key)
	})
}

func (l *Limiter) allow(key string, limit int, window time.Duration, burst int, fallback func() ratelimit.Decision) ratelimit.Decision {
	probe := false
	if l.down.Load() {
		now := l.now().UnixNano()
		at := l.retryAt.Load()
		// One check per interval tries Redis; the rest, and every check
		// before the interval is over, use the fallback.
		if now < at || !l.retryAt.CompareAndSwap(at, now+int64(l.retry)) {
			l.fallbacks.Add(1)
			return fallback()
		}
		probe = true
	}

	// Microseconds per token, as Redis's TIME counts.
	interval := window.Seconds() * 1e6 / float64(limit)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	res, err := gcra.Run(ctx, l.rdb, []string{l.redisKey(key)},
		strconv.FormatFloat(interval, 'g', -1, 64), burst).Slice()
	cancel()
	var d ratelimit.Decision
	if err == nil {
		d, err = decision(res, limit, interval, burst)
	}
	if err != nil {
		l.fail(err)
		return fallback()
	}
	// Only a probe ends an outage: a check that was already in flight
	// when another failed says little about Redis now.
	if probe && l.down.CompareAndSwap(true, false) {
		l.log.Info("Redis answers again: rate limits are shared across the cluster again", "limiter", l.name)
		if l.onRecover != nil {
			l.onRecover()
		}
	}
	return d
}

// fail starts or prolongs an outage; the first failure of one is reported.
func (l *Limiter) fail(err error) {
	l.failures.Add(1)
	l.fallbacks.Add(1)
	l.retryAt.Store(l.now().UnixNano() + int64(l.retry))
	if l.down.CompareAndSwap(false, true) {
		l.log.Warn("Redis is unreachable: rate limits are counted on this node only until it answers",
			"limiter", l.name, "retry_every", l.retry, "err", err)
		if l.onError != nil {
			l.onError(err)
		}
	}
}

// decision turns the script's reply into what ratelimit.Memory would have
// answered: the bucket holds burst - diff/interval tokens after the call.
func decision(res []any, limit int, interval float64, burst int) (ratelimit.Decision, error) {
	if len(res) != 2 {
		return ratelimit.Decision{}, fmt.Errorf("redislimit: unexpected script reply %v", res)
	}
	ok, _ := res[0].(int64)
	s, _ := res[1].(string)
	diff, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return ratelimit.Decision{}, fmt.Errorf("redislimit: unexpected script reply %v", res)
	}
	diff = max(diff, 0)
	tokens := float64(burst) - diff/interval
	d := ratelimit.Decision{Allowed: ok == 1, Limit: limit, Reset: micros(diff)}
	if tokens >= 1 {
		d.Remaining = int(tokens)
	}
	if !d.Allowed {
		d.RetryAfter = max(micros(diff-float64(burst-1)*interval), 1)
	}
	return d, nil
}

// micros converts µs to a Duration, rounded up to the nanosecond (as
// ratelimit.Memory rounds) so that waiting it is never a hair too short.
func micros(us float64) time.Duration {
	ns := math.Ceil(us * 1e3)
	if ns <= 0 {
		return 0
	}
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}

// redisKey is key's bucket. Keys are client-controlled (a forwarded IP, a
// user id): short printable ones are used as they are, the rest hashed, so
// key names stay short and carry no spaces or control bytes. '#' never
// starts a plain key, so a client cannot name another key's hash.
func (l *Limiter) redisKey(key string) string {
	if plainKey(key) {
		return l.keyPrefix + key
	}
	sum := sha256.Sum256([]byte(key))
	return l.keyPrefix + "#" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

func plainKey(key string) bool {
	if len(key) > maxPlainKey || len(key) > 0 && key[0] == '#' {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}

// Stats is a snapshot of a Limiter's counters, for metrics.
type Stats struct {
	Down      bool   // Redis failed and has not answered since
	Failures  uint64 // checks in Redis that failed
	Fallbacks uint64 // checks answered by the fallback (failures included)
}

// Stats returns the current counters. It takes no lock.
func (l *Limiter) Stats() Stats {
	return Stats{Down: l.down.Load(), Failures: l.failures.Load(), Fallbacks: l.fallbacks.Load()}
}
