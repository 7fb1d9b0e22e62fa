package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockudo/sockudo/console"
)

func TestClusterModeByConfiguration(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name           string
		env            map[string]string
		node, adapters bool
	}{
		{"local: nothing, no Redis client", nil, false, false},
		{"shared limits only: a node, no adapters", map[string]string{"RATE_LIMITER_DRIVER": "redis"}, true, false},
		{"redis mode: node, broker, presence", map[string]string{"ADAPTER_DRIVER": "redis"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			m, err := c.openCluster(log)
			if err != nil {
				t.Fatal(err)
			}
			defer m.close()
			if (m.node != nil) != tc.node || (m.broker != nil) != tc.adapters || (m.presence != nil) != tc.adapters {
				t.Fatalf("node %v broker %v presence %v", m.node != nil, m.broker != nil, m.presence != nil)
			}
			if want := map[bool]int{false: 0, true: 1}[tc.node] + map[bool]int{false: 0, true: 2}[tc.adapters]; len(m.serverOptions()) != want {
				t.Fatalf("%d server options, want %d", len(m.serverOptions()), want)
			}
			if (m.client() != nil) != tc.node {
				t.Fatal("the limiters' client does not follow the node")
			}
			var bg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			m.run(ctx, &bg) // the loops stop with ctx
			cancel()
			bg.Wait()
		})
	}
}

// Until this node receives the other nodes' events, /up says degraded and
// sockudo_redis_up is 0, even though Redis answers.
func TestClusterModeIsDegradedUntilSubscribed(t *testing.T) {
	m := openTestCluster(t, map[string]string{"ADAPTER_DRIVER": "redis", "REDIS_URL": "redis://127.0.0.1:1/0"})
	if err := m.healthy(); err == nil || !strings.Contains(err.Error(), "subscribed") {
		t.Fatalf("health before the subscription: %v", err)
	}
	reg := prometheus.NewRegistry()
	m.register(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			if g := x.GetGauge(); g != nil {
				got[mf.GetName()] = g.GetValue()
			}
			if c := x.GetCounter(); c != nil {
				got[mf.GetName()] = c.GetValue()
			}
		}
	}
	if v, ok := got["sockudo_redis_up"]; !ok || v != 0 {
		t.Fatalf("sockudo_redis_up %v (%v)", v, ok)
	}
	if _, ok := got["sockudo_redis_errors_total"]; !ok {
		t.Fatal("no sockudo_redis_errors_total")
	}
}

// openTestCluster opens what main opens for env, closed when the test ends.
func openTestCluster(t *testing.T, env map[string]string) clusterMode {
	t.Helper()
	c, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.openCluster(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	return m
}

// The console's nodes panel: this node listed alive from the real Redis
// (under a prefix of its own), and an outage reported without quoting
// REDIS_URL.
func TestConsoleNodes(t *testing.T) {
	for _, env := range []map[string]string{nil, {"RATE_LIMITER_DRIVER": "redis"}} {
		if m := openTestCluster(t, env); m.consoleNodes() != nil {
			t.Fatalf("%v: nodes without Presence (no heartbeats)", env)
		}
	}

	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "sockudo-test-" + hex.EncodeToString(b[:])
	m := openTestCluster(t, map[string]string{"ADAPTER_DRIVER": "redis", "DATABASE_REDIS_KEY_PREFIX": prefix,
		"CLUSTER_HEALTH_HEARTBEAT_INTERVAL": "100", "CLUSTER_HEALTH_NODE_TIMEOUT": "1000"})
	if err := m.node.Client().Ping(context.Background()).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis is not running on 127.0.0.1:6379: %v", err)
		}
		t.Skipf("Redis is not running on 127.0.0.1:6379: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, _ := m.node.Client().Keys(ctx, prefix+":*").Result(); len(keys) > 0 {
			m.node.Client().Del(ctx, keys...)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	m.run(ctx, &bg)
	defer func() { cancel(); bg.Wait() }()
	nodes := m.consoleNodes()
	var v console.ClusterView
	deadline := time.Now().Add(10 * time.Second)
	for { // polling a state: the first heartbeat and the bus subscription
		if v = nodes.Nodes(context.Background(), 10); v.Degraded == "" && v.Total == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never listed: %+v", v)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v.Self != m.node.ID() || len(v.Nodes) != 1 || v.Nodes[0].ID != v.Self || v.Nodes[0].State != "alive" {
		t.Fatalf("view %+v", v)
	}

	dm := openTestCluster(t, map[string]string{"ADAPTER_DRIVER": "redis", "REDIS_URL": "redis://admin:hunter2-pass@127.0.0.1:1/0"})
	dv := dm.consoleNodes().Nodes(context.Background(), 10)
	j, _ := json.Marshal(dv)
	if dv.Degraded == "" || dv.Self == "" || strings.Contains(string(j), "hunter2") || strings.Contains(string(j), "127.0.0.1") {
		t.Fatalf("degraded view %s", j)
	}
}
