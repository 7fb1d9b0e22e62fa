package webhooks

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff is the wait after the n-th consecutive failure (n ≥ 1):
// initial·2^(n-1), at most max, shortened by up to a fifth at random so that
// targets that failed together do not retry together. jitter returns a
// number in [0, 1).
func backoff(n int, initial, max time.Duration, jitter func() float64) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - time.Duration(float64(d/5)*jitter())
}

// outcome is what a delivery attempt means for its entries.
type outcome int

const (
	// delivered: a 2xx; the entries are deleted.
	delivered outcome = iota
	// retry: a network error, 408, 425, 429 or 5xx; try again later.
	retry
	// give up: any other status, a refused address; dead-letter now.
	giveUp
)

// classify maps an HTTP status to an outcome.
func classify(status int) outcome {
	switch {
	case status >= 200 && status < 300:
		return delivered
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return retry
	default:
		return giveUp
	}
}

// maxRetryAfter bounds a Retry-After we honour; beyond it the retry window
// is over anyway.
const maxRetryAfter = 24 * time.Hour

// retryAfter parses a Retry-After header, delay-seconds or an HTTP date,
// relative to now. It returns 0 when the header is absent or unusable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}
