package console

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNodes is a cluster of n nodes; it counts its reads.
type fakeNodes struct {
	n     int
	reads atomic.Int32
	limit atomic.Int32
}

func (f *fakeNodes) Nodes(_ context.Context, limit int) ClusterView {
	f.reads.Add(1)
	f.limit.Store(int32(limit))
	v := ClusterView{Self: "node-0", Total: f.n}
	for i := range f.n { // more than asked: the console caps it anyway
		v.Nodes = append(v.Nodes, NodeView{ID: fmt.Sprintf("node-%d", i), HeartbeatAgeMs: 120, State: "alive", Entries: 3})
	}
	return v
}

func TestNodesOnlyInRedisMode(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	b := e.browser()
	_, sess, _ := b.login(map[string]string{"token": testToken})
	if sess["cluster"] != false {
		t.Fatalf("local mode says cluster: %v", sess["cluster"])
	}
	if code, _, _ := b.do("GET", "/console/api/nodes", nil, false); code != 404 {
		t.Fatalf("nodes in local mode: %d", code)
	}
}

func TestNodesPanel(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	nodes := &fakeNodes{n: 100}
	e := newEnvDeps(t, Config{}, nil, func(d *Deps) { d.Nodes = nodes; d.Now = clock })

	op := e.browser()
	_, sess, _ := op.login(map[string]string{"token": testToken})
	if sess["cluster"] != true {
		t.Fatalf("Redis mode session: %v", sess)
	}
	code, body, _ := op.do("GET", "/console/api/nodes", nil, false)
	if code != 200 || body["self"] != "node-0" || body["total"] != float64(100) {
		t.Fatalf("nodes: %d %v", code, body)
	}
	list, _ := body["nodes"].([]any)
	if len(list) != maxNodes || nodes.limit.Load() != maxNodes {
		t.Fatalf("listed %d nodes, asked for %d; want the cap %d", len(list), nodes.limit.Load(), maxNodes)
	}
	first, _ := list[0].(map[string]any)
	if first["id"] != "node-0" || first["state"] != "alive" || first["heartbeat_age_ms"] != float64(120) || first["entries"] != float64(3) {
		t.Fatalf("node: %v", first)
	}

	// Polls within a second share one read, whoever polls.
	for range 5 {
		op.do("GET", "/console/api/nodes", nil, false)
	}
	if n := nodes.reads.Load(); n != 1 {
		t.Fatalf("%d reads within the cache's second", n)
	}
	now.Add(int64(nodesCacheTTL))
	op.do("GET", "/console/api/nodes", nil, false)
	if n := nodes.reads.Load(); n != 2 {
		t.Fatalf("%d reads after the cache expired", n)
	}

	// An app's login sees its own app, not the cluster.
	app := e.browser()
	app.login(map[string]string{"key": "key-one", "secret": testSecret})
	if code, _, _ := app.do("GET", "/console/api/nodes", nil, false); code != 403 {
		t.Fatalf("app login: %d", code)
	}
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	for _, body := range e.rec.bodies {
		for _, secret := range []string{testSecret, testSecret2, testToken} {
			if bytes.Contains(body, []byte(secret)) {
				t.Fatalf("a response contains %q:\n%s", secret, body)
			}
		}
	}
}
