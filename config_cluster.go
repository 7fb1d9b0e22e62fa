package main

import (
	"net/url"
	"strings"
)

// clusterConfig is Redis mode: several nodes sharing one Redis act as one
// server. Names are Sockudo's, so its users can swap binaries.
type clusterConfig struct {
	// Driver is "local" (one node, nothing shared) or "redis".
	Driver string `env:"ADAPTER_DRIVER" envDefault:"local"`
	// RedisURL locates Redis: redis://[user:password@]host:port/db, or
	// rediss:// for TLS. A secret when it has a password: never logged.
	RedisURL string `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	// Prefix starts every key and channel sockudo uses in Redis, so that
	// clusters (or tests) can share one Redis.
	Prefix string `env:"DATABASE_REDIS_KEY_PREFIX" envDefault:"sockudo"`
	// HeartbeatMs is how often a node tells the others it is alive.
	HeartbeatMs int `env:"CLUSTER_HEALTH_HEARTBEAT_INTERVAL" envDefault:"10000"`
	// NodeTimeoutMs is how long a silent node is given before the others
	// remove its sockets' presence, counts and sign-ins.
	NodeTimeoutMs int `env:"CLUSTER_HEALTH_NODE_TIMEOUT" envDefault:"30000"`
	// LimiterDriver is where the rate limits count: "memory" (per node)
	// or "redis" (shared by the cluster); empty follows ADAPTER_DRIVER.
	LimiterDriver string `env:"RATE_LIMITER_DRIVER"`
}

// redis reports whether the cluster is in Redis mode.
func (c clusterConfig) redis() bool { return strings.EqualFold(c.Driver, "redis") }

// sharedLimits reports whether the rate limiters count in Redis.
func (c clusterConfig) sharedLimits() bool {
	if c.LimiterDriver == "" {
		return c.redis()
	}
	return strings.EqualFold(c.LimiterDriver, "redis")
}

// clusterProblems checks the Redis mode settings.
func (c Config) clusterProblems(ch *checks) {
	cl := c.Cluster
	switch strings.ToLower(cl.Driver) {
	case "local", "redis":
	default:
		ch.bad("ADAPTER_DRIVER", "must be local or redis, got %q", cl.Driver)
	}
	switch strings.ToLower(cl.LimiterDriver) {
	case "", "memory", "redis":
	default:
		ch.bad("RATE_LIMITER_DRIVER", "must be memory or redis, got %q", cl.LimiterDriver)
	}
	if cl.redis() || cl.sharedLimits() {
		u, err := url.Parse(cl.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			// Never quote the value: it may hold a password.
			ch.bad("REDIS_URL", "must be redis://host:port[/db] or rediss://… for TLS")
		}
	}
	if p := cl.Prefix; p == "" || strings.ContainsAny(p, " \t\r\n{}") || len(p) > 64 {
		ch.bad("DATABASE_REDIS_KEY_PREFIX", "must be 1-64 characters without spaces or braces, got %q", p)
	}
	ch.intIn("CLUSTER_HEALTH_HEARTBEAT_INTERVAL", cl.HeartbeatMs, 100, 600_000)
	ch.intIn("CLUSTER_HEALTH_NODE_TIMEOUT", cl.NodeTimeoutMs, 300, 3_600_000)
	if cl.NodeTimeoutMs < 2*cl.HeartbeatMs {
		ch.bad("CLUSTER_HEALTH_NODE_TIMEOUT", "must be at least twice CLUSTER_HEALTH_HEARTBEAT_INTERVAL (%d ms), got %d",
			cl.HeartbeatMs, cl.NodeTimeoutMs)
	}
}
