package redislimit

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/ratelimit"
)

// maxPlainKey is the longest key used as it is in a Redis key name.
const maxPlainKey = 64

//go:embed gcra.lua
var gcraSource string

// gcra is the one script; redis.Script runs it with EVALSHA and loads it
// with EVAL when Redis does not know it (after a restart or SCRIPT FLUSH).
var gcra = redis.NewScript(gcraSource)

// Limiter is a [ratelimit.Limiter] counting in Redis (see the package
// doc), made by [Group.New] or [New]. It is safe for concurrent use and
// holds no goroutine: there is nothing to run or close. The Redis client
// is its Group's, which the caller owns.
type Limiter struct {
	// Fixed at construction.
	g         *Group
	keyPrefix string // "<prefix>:rl:<name>:"
	name      string
	limit     int
	window    time.Duration
	burst     int
	fallback  ratelimit.Limiter
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// quotaLimiter is a limiter taking a per-call limit (ratelimit.Memory,
// Limiter); the server and push use it for per-app overrides.
type quotaLimiter interface {
	AllowQuota(key string, q ratelimit.Quota) ratelimit.Decision
}

var _ quotaLimiter = (*Limiter)(nil)

// New returns a Limiter of its own [Group]: NewGroup(rdb, prefix,
// opts) then [Group.New](name, q, fallback). Limiters on one Redis should
// rather share a Group, so that they meet an outage once.
func New(rdb redis.Scripter, prefix, name string, q ratelimit.Quota, fallback ratelimit.Limiter, opts *Options) (*Limiter, error) {
	g, err := NewGroup(rdb, prefix, opts)
	if err != nil {
		return nil, err
	}
	return g.New(name, q, fallback)
}

// New returns a Limiter enforcing q (as [ratelimit.NewMemory] would with
// the same Limit, Window and Burst; Limit <= 0 allows everything without
// asking Redis) in the keys <prefix>:rl:<name>:…, answering from fallback
// while Redis fails. fallback is normally the [ratelimit.Memory] built for
// the same limit (its Quota); it must not be nil, and its own background
// work (Memory.Run) stays the caller's. name tells the group's limiters
// apart: letters, digits, '_' and '-'.
func (g *Group) New(name string, q ratelimit.Quota, fallback ratelimit.Limiter) (*Limiter, error) {
	var errs []error
	if fallback == nil {
		errs = append(errs, errors.New("nil fallback limiter"))
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
	l := &Limiter{
		g:         g,
		keyPrefix: g.prefix + ":rl:" + name + ":",
		name:      name,
		limit:     q.Limit,
		window:    q.Window,
		burst:     q.Burst,
		fallback:  fallback,
	}
	if l.burst == 0 {
		l.burst = l.limit
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
	g := l.g
	probe, skip := g.skip()
	if skip {
		return fallback()
	}
	// Microseconds per token, as Redis's TIME counts.
	interval := window.Seconds() * 1e6 / float64(limit)
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	res, err := gcra.Run(ctx, g.rdb, []string{l.redisKey(key)},
		strconv.FormatFloat(interval, 'g', -1, 64), burst).Slice()
	cancel()
	var d ratelimit.Decision
	if err == nil {
		d, err = decision(res, limit, interval, burst)
	}
	if err != nil {
		g.fail(l.name, err)
		return fallback()
	}
	if probe {
		g.recovered(l.name)
	}
	return d
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

// Stats returns the counters of l's group.
func (l *Limiter) Stats() Stats { return l.g.Stats() }
