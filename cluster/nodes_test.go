package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestNodesListsTheClusterAsRedisSeesIt(t *testing.T) {
	requireRedis(t)
	ctx := context.Background()
	prefix := testPrefix(t)
	a, b := NewPresence(testNode(t, testRedis, prefix)), NewPresence(testNode(t, testRedis, prefix))
	a.tick(ctx)
	b.tick(ctx)
	if _, err := a.Join(ctx, "app", "presence-room", "1.1", mem("u1"), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SignIn(ctx, "app", "u1", "1.1"); err != nil {
		t.Fatal(err)
	}
	// Three nodes in the other states, written as the scripts leave them.
	rdb := a.n.rdb
	rdb.ZAdd(ctx, prefix+":nodes", redis.Z{Score: 0, Member: "leaving-node"})
	rdb.SAdd(ctx, prefix+":node:leaving-node", "x")
	rdb.ZAdd(ctx, prefix+":nodes", redis.Z{Score: 1000, Member: "silent-node"})
	rdb.ZAdd(ctx, prefix+":reaping", redis.Z{Score: 1000, Member: "reaped-node"})

	nodes, total, err := b.n.Nodes(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || len(nodes) != 5 {
		t.Fatalf("total %d, nodes %+v", total, nodes)
	}
	got := map[string]NodeInfo{}
	for _, n := range nodes {
		got[n.ID] = n
	}
	tcs := []struct {
		id      string
		state   string
		entries int64
	}{
		{a.n.ID(), NodeAlive, 2},
		{b.n.ID(), NodeAlive, 0},
		{"leaving-node", NodeLeaving, 1},
		{"silent-node", NodeSilent, 0},
		{"reaped-node", NodeReaping, 0},
	}
	for _, tc := range tcs {
		n, ok := got[tc.id]
		if !ok || n.State != tc.state || n.Entries != tc.entries {
			t.Errorf("%s: got %+v (listed %v), want state %s entries %d", tc.id, n, ok, tc.state, tc.entries)
		}
	}
	if age := got[a.n.ID()].HeartbeatAge; age < 0 || age > 5*time.Second {
		t.Errorf("a live node's heartbeat age %v", age)
	}

	// The list is capped; the total still counts every node.
	nodes, total, err = b.n.Nodes(ctx, 2)
	if err != nil || len(nodes) != 2 || total != 5 {
		t.Fatalf("capped: %d nodes, total %d, err %v", len(nodes), total, err)
	}
}

func TestNodesDoesNotWaitOnADownRedis(t *testing.T) {
	n, err := Open(Config{URL: "redis://127.0.0.1:1/0", Prefix: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, _, err := n.Nodes(context.Background(), 10); err == nil {
		t.Fatal("no error from an unreachable Redis")
	}
	// Now known to be down: answered without a round trip.
	if _, _, err := n.Nodes(context.Background(), 10); !errors.Is(err, errDegraded) {
		t.Fatalf("degraded: %v", err)
	}
}
