package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	c, err := loadConfig(map[string]string{"ADAPTER_DRIVER": "redis", "REDIS_URL": "redis://127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.openCluster(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
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
