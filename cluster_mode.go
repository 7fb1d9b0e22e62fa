package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/cluster"
	"github.com/sockudo/sockudo/console"
	"github.com/sockudo/sockudo/server"
)

// clusterMode is what Redis mode adds to a node: the Redis node, and in
// ADAPTER_DRIVER=redis its Broker and Presence. The zero value (local
// mode) adds nothing: no Redis round trip anywhere.
type clusterMode struct {
	node     *cluster.Node     // nil in local mode with memory limits
	broker   *cluster.Broker   // nil unless ADAPTER_DRIVER=redis
	presence *cluster.Presence // likewise
}

// openCluster builds the Redis node when Redis mode or the shared rate
// limits need it. It does not wait for Redis: a node starts degraded and
// catches up when Redis answers.
func (c Config) openCluster(log *slog.Logger) (clusterMode, error) {
	cl := c.Cluster
	if !cl.redis() && !cl.sharedLimits() {
		return clusterMode{}, nil
	}
	// go-redis logs each failed dial itself; the node logs an outage once.
	redis.SetLogger(redisLog{log.With("component", "redis")})
	n, err := cluster.Open(cluster.Config{
		URL:         cl.RedisURL,
		Prefix:      cl.Prefix,
		Heartbeat:   time.Duration(cl.HeartbeatMs) * time.Millisecond,
		NodeTimeout: time.Duration(cl.NodeTimeoutMs) * time.Millisecond,
		Log:         log,
	})
	if err != nil {
		return clusterMode{}, err
	}
	m := clusterMode{node: n}
	if cl.redis() {
		m.broker = cluster.NewBroker(n)
		m.presence = cluster.NewPresence(n)
		log.Info("Redis mode: this node shares events, presence and counts with the cluster", "node", n.ID(), "prefix", cl.Prefix)
	}
	return m, nil
}

// serverOptions hands the Broker and Presence to server.New, and Redis'
// health to /up.
func (m clusterMode) serverOptions() []server.Option {
	if m.node == nil {
		return nil
	}
	opts := []server.Option{server.WithHealthCheck("redis", m.healthy)}
	if m.broker != nil {
		opts = append(opts, server.WithBroker(m.broker), server.WithPresence(m.presence))
	}
	return opts
}

// healthy is /up's Redis check: Redis answers and, in Redis mode, this
// node receives the other nodes' events.
func (m clusterMode) healthy() error {
	if err := m.node.Healthy(); err != nil {
		return err
	}
	if m.broker != nil && !m.broker.Ready() {
		return errors.New("not subscribed to the other nodes' events yet")
	}
	return nil
}

// client is the Redis client for the shared limiters (nil in local mode).
func (m clusterMode) client() *redis.Client {
	if m.node == nil {
		return nil
	}
	return m.node.Client()
}

// run starts the node's loops (pings, the bus subscription, heartbeats and
// reaping) on bg; they stop when ctx ends, after the server has drained,
// so the last leaves reach Redis first.
func (m clusterMode) run(ctx context.Context, bg *sync.WaitGroup) {
	if m.node == nil {
		return
	}
	loops := []func(context.Context){m.node.Run}
	if m.broker != nil {
		loops = append(loops, m.broker.Run, m.presence.Run)
	}
	for _, f := range loops {
		bg.Add(1)
		go func() { defer bg.Done(); f(ctx) }()
	}
}

// register adds Redis' state to the server's metrics.
func (m clusterMode) register(reg *prometheus.Registry) {
	if m.node == nil {
		return
	}
	n := m.node
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sockudo_redis_up",
			Help: "1 while Redis answers this node, 0 during an outage (local clients are still served).",
		}, func() float64 {
			if m.healthy() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sockudo_redis_errors_total",
			Help: "Redis calls that failed on this node.",
		}, func() float64 { return float64(n.Errors()) }),
	)
}

// close closes the Redis client, after the loops have stopped.
func (m clusterMode) close() {
	if m.node != nil {
		_ = m.node.Close()
	}
}

// consoleNodes is the console's view of the cluster in Redis mode, nil
// otherwise: the heartbeats are Presence's, so with only the shared rate
// limits in Redis there are no nodes to show.
func (m clusterMode) consoleNodes() console.Nodes {
	if m.presence == nil {
		return nil
	}
	return clusterNodes{m}
}

// clusterNodes answers console.Nodes from the node's Redis.
type clusterNodes struct{ m clusterMode }

func (c clusterNodes) Nodes(ctx context.Context, limit int) console.ClusterView {
	v := console.ClusterView{Self: c.m.node.ID(), Nodes: []console.NodeView{}}
	// The reasons never quote Redis' errors: they may name hosts an app's
	// team need not see, and /up and the logs already carry them.
	if c.m.healthy() != nil {
		v.Degraded = "Redis is unreachable from this node: it serves its own clients only"
		return v
	}
	nodes, total, err := c.m.node.Nodes(ctx, limit)
	if err != nil {
		v.Degraded = "reading the cluster's nodes from Redis failed"
		return v
	}
	v.Total = total
	for _, n := range nodes {
		v.Nodes = append(v.Nodes, console.NodeView{ID: n.ID, HeartbeatAgeMs: n.HeartbeatAge.Milliseconds(),
			State: n.State, Entries: n.Entries})
	}
	return v
}

// redisLog sends go-redis' own messages (a failed dial each retry) to the
// debug level: the node reports an outage once, at error.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
