// Package cluster is Redis mode: several sockudo nodes sharing one Redis
// act as one server. It implements the server's Broker (events, commands
// and cache channels reach every node over one pub/sub channel) and
// Presence (subscriptions, presence members and signed-in users are kept
// in Redis per node, with heartbeats, and a dead node's entries are
// removed by the others). The server never imports this package: main
// builds a Node and passes its Broker and Presence with server.WithBroker
// and server.WithPresence.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is one node's view of the cluster.
type Config struct {
	// URL locates Redis: redis://[user:password@]host:port/db, or
	// rediss:// for TLS. It may hold a password: never logged.
	URL string
	// Prefix starts every key and pub/sub channel, so that clusters (and
	// tests) can share one Redis.
	Prefix string
	// Heartbeat is how often the node tells the others it is alive.
	Heartbeat time.Duration
	// NodeTimeout is how long a silent node is given before the others
	// remove its entries.
	NodeTimeout time.Duration
	// OpTimeout bounds every Redis call made on a client's behalf, so that
	// a Redis outage slows a subscribe by at most this much. Zero means
	// 500 ms.
	OpTimeout time.Duration
	// Log receives outages and recoveries (once per transition).
	Log *slog.Logger
}

// Node is this process's connection to the cluster: the Redis client, the
// node's id, and whether Redis answers. Broker and Presence share it.
type Node struct {
	cfg    Config
	id     string
	rdb    *redis.Client
	log    *slog.Logger
	prefix string

	// down is set while Redis fails; lastErr is the failure /up reports.
	down    atomic.Bool
	lastErr atomic.Pointer[string]
	errors  atomic.Uint64 // Redis calls that failed, for metrics

	// kick wakes Run to ping at once when a call fails, so a short blip
	// leaves degraded mode within milliseconds.
	kick chan struct{}

	mu        sync.Mutex // guards onRecover
	onRecover []func(ctx context.Context)
}

// Open builds a Node. It does not wait for Redis: a node starts and serves
// its local clients while Redis is down (degraded), and catches up when
// Redis answers (see Run).
func Open(cfg Config) (*Node, error) {
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, errors.New("cluster: REDIS_URL is not a redis:// or rediss:// URL") // never quote it: it may hold a password
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 500 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = 3 * cfg.Heartbeat
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	opt.ReadTimeout = cfg.OpTimeout
	opt.WriteTimeout = cfg.OpTimeout
	opt.DialTimeout = 2 * cfg.OpTimeout
	opt.MaxRetries = -1 // a failed call is reported, not retried behind a client's back (0 would mean 3)
	opt.ContextTimeoutEnabled = true
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{
		cfg:    cfg,
		id:     hex.EncodeToString(b[:]),
		rdb:    redis.NewClient(opt),
		log:    cfg.Log.With("component", "cluster"),
		prefix: cfg.Prefix,
		kick:   make(chan struct{}, 1),
	}
	return n, nil
}

// ID is this node's random id, new at every start: entries a previous run
// of this process left behind belong to a dead node.
func (n *Node) ID() string { return n.id }

// Client is the Redis client (for the shared rate limiters).
func (n *Node) Client() *redis.Client { return n.rdb }

// Config returns the node's configuration, defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// key joins the prefix and parts with ':' into a Redis key.
func (n *Node) key(parts ...string) string {
	k := n.prefix
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// opContext bounds one Redis call made on a client's behalf.
func (n *Node) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.cfg.OpTimeout)
}

// observe records the outcome of a Redis call: a failure marks the node
// degraded (logged once), a success after failures marks it recovered.
// It returns err.
func (n *Node) observe(op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	n.errors.Add(1)
	msg := fmt.Sprintf("%s: %v", op, err)
	n.lastErr.Store(&msg)
	if !n.down.Swap(true) {
		n.log.Error("Redis is unreachable: serving local clients only until it returns", "op", op, "err", err)
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	return fmt.Errorf("cluster: %s: %w", op, err)
}

// Healthy reports nil while Redis answers, else the last failure; main
// passes it to server.WithHealthCheck, so /up shows the outage.
func (n *Node) Healthy() error {
	if !n.down.Load() {
		return nil
	}
	if p := n.lastErr.Load(); p != nil {
		return errors.New(*p)
	}
	return errors.New("redis unreachable")
}

// errDegraded answers calls skipped while Redis is known to be down: the
// node serves its local clients without paying a timeout per call, and
// Run's pings find when Redis is back.
var errDegraded = errors.New("cluster: Redis unreachable (degraded)")

// degraded reports whether Redis failed and has not answered a ping since.
func (n *Node) degraded() bool { return n.down.Load() }

// Errors counts failed Redis calls since start.
func (n *Node) Errors() uint64 { return n.errors.Load() }

// OnRecover registers f to run (on Run's goroutine) each time Redis
// answers again after an outage, and once when Run first reaches Redis:
// Presence rewrites this node's entries there.
func (n *Node) OnRecover(f func(ctx context.Context)) {
	n.mu.Lock()
	n.onRecover = append(n.onRecover, f)
	n.mu.Unlock()
}

// Run pings Redis until ctx ends, with backoff while it is down, and runs
// the OnRecover functions when it answers again. Its caller owns it.
func (n *Node) Run(ctx context.Context) {
	const maxWait = 5 * time.Second
	wait := 100 * time.Millisecond
	first, failing := true, false
	for {
		pctx, cancel := n.opContext(ctx)
		err := n.rdb.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			_ = n.observe("ping", err)
			if !failing {
				wait = 50 * time.Millisecond
			}
			failing = true
			wait = min(wait*2, maxWait)
		} else {
			failing = false
			wait = n.cfg.Heartbeat / 4
			if n.down.Swap(false) || first {
				if !first {
					n.log.Info("Redis answers again: resynchronising this node's presence")
				}
				first = false
				n.mu.Lock()
				fs := append([]func(context.Context){}, n.onRecover...)
				n.mu.Unlock()
				for _, f := range fs {
					f(ctx)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-n.kick:
		}
	}
}

// Close closes the Redis client; call it after Run, Broker and Presence
// have stopped.
func (n *Node) Close() error { return n.rdb.Close() }
