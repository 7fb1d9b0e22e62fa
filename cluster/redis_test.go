package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The tests run against a real Redis: the machine's at 127.0.0.1:6379
// (scripts/test.sh starts one), each test under its own key prefix.
const testRedis = "redis://127.0.0.1:6379/0"

// requireRedis skips when no Redis answers, except in CI, where one must.
func requireRedis(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis is not running on 127.0.0.1:6379: %v", err)
		}
		t.Skip("Redis is not running on 127.0.0.1:6379")
	}
	c.Close()
}

func testPrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sockudo-test-" + hex.EncodeToString(b[:])
}

// testNode opens a node on url under prefix, with fast heartbeats, and
// cleans the prefix's keys when the test ends.
func testNode(t testing.TB, url, prefix string) *Node {
	t.Helper()
	return testNodeTimeout(t, url, prefix, 300*time.Millisecond)
}

// testNodeTimeout is testNode with another node timeout: a test whose live
// nodes must never be taken for dead gives them room for a starved
// scheduler (the race detector on a loaded 2-core machine).
func testNodeTimeout(t testing.TB, url, prefix string, timeout time.Duration) *Node {
	t.Helper()
	n, err := Open(Config{URL: url, Prefix: prefix, Heartbeat: 50 * time.Millisecond, NodeTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := n.rdb.Keys(ctx, prefix+":*").Result()
		if len(keys) > 0 {
			n.rdb.Del(ctx, keys...)
		}
		n.Close()
	})
	return n
}

// run starts f and stops it (waiting) when the test ends.
func run(t testing.TB, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ownRedis starts a private redis-server on a free loopback port for tests
// that stop it; it returns the URL and start/stop functions.
func ownRedis(t *testing.T) (url string, start, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url = "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	var cmd *exec.Cmd
	start = func() {
		t.Helper()
		cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
		defer c.Close()
		waitFor(t, "redis-server to answer", func() bool { return c.Ping(context.Background()).Err() == nil })
	}
	stop = func() {
		if cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			cmd = nil
		}
	}
	t.Cleanup(stop)
	return url, start, stop
}
