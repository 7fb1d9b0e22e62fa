package ratelimit

import (
	"hash/maphash"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Decision is the outcome of one check, with what HTTP rate-limit headers
// need.
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool

	// Limit is the number of requests allowed per window. Zero means the
	// check is unlimited; callers then send no RateLimit headers.
	Limit int

	// Remaining is what is left in the current window after this request
	// (>= 0). A token bucket whose Burst exceeds its Limit may report more
	// than Limit.
	Remaining int

	// Reset is the time until the budget is full again (token bucket) or
	// until the current window ends (fixed window).
	Reset time.Duration

	// RetryAfter is, when refused, the time until one more request would be
	// allowed; it is 0 when allowed. HTTP callers round it up to whole
	// seconds for Retry-After.
	RetryAfter time.Duration
}

// Limiter checks a keyed budget. Each call to Allow counts as one request
// against key's budget, whether or not it is allowed. Implementations are
// safe for concurrent use: Memory (this node), Window (persisted long
// windows), Disabled, and redislimit.Limiter (shared by the nodes through
// Redis).
type Limiter interface {
	Allow(key string) Decision
}

// Disabled is a [Limiter] that allows everything and reports no limit. main
// uses it when RATE_LIMITER_ENABLED=false. Its zero value is ready to use.
type Disabled struct{}

// Allow always returns an allowed, unlimited Decision.
func (Disabled) Allow(string) Decision { return Decision{Allowed: true} }

var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Window)(nil)
	_ Limiter = Disabled{}
)

// numShards is how many independently locked parts Memory and Window split
// their keys into, as the hub does with channels (style §2.3).
const numShards = 64

// shardIndex picks key's shard. The seed is random per limiter, so clients
// cannot choose keys (say, spoofed forwarded IPs) that all land in one shard.
func shardIndex(seed maphash.Seed, key string) int {
	return int(maphash.String(seed, key) % numShards)
}

// tokenDuration is how long a bucket refilling at r takes to gain tokens,
// rounded up to the nanosecond so that a client waiting exactly that long is
// not refused by a rounding error.
func tokenDuration(tokens float64, r rate.Limit) time.Duration {
	if tokens <= 0 || r <= 0 {
		return 0
	}
	d := math.Ceil(tokens / float64(r) * float64(time.Second))
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
