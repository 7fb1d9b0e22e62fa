package backoff

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Exponential is the wait after the n-th consecutive failure (n ≥ 1):
// initial·2^(n-1), at most max, shortened by up to a fifth at random so that
// senders that failed together do not retry together. jitter returns a
// number in [0, 1), as math/rand/v2.Float64 does; tests pass a constant.
func Exponential(n int, initial, max time.Duration, jitter func() float64) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - time.Duration(float64(d/5)*jitter())
}

// MaxRetryAfter bounds the Retry-After that RetryAfter honours, so a
// receiver cannot park a queue for longer than any retry window.
const MaxRetryAfter = 24 * time.Hour

// RetryAfter parses a Retry-After header value (RFC 9110 §10.2.3),
// delay-seconds or an HTTP date, relative to now, capped at MaxRetryAfter.
// It returns 0 when the value is absent, in the past or unusable.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, int64(MaxRetryAfter/time.Second)))*time.Second, MaxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter)
	}
	return 0
}
