package cluster

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/servertest"
)

// recorder counts what a broker hands to its server.
type recorder struct {
	mu       sync.Mutex
	messages []server.Message
	commands []server.Command
}

func (r *recorder) HandleMessage(m server.Message) {
	r.mu.Lock()
	r.messages = append(r.messages, m)
	r.mu.Unlock()
}

func (r *recorder) HandleCommand(c server.Command) {
	r.mu.Lock()
	r.commands = append(r.commands, c)
	r.mu.Unlock()
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.messages), len(r.commands)
}

// startBroker runs a broker of a new node under prefix and waits for its
// subscription.
func startBroker(t *testing.T, url, prefix string) *Broker {
	t.Helper()
	n := testNode(t, url, prefix)
	b := NewBroker(n)
	run(t, b.Run)
	select {
	case <-b.Subscribed():
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not subscribe")
	}
	return b
}

func TestBrokerContract(t *testing.T) {
	requireRedis(t)
	servertest.Broker(t, func(t *testing.T) server.Broker { return startBroker(t, testRedis, testPrefix(t)) })
}

func TestBrokerDeliversOnEveryNodeExactlyOnce(t *testing.T) {
	requireRedis(t)
	prefix := testPrefix(t)
	nodes := []*Broker{startBroker(t, testRedis, prefix), startBroker(t, testRedis, prefix), startBroker(t, testRedis, prefix)}
	recs := make([]*recorder, len(nodes))
	for i, b := range nodes {
		recs[i] = &recorder{}
		if err := b.Register(recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Another cluster on the same Redis must hear nothing.
	other := startBroker(t, testRedis, testPrefix(t))
	otherRec := &recorder{}
	_ = other.Register(otherRec)

	ctx := context.Background()
	const n = 50
	for i := 0; i < n; i++ {
		m := server.Message{App: "a", Channel: "ch", Frame: []byte{byte(i)}, Except: "1.2"}
		if err := nodes[i%len(nodes)].Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[1].Command(ctx, server.Command{Kind: server.CommandTerminate, App: "a", User: "u"}); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		waitFor(t, "every message on every node", func() bool { m, c := r.counts(); return m >= n && c >= 1 })
		// Give stragglers (a duplicate) the time a delivery takes.
		_ = nodes[0].Publish(ctx, server.Message{App: "a", Channel: "end", Frame: []byte("end")})
		waitFor(t, "the end marker", func() bool { m, _ := r.counts(); return m >= n+1+i })
	}
	for i, r := range recs {
		r.mu.Lock()
		seen := map[byte]int{}
		for _, m := range r.messages {
			if m.Channel == "ch" {
				seen[m.Frame[0]]++
				if m.Except != "1.2" || m.App != "a" {
					t.Errorf("node %d: message arrived as %+v", i, m)
				}
			}
		}
		if len(seen) != n {
			t.Errorf("node %d got %d distinct messages, want %d", i, len(seen), n)
		}
		for f, c := range seen {
			if c != 1 {
				t.Errorf("node %d got message %d %d times", i, f, c)
			}
		}
		if len(r.commands) != 1 {
			t.Errorf("node %d got %d commands", i, len(r.commands))
		}
		r.mu.Unlock()
	}
	if m, c := otherRec.counts(); m+c != 0 {
		t.Fatalf("a cluster with another prefix received %d messages and %d commands", m, c)
	}
}

func TestBrokerSharesCacheChannels(t *testing.T) {
	requireRedis(t)
	prefix := testPrefix(t)
	a, b := startBroker(t, testRedis, prefix), startBroker(t, testRedis, prefix)
	ctx := context.Background()
	e := server.CacheEntry{Event: "ev", Data: `{"x":1}`, Frame: []byte("frame"), Expires: time.Now().Add(time.Minute)}
	if err := a.SetCache(ctx, "app", "cache-x", e); err != nil {
		t.Fatal(err)
	}
	got, ok, err := b.Cache(ctx, "app", "cache-x")
	if err != nil || !ok || got.Event != "ev" || got.Data != e.Data || !bytes.Equal(got.Frame, e.Frame) {
		t.Fatalf("node b read %+v %v %v", got, ok, err)
	}
	if d := time.Until(got.Expires); d <= 50*time.Second || d > time.Minute {
		t.Fatalf("expiry %v from now, want about a minute", d)
	}
}

func TestBrokerWithoutRedisStillDeliversLocally(t *testing.T) {
	n, err := Open(Config{URL: "redis://127.0.0.1:1/0", Prefix: "t", Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b := NewBroker(n)
	run(t, b.Run)
	run(t, n.Run)
	r := &recorder{}
	_ = b.Register(r)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		start := time.Now()
		err := b.Publish(ctx, server.Message{App: "a", Channel: "c", Frame: []byte("x")})
		if err == nil {
			t.Fatal("a publish without Redis reported success")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a publish took %v without Redis", d)
		}
	}
	_ = b.Command(ctx, server.Command{Kind: server.CommandOffline, App: "a", User: "u"})
	if m, c := r.counts(); m != 20 || c != 1 {
		t.Fatalf("local delivery: %d messages, %d commands; want 20 and 1", m, c)
	}
	if n.Healthy() == nil {
		t.Fatal("/up would not show the outage")
	}
	if s := n.Healthy().Error(); strings.Contains(s, "password") {
		t.Fatalf("health %q", s)
	}
}

func TestBusEncodingRoundTrips(t *testing.T) {
	cases := []server.Message{
		{App: "a", Channel: "c", Frame: []byte("f")},
		{App: "a", Channel: "#server-to-user-u", User: "u", Frame: []byte{}, Except: "1.1"},
		{App: strings.Repeat("x", 300), Channel: "c", Frame: bytes.Repeat([]byte{0, 1}, 70000)},
	}
	for _, m := range cases {
		origin, kind, r, ok := decodeHeader(encodeMessage("node1", m))
		if !ok || origin != "node1" || kind != kindMessage {
			t.Fatalf("header: %q %d %v", origin, kind, ok)
		}
		got, ok := decodeMessage(r)
		if !ok || got.App != m.App || got.Channel != m.Channel || got.User != m.User || got.Except != m.Except || !bytes.Equal(got.Frame, m.Frame) {
			t.Fatalf("message %+v came back as %+v (%v)", m, got, ok)
		}
	}
	c := server.Command{Kind: server.CommandOnline, App: "a", User: "u1"}
	_, kind, r, ok := decodeHeader(encodeCommand("n", c))
	if got, ok2 := decodeCommand(r); !ok || !ok2 || kind != kindCommand || got != c {
		t.Fatalf("command %+v came back as %+v", c, got)
	}
}

// FuzzBusDecode feeds the bus decoder what a hostile or newer peer could
// publish on the channel: it must never panic or read out of bounds.
func FuzzBusDecode(f *testing.F) {
	f.Add(encodeMessage("n", server.Message{App: "a", Channel: "c", Frame: []byte("x")}))
	f.Add(encodeCommand("n", server.Command{Kind: 1, App: "a", User: "u"}))
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(encodeCache(server.CacheEntry{Event: "e", Frame: []byte("f")}))
	f.Fuzz(func(t *testing.T, p []byte) {
		if _, kind, r, ok := decodeHeader(p); ok {
			switch kind {
			case kindMessage:
				decodeMessage(r)
			case kindCommand:
				decodeCommand(r)
			}
		}
		decodeCache(p)
		decodeEntry(string(p))
	})
}
