package webhooks

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// Defaults for the zero values of Config.
const (
	DefaultBatchDuration   = 50 * time.Millisecond
	DefaultBatchSize       = 100
	DefaultTimeout         = 10 * time.Second
	DefaultRetryMax        = 5 * time.Minute
	DefaultInitialBackoff  = time.Second
	DefaultMaxBackoff      = 60 * time.Second
	DefaultRecoveryRate    = 20 // requests per second
	DefaultGracePeriod     = 3 * time.Second
	DefaultCacheMissWindow = 5 * time.Second
	DefaultCountThrottle   = 5 * time.Second
	DefaultCountThreshold  = 100
	DefaultMaxConcurrency  = 64
	DefaultMaxBuffered     = 100_000
	DefaultCommitInterval  = 10 * time.Millisecond
	DefaultMaxQueueDepth   = 10_000
)

// Config tunes a Dispatcher. The zero value of every field means its
// default (the Default* constants); tests build it literally.
type Config struct {
	// Batching is the default batching of targets that do not override it.
	Batching Batching
	// Timeout bounds one request, connecting included. Zero means 10 s.
	Timeout time.Duration
	// RetryMax is how long after an event was queued the dispatcher keeps
	// retrying it; then it becomes a dead letter. Zero means 5 minutes.
	RetryMax time.Duration
	// MaxAttempts dead-letters an event after this many failed attempts.
	// Zero means no limit besides RetryMax.
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the exponential backoff between
	// attempts of a failing target. Zero means 1 s and 60 s.
	InitialBackoff, MaxBackoff time.Duration
	// RecoveryRate is how many requests per second a target that failed
	// gets until its backlog is sent, so a recovering receiver is not
	// flooded. Zero means 20.
	RecoveryRate float64
	// GracePeriod delays channel_vacated and member_removed; they are
	// dropped if the channel (member) comes back meanwhile. Zero means 3 s;
	// negative means no delay.
	GracePeriod time.Duration
	// CacheMissWindow is how long one channel's cache_miss suppresses the
	// next. Zero means 5 s.
	CacheMissWindow time.Duration
	// CountThrottle and CountThreshold throttle subscription_count: above
	// CountThreshold subscribers a channel's count is sent at most once per
	// CountThrottle. Zero means 5 s and 100 (Pusher's rule).
	CountThrottle  time.Duration
	CountThreshold int
	// AllowPrivateTargets lets webhooks reach loopback, private, link-local
	// and metadata addresses. False (the safe default) refuses them at
	// connect time, after DNS resolution.
	AllowPrivateTargets bool
	// MaxConcurrency bounds requests in flight across all targets; each
	// target has at most one. Zero means 64.
	MaxConcurrency int
	// MaxDeadLetters is how many dead letters each app keeps, oldest dropped
	// first. Zero means storage.DefaultMaxDeadLetters.
	MaxDeadLetters int
	// MaxBuffered bounds events waiting for the write-behind commit; beyond
	// it Emit drops events (counted in Stats.Dropped). Zero means 100000.
	MaxBuffered int
	// CommitInterval is the write-behind: at most one commit (one fsync)
	// starts per interval, and the events emitted meanwhile share it. It is
	// the durability window: an event is on disk at most about this long
	// plus one commit after Emit. Zero means 10 ms.
	CommitInterval time.Duration
	// MaxQueueDepth is the most events one target keeps in the durable
	// queue. Beyond it the oldest become dead letters (counted in
	// Stats.QueueFull), so a receiver that is down cannot let traffic, anonymous
	// subscribers' channel_occupied included, grow the database file
	// without bound. Zero means 10000.
	MaxQueueDepth int
}

// Batching collects a target's events into one request.
type Batching struct {
	// Disabled sends one event per request. The zero value batches.
	Disabled bool
	// Duration is how long the first event of a batch waits for others.
	// Zero means 50 ms.
	Duration time.Duration
	// Size is the most events one request carries (at most 1000). Zero
	// means 100.
	Size int
}

// withDefaults replaces every zero field by its default.
func (c Config) withDefaults() Config {
	c.Batching.Duration = cmp.Or(c.Batching.Duration, DefaultBatchDuration)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.RetryMax = cmp.Or(c.RetryMax, DefaultRetryMax)
	c.InitialBackoff = cmp.Or(c.InitialBackoff, DefaultInitialBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.GracePeriod = cmp.Or(c.GracePeriod, DefaultGracePeriod)
	c.CacheMissWindow = cmp.Or(c.CacheMissWindow, DefaultCacheMissWindow)
	c.CountThrottle = cmp.Or(c.CountThrottle, DefaultCountThrottle)
	c.CommitInterval = cmp.Or(c.CommitInterval, DefaultCommitInterval)
	c.Batching.Size = cmp.Or(c.Batching.Size, DefaultBatchSize)
	c.RecoveryRate = cmp.Or(c.RecoveryRate, DefaultRecoveryRate)
	c.CountThreshold = cmp.Or(c.CountThreshold, DefaultCountThreshold)
	c.MaxConcurrency = cmp.Or(c.MaxConcurrency, DefaultMaxConcurrency)
	c.MaxDeadLetters = cmp.Or(c.MaxDeadLetters, storage.DefaultMaxDeadLetters)
	c.MaxBuffered = cmp.Or(c.MaxBuffered, DefaultMaxBuffered)
	c.MaxQueueDepth = cmp.Or(c.MaxQueueDepth, DefaultMaxQueueDepth)
	return c
}

func (c Config) validate() error {
	var ps []error
	if c.Batching.Size < 1 || c.Batching.Size > maxBatchSize {
		ps = append(ps, fmt.Errorf("batching size must be 1-%d, got %d", maxBatchSize, c.Batching.Size))
	}
	if c.Batching.Duration < 0 || c.Batching.Duration > maxBatchDuration*time.Millisecond {
		ps = append(ps, fmt.Errorf("batching duration must be 0-%d ms, got %s", maxBatchDuration, c.Batching.Duration))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", c.Timeout}, {"retry max", c.RetryMax}, {"initial backoff", c.InitialBackoff},
		{"max backoff", c.MaxBackoff}, {"cache miss window", c.CacheMissWindow}, {"count throttle", c.CountThrottle},
		{"commit interval", c.CommitInterval}} {
		if d.v <= 0 {
			ps = append(ps, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"max attempts", c.MaxAttempts}, {"count threshold", c.CountThreshold}, {"max concurrency", c.MaxConcurrency},
		{"max dead letters", c.MaxDeadLetters}, {"max buffered", c.MaxBuffered},
		{"max queue depth", c.MaxQueueDepth}} {
		if n.v < 0 {
			ps = append(ps, fmt.Errorf("%s must not be negative, got %d", n.name, n.v))
		}
	}
	if c.RecoveryRate < 0 {
		ps = append(ps, fmt.Errorf("recovery rate must not be negative, got %g", c.RecoveryRate))
	}
	return errors.Join(ps...)
}
