package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNodeReportsOutageAndRecovery(t *testing.T) {
	// Nothing listens on port 1: every call fails fast.
	n, err := Open(Config{URL: "redis://127.0.0.1:1/0", Prefix: "t", Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if got := n.key("a", "b"); got != "t:a:b" {
		t.Fatalf("key %q", got)
	}
	if n.Healthy() != nil {
		t.Fatal("unhealthy before any call")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = n.observe("ping", n.rdb.Ping(ctx).Err())
	if err == nil || n.Healthy() == nil || n.Errors() != 1 {
		t.Fatalf("a failed call: err %v, healthy %v, errors %d", err, n.Healthy(), n.Errors())
	}
	if errors.Is(n.Healthy(), context.Canceled) {
		t.Fatal("unexpected")
	}
}

func TestOpenRefusesABadURLWithoutQuotingIt(t *testing.T) {
	_, err := Open(Config{URL: "http://user:hunter2@x"})
	if err == nil {
		t.Fatal("accepted an http URL")
	}
	if s := err.Error(); len(s) == 0 || contains(s, "hunter2") {
		t.Fatalf("error %q", s)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
