package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/ratelimit/redislimit"
)

// sharedLimitsRedis returns a client of the machine's Redis (scripts/test.sh
// starts one), closed at cleanup; without one the test is skipped, unless
// CI is set.
func sharedLimitsRedis(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") == "" {
			t.Skipf("no Redis at 127.0.0.1:6379 (%v); CI is unset, so skipping", err)
		}
		t.Fatalf("no Redis at 127.0.0.1:6379: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sharedLimitsConfig is a configuration with the given variables and a key
// prefix of the test's own, whose keys are deleted at cleanup.
func sharedLimitsConfig(t *testing.T, rdb *redis.Client, env map[string]string) Config {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	env["DATABASE_REDIS_KEY_PREFIX"] = "limtest-" + hex.EncodeToString(b[:])
	c, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if rdb != nil {
		t.Cleanup(func() {
			ctx := context.Background()
			keys, _ := rdb.Keys(ctx, c.Cluster.Prefix+":*").Result()
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
		})
	}
	return c
}

func TestShareLimitersLeavesMemoryLimitsAlone(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"ADAPTER_DRIVER": "redis", "RATE_LIMITER_DRIVER": "memory"},
	} {
		c := sharedLimitsConfig(t, nil, env)
		l := c.buildLimiters()
		before := l.Limits
		// No Redis is needed: nothing is shared.
		c.shareLimiters(&l, nil, nil, slog.New(slog.DiscardHandler))
		if l.Limits != before {
			t.Fatalf("%v: limiters changed", env)
		}
	}
}

func TestShareLimitersSharesTheClusterWideLimits(t *testing.T) {
	r1, r2 := sharedLimitsRedis(t), sharedLimitsRedis(t)
	c := sharedLimitsConfig(t, r1, map[string]string{
		"RATE_LIMITER_DRIVER":              "redis",
		"RATE_LIMITER_WS_MAX_REQUESTS":     "3",
		"RATE_LIMITER_SIGNIN_MAX_ATTEMPTS": "0",
	})
	log := slog.New(slog.DiscardHandler)
	// Two nodes: each its own limiters and its own Redis connection.
	n1, n2 := c.buildLimiters(), c.buildLimiters()
	c.shareLimiters(&n1, nil, r1, log)
	c.shareLimiters(&n2, nil, r2, log)

	for name, lim := range map[string]ratelimit.Limiter{"WSConnect": n1.WSConnect, "AuthFailures": n1.AuthFailures,
		"APIPublish": n1.APIPublish, "APIRead": n1.APIRead} {
		if _, ok := lim.(*redislimit.Limiter); !ok {
			t.Errorf("%s is a %T, want shared", name, lim)
		}
	}
	if n1.Signin != nil {
		t.Errorf("a disabled limit became %T", n1.Signin)
	}
	if len(n1.memory) != 4 {
		t.Errorf("%d memory limiters to sweep, want the 4 fallbacks", len(n1.memory))
	}

	// Connection attempts from one IP count once across both nodes.
	for i, l := range []ratelimit.Limiter{n1.WSConnect, n2.WSConnect, n1.WSConnect} {
		if d := l.Allow("192.0.2.1"); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("attempt %d: %+v", i+1, d)
		}
	}
	if d := n2.WSConnect.Allow("192.0.2.1"); d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("fourth attempt, on the other node: %+v, want refused", d)
	}
	// A per-app override reaches Redis too (the server's allow uses it).
	q, ok := n1.APIPublish.(interface {
		AllowQuota(string, ratelimit.Quota) ratelimit.Decision
	})
	if !ok {
		t.Fatal("the shared API limiter takes no per-app override")
	}
	if d := q.AllowQuota("app-1", ratelimit.Quota{Limit: 1}); !d.Allowed || d.Limit != 1 {
		t.Fatalf("override: %+v", d)
	}
	if d := n2.APIPublish.(*redislimit.Limiter).AllowQuota("app-1", ratelimit.Quota{Limit: 1}); d.Allowed {
		t.Fatalf("override on the other node: %+v, want refused", d)
	}
	for _, m := range append(n1.memory, n2.memory...) {
		if m.Stats().Keys != 0 {
			t.Fatal("a fallback answered while Redis was up")
		}
	}
}

func TestShareLimitersFallsBackToEachNode(t *testing.T) {
	// Nothing listens on port 1.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	c := sharedLimitsConfig(t, nil, map[string]string{
		"ADAPTER_DRIVER":                 "redis",
		"RATE_LIMITER_WS_MAX_REQUESTS":   "2",
		"RATE_LIMITER_AUTH_MAX_FAILURES": "2",
	})
	var buf bytes.Buffer
	l := c.buildLimiters()
	c.shareLimiters(&l, nil, rdb, slog.New(slog.NewTextHandler(&buf, nil)))

	// Each node enforces the limit alone: neither all allowed nor all
	// refused.
	for _, lim := range []ratelimit.Limiter{l.WSConnect, l.AuthFailures} {
		for i, want := range []bool{true, true, false} {
			if d := lim.Allow("192.0.2.1"); d.Allowed != want || d.Limit != 2 {
				t.Fatalf("%T attempt %d: %+v, want allowed=%v", lim, i+1, d, want)
			}
		}
	}
	// Two limiters met the outage; it is logged once.
	if n := strings.Count(buf.String(), "Redis is unreachable"); n != 1 {
		t.Fatalf("outage logged %d times:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "192.0.2.1") {
		t.Fatal("the log names a client")
	}
}

func TestShareLimitersSharesPushPerTenant(t *testing.T) {
	r1, r2 := sharedLimitsRedis(t), sharedLimitsRedis(t)
	c := sharedLimitsConfig(t, r1, map[string]string{"RATE_LIMITER_DRIVER": "redis", "PUSH_PUBLISH_RPS": "2"})
	log := slog.New(slog.DiscardHandler)
	var pushes []ratelimit.Limiter
	for _, r := range []*redis.Client{r1, r2} {
		l := c.buildLimiters()
		pc := c.PushConfig(&l.memory)
		c.shareLimiters(&l, &pc.Limits, r, log)
		if _, ok := pc.Limits.Publishes.(*redislimit.Limiter); !ok {
			t.Fatalf("push publishes limiter is a %T, want shared", pc.Limits.Publishes)
		}
		pushes = append(pushes, pc.Limits.Publishes)
	}
	// Two publishes a second per app, whichever node takes them.
	if !pushes[0].Allow("app-1").Allowed || !pushes[1].Allow("app-1").Allowed {
		t.Fatal("the first two publishes were refused")
	}
	if d := pushes[0].Allow("app-1"); d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("third publish in the second across nodes: %+v, want refused", d)
	}
	if !pushes[1].Allow("app-2").Allowed {
		t.Fatal("another app's budget is its own")
	}
}
