package main

import (
	"strings"
	"time"

	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// webhookConfig is webhook delivery (package webhooks): Sockudo's names for
// batching, ours for the rest.
type webhookConfig struct {
	// BatchingEnabled collects a target's events into one request; false
	// sends one event per request.
	BatchingEnabled bool `env:"WEBHOOK_BATCHING_ENABLED" envDefault:"true"`
	// BatchingDuration is how long, in milliseconds, a batch's first event
	// waits for others (0-60000; 0 sends as soon as the event is stored).
	BatchingDuration int `env:"WEBHOOK_BATCHING_DURATION" envDefault:"50"`
	// BatchingSize is the most events one request carries (1-1000).
	BatchingSize int `env:"WEBHOOK_BATCHING_SIZE" envDefault:"100"`
	// Timeout bounds one request, connecting included (whole seconds, 1-300).
	Timeout time.Duration `env:"WEBHOOK_TIMEOUT_SECONDS" envDefault:"10"`
	// RetryMax is how long an event is retried after it was queued (whole
	// seconds, 1-86400); then it becomes a dead letter.
	RetryMax time.Duration `env:"WEBHOOK_RETRY_MAX_SECONDS" envDefault:"300"`
	// RetryMaxAttempts dead-letters an event after this many failed
	// attempts; 0 means no limit besides RetryMax.
	RetryMaxAttempts int `env:"WEBHOOK_RETRY_MAX_ATTEMPTS" envDefault:"0"`
	// GracePeriodMs delays channel_vacated and member_removed, in
	// milliseconds (0-60000); 0 sends them at once.
	GracePeriodMs int `env:"WEBHOOK_GRACE_PERIOD_MS" envDefault:"3000"`
	// AllowPrivateTargets lets webhooks reach loopback, private, link-local
	// and metadata addresses. Keep it false in production (SSRF).
	AllowPrivateTargets bool `env:"WEBHOOK_ALLOW_PRIVATE_TARGETS" envDefault:"false"`
	// MaxConcurrency bounds requests in flight across targets (1-10000).
	MaxConcurrency int `env:"WEBHOOK_MAX_CONCURRENCY" envDefault:"64"`
	// DeadLetterMax is how many dead letters each app keeps (1-1000000),
	// oldest dropped first.
	DeadLetterMax int `env:"WEBHOOK_DEAD_LETTER_MAX" envDefault:"10000"`
	// CommitIntervalMs is the write-behind, in milliseconds (1-1000): at
	// most one commit (fsync) of new webhook events per interval. It bounds
	// what a kill -9 or power loss can lose.
	CommitIntervalMs int `env:"WEBHOOK_COMMIT_INTERVAL_MS" envDefault:"10"`
	// QueueMax is the most events one target keeps queued (100-10000000);
	// beyond it the oldest become dead letters, so a receiver that is down
	// bounds the file instead of letting anonymous traffic grow it.
	QueueMax int `env:"WEBHOOK_QUEUE_MAX" envDefault:"10000"`
}

// webhookProblems checks the webhook settings and
// SOCKUDO_DEFAULT_APP_WEBHOOKS.
func (c Config) webhookProblems(ch *checks) {
	w := c.Webhooks
	ch.intIn("WEBHOOK_BATCHING_DURATION", w.BatchingDuration, 0, 60_000)
	ch.intIn("WEBHOOK_BATCHING_SIZE", w.BatchingSize, 1, 1000)
	ch.secondsIn("WEBHOOK_TIMEOUT_SECONDS", w.Timeout, 1, 300)
	ch.secondsIn("WEBHOOK_RETRY_MAX_SECONDS", w.RetryMax, 1, 86_400)
	ch.intIn("WEBHOOK_RETRY_MAX_ATTEMPTS", w.RetryMaxAttempts, 0, 1_000_000)
	ch.intIn("WEBHOOK_GRACE_PERIOD_MS", w.GracePeriodMs, 0, 60_000)
	ch.intIn("WEBHOOK_MAX_CONCURRENCY", w.MaxConcurrency, 1, 10_000)
	ch.intIn("WEBHOOK_DEAD_LETTER_MAX", w.DeadLetterMax, 1, 1_000_000)
	ch.intIn("WEBHOOK_COMMIT_INTERVAL_MS", w.CommitIntervalMs, 1, 1000)
	ch.intIn("WEBHOOK_QUEUE_MAX", w.QueueMax, 100, 10_000_000)

	if _, err := webhooks.ParseTargets(c.DefaultAppEnv.Webhooks); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			ch.bad("SOCKUDO_DEFAULT_APP_WEBHOOKS", "%s", line)
		}
	}
}

// WebhooksConfig is the part of c the webhook dispatcher takes.
func (c Config) WebhooksConfig() webhooks.Config {
	w := c.Webhooks
	grace := time.Duration(w.GracePeriodMs) * time.Millisecond
	if grace == 0 {
		grace = -1 // webhooks.Config: zero is the default, negative is none
	}
	batchWait := time.Duration(w.BatchingDuration) * time.Millisecond
	if batchWait == 0 {
		batchWait = time.Nanosecond // zero would mean the default 50 ms
	}
	return webhooks.Config{
		Batching: webhooks.Batching{
			Disabled: !w.BatchingEnabled,
			Duration: batchWait,
			Size:     w.BatchingSize,
		},
		Timeout:             w.Timeout,
		RetryMax:            w.RetryMax,
		MaxAttempts:         w.RetryMaxAttempts,
		GracePeriod:         grace,
		AllowPrivateTargets: w.AllowPrivateTargets,
		MaxConcurrency:      w.MaxConcurrency,
		MaxDeadLetters:      w.DeadLetterMax,
		CommitInterval:      time.Duration(w.CommitIntervalMs) * time.Millisecond,
		MaxQueueDepth:       w.QueueMax,
	}
}

// defaultAppWebhooks parses SOCKUDO_DEFAULT_APP_WEBHOOKS, which loadConfig
// has validated.
func defaultAppWebhooks(s string) []storage.Webhook {
	hooks, _ := webhooks.ParseTargets(s)
	return hooks
}
