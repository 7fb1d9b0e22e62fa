package server

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestChannelsPerConnectionCap: a subscribe beyond MaxChannelsPerConnection
// is refused with pusher:subscription_error 4100 and the socket stays;
// unsubscribing frees a slot.
func TestChannelsPerConnectionCap(t *testing.T) {
	ts := newTestServer(t, Config{MaxChannelsPerConnection: 3})
	c := ts.dial(t)
	for i := range 3 {
		c.subscribe("c" + strconv.Itoa(i))
	}
	c.sendJSON(`{"event":"pusher:subscribe","data":{"channel":"c3"}}`)
	f := c.expect("pusher:subscription_error")
	var d struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil || d.Status != 4100 || f.Channel != "c3" {
		t.Fatalf("refusal %s, want status 4100 on c3", f.raw)
	}
	c.sendJSON(`{"event":"pusher:unsubscribe","data":{"channel":"c0"}}`)
	c.subscribe("c3")
}

// TestConnSubsIndex keeps the subscription list and its index in step
// across the switch between scanning and indexing.
func TestConnSubsIndex(t *testing.T) {
	tcs := []struct {
		name      string
		add, drop int // add channels 0..add-1, then drop 0..drop-1
	}{
		{"small", 5, 3},
		{"at the threshold", subsIndexed, 1},
		{"indexed", subsIndexed + 1, 0},
		{"indexed, then shrinks to a scan", 3 * subsIndexed, 3*subsIndexed - 2},
		{"large", 2000, 1000},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c := &conn{}
			for i := range tc.add {
				c.addSubLocked(&subscription{name: "ch" + strconv.Itoa(i)})
			}
			for i := range tc.drop {
				if s := c.removeSubLocked("ch" + strconv.Itoa(i)); s == nil || s.name != "ch"+strconv.Itoa(i) {
					t.Fatalf("remove ch%d: %v", i, s)
				}
			}
			if got, want := len(c.subs), tc.add-tc.drop; got != want {
				t.Fatalf("%d subscriptions, want %d", got, want)
			}
			if c.subIdx != nil && len(c.subIdx) != len(c.subs) {
				t.Fatalf("index has %d names for %d subscriptions", len(c.subIdx), len(c.subs))
			}
			for i := range tc.add {
				name := "ch" + strconv.Itoa(i)
				if got, want := c.subLocked(name) != nil, i >= tc.drop; got != want {
					t.Fatalf("%s subscribed: %v, want %v", name, got, want)
				}
			}
			if c.removeSubLocked("missing") != nil {
				t.Fatal("removed a channel never subscribed")
			}
		})
	}
}

// BenchmarkSubscribeMany is one pusher:subscribe and pusher:unsubscribe on
// a socket that already holds N channels, through the socket's message
// handler. The cost per op must not grow with N (it was linear: 10,000
// subscribes on one socket took 0.48 s, 60,000 took 10.2 s).
func BenchmarkSubscribeMany(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000, 10000} {
		b.Run("held="+strconv.Itoa(n), func(b *testing.B) {
			s, err := New(Config{MaxPendingBytes: 1 << 30, MaxChannelsPerConnection: n + 1},
				&memStore{apps: []storage.App{testApp()}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			dc := &discardConn{}
			c := &conn{srv: s, nc: dc, app: s.apps.byKey("app-key"), socketID: "1.1"}
			c.flushFn = c.flush
			msg := func(event, ch string) []byte {
				return []byte(`{"event":"pusher:` + event + `","data":{"channel":"` + ch + `"}}`)
			}
			for i := range n {
				s.handleMessage(c, msg("subscribe", "held-"+strconv.Itoa(i)))
			}
			if len(c.subs) != n {
				b.Fatalf("%d subscriptions, want %d", len(c.subs), n)
			}
			sub, unsub := msg("subscribe", "extra"), msg("unsubscribe", "extra")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.handleMessage(c, sub)
				s.handleMessage(c, unsub)
			}
		})
	}
}

// BenchmarkConnSubs is the socket's own bookkeeping of one subscribe
// (duplicate check, add) and unsubscribe (take) while it holds N channels:
// the part that was linear in N.
func BenchmarkConnSubs(b *testing.B) {
	for _, n := range []int{1, 10, 64, 65, 100, 1000, 10000} {
		b.Run("held="+strconv.Itoa(n), func(b *testing.B) {
			c := &conn{}
			for i := range n {
				c.addSubLocked(&subscription{name: "held-" + strconv.Itoa(i)})
			}
			extra := &subscription{name: "extra"}
			b.ReportAllocs()
			for b.Loop() {
				if c.subLocked(extra.name) != nil {
					b.Fatal("duplicate")
				}
				c.addSubLocked(extra)
				c.removeSubLocked(extra.name)
			}
		})
	}
}
