//go:build linux

package server

import (
	"context"
	"runtime"
	"testing"

	"github.com/sockudo/sockudo/server/protocol"
)

// connByID returns the server side of the socket with id socketID.
func (ts *testServer) connByID(t testing.TB, socketID string) *conn {
	t.Helper()
	sh := &ts.sockets[shardOf("", socketID)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.conns[socketID]
	if c == nil {
		t.Fatalf("no socket %s", socketID)
	}
	return c
}

func (ts *testServer) asleep(c *conn) bool { return ts.hib.byID(c.hibID) == c }

// An idle socket sleeps without a goroutine and wakes for each message: the
// conversation is the same as with a socket that never slept.
func TestIdleSocketSleepsAndWakes(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dial(t)
	sc := ts.connByID(t, c.socketID)
	waitFor(t, "the idle socket to sleep", func() bool { return ts.asleep(sc) })

	c.ping()
	waitFor(t, "the socket to sleep after the ping", func() bool { return ts.asleep(sc) })
	c.subscribe("room")
	waitFor(t, "the socket to sleep after the subscribe", func() bool { return ts.asleep(sc) })

	ts.trigger(t, "room", "news", "hello")
	if f := c.expect("news"); f.dataString(t) != "hello" {
		t.Fatalf("got %s", f.raw)
	}
	// A WebSocket ping wakes it too, and the pong is the server's.
	if err := c.ws.WritePing([]byte("p")); err != nil {
		t.Fatal(err)
	}
	if p := <-c.pongs; string(p) != "p" {
		t.Fatalf("pong %q", p)
	}
	c.subscribe("room2")
	c.sendJSON(`{"event":"pusher:subscribe","data":{"channel":"room"}}`)
	if f := c.expect("pusher:error"); f.raw == "" {
		t.Fatal("no error for the repeated subscription")
	}
}

// Sleeping sockets cost no goroutine on the server.
func TestSleepingSocketsHaveNoGoroutine(t *testing.T) {
	ts := newTestServer(t, Config{})
	const n = 20
	before := runtime.NumGoroutine()
	conns := make([]*conn, n)
	for i := range conns {
		c := ts.dial(t)
		c.subscribe("room")
		conns[i] = ts.connByID(t, c.socketID)
	}
	waitFor(t, "every socket to sleep", func() bool {
		for _, c := range conns {
			if !ts.asleep(c) {
				return false
			}
		}
		return true
	})
	// Each client has its own read goroutine (n); the server adds none per
	// socket. Allow a few for the runtime and net/http.
	if d := runtime.NumGoroutine() - before; d > n+4 {
		t.Fatalf("%d goroutines more with %d sleeping sockets", d, n)
	}
}

// Closing a sleeping socket, from either side, still ends it with the
// right code and tears it down.
func TestSleepingSocketCloses(t *testing.T) {
	ts := newTestServer(t, Config{})

	c := ts.dial(t)
	c.subscribe("room")
	sc := ts.connByID(t, c.socketID)
	waitFor(t, "the socket to sleep", func() bool { return ts.asleep(sc) })
	sc.close(protocol.ErrReconnect, false)
	c.expect("pusher:error")
	if code := c.expectClose(); code != uint16(protocol.ErrReconnect.Code) {
		t.Fatalf("close code %d, want %d", code, protocol.ErrReconnect.Code)
	}

	c2 := ts.dial(t)
	sc2 := ts.connByID(t, c2.socketID)
	waitFor(t, "the second socket to sleep", func() bool { return ts.asleep(sc2) })
	_ = c2.ws.WriteClose(1000, nil)
	c2.expectClose()
	waitFor(t, "both teardowns", func() bool { return ts.conns.Load() == 0 })
	if n := ts.hub.publish("app-id", "room", []byte("x"), ""); n != 0 {
		t.Fatalf("%d subscribers left", n)
	}
	cc, _ := ts.presence.Channel(context.Background(), "app-id", "room")
	if cc.Subscriptions != 0 {
		t.Fatalf("%d subscriptions counted", cc.Subscriptions)
	}
}

// BenchmarkMessageRoundTrip is one pusher:ping answered over a real socket,
// the client sending the next as soon as the pong arrives: a socket within
// dozeAfter of its last bytes stays awake, so this measures messages
// without a wake each.
func BenchmarkMessageRoundTrip(b *testing.B) {
	ts := newTestServer(b, Config{MaxMessagesPerSecond: 1_000_000})
	c := ts.dial(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.ping()
	}
}
