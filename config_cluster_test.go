package main

import (
	"strings"
	"testing"
)

func TestClusterConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantBad string
		redis   bool
		shared  bool
	}{
		{"default is one node", nil, "", false, false},
		{"redis mode shares limits", map[string]string{"ADAPTER_DRIVER": "redis"}, "", true, true},
		{"redis mode, limits per node", map[string]string{"ADAPTER_DRIVER": "redis", "RATE_LIMITER_DRIVER": "memory"}, "", true, false},
		{"unknown driver", map[string]string{"ADAPTER_DRIVER": "nats"}, "ADAPTER_DRIVER", false, false},
		{"bad url is not quoted", map[string]string{"ADAPTER_DRIVER": "redis", "REDIS_URL": "http://:hunter2@x"}, "REDIS_URL", false, false},
		{"timeout below two heartbeats", map[string]string{"CLUSTER_HEALTH_HEARTBEAT_INTERVAL": "1000", "CLUSTER_HEALTH_NODE_TIMEOUT": "1500"}, "CLUSTER_HEALTH_NODE_TIMEOUT", false, false},
		{"prefix with a brace", map[string]string{"DATABASE_REDIS_KEY_PREFIX": "a{b}"}, "DATABASE_REDIS_KEY_PREFIX", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if tc.wantBad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantBad+":") || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %v, want a problem naming %s (and no password)", err, tc.wantBad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Cluster.redis() != tc.redis || c.Cluster.sharedLimits() != tc.shared {
				t.Fatalf("redis %v shared %v", c.Cluster.redis(), c.Cluster.sharedLimits())
			}
		})
	}
}
