package server

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSlowConsumerIsClosedOthersUnaffected(t *testing.T) {
	ts := newTestServer(t, Config{MaxPendingBytes: 64 << 10})
	fast := ts.dial(t)
	fast.subscribe("firehose")
	slow := ts.dial(t)
	slow.subscribe("firehose")
	// Stop reading on the slow client and shrink the buffers on both sides
	// so its queue fills quickly.
	_ = slow.ws.NetConn().(*net.TCPConn).SetReadBuffer(4096)
	for _, c := range ts.allConns() {
		if c.socketID == slow.socketID {
			_ = c.nc.(*net.TCPConn).SetWriteBuffer(4096)
		}
	}
	pause := make(chan struct{})
	slow.ws.Async(func() { <-pause }) // block the client's handler goroutine
	defer close(pause)

	payload := `"` + strings.Repeat("x", 8000) + `"`
	sent := 0
	for ts.conns.Load() == 2 && sent < 2000 {
		ts.trigger(t, "firehose", "big", payload)
		sent++
		fast.expect("big")
	}
	if ts.conns.Load() != 1 {
		t.Fatalf("slow consumer still connected after %d events", sent)
	}
	ts.trigger(t, "firehose", "after", "1")
	fast.expect("after")
}

func TestShutdownClosesWith4200(t *testing.T) {
	ts := newTestServer(t, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.subscribe("x")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(ctx) }()
	for _, c := range []*testClient{a, b} {
		for f := c.next(); f.Event != "pusher:error"; f = c.next() {
		}
		if code := c.expectClose(); code != 4200 {
			t.Fatalf("close %d, want 4200", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// discardConn is a net.Conn that accepts every write at once.
type discardConn struct {
	net.Conn
	n atomic.Int64
}

func (d *discardConn) Write(b []byte) (int, error)      { d.n.Add(int64(len(b))); return len(b), nil }
func (d *discardConn) SetWriteDeadline(time.Time) error { return nil }
func (d *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (d *discardConn) Close() error                     { return nil }

// Pings are spread over an eighth of the activity period so that sockets
// connected in one burst are not all pinged, and woken, at once.
func TestPingJitterSpreadsWithinAnEighth(t *testing.T) {
	const activity = 120 * time.Second
	seen := map[time.Duration]bool{}
	for range 1000 {
		j := pingJitter(activity)
		if j < 0 || j > activity/8 {
			t.Fatalf("jitter %s outside [0, %s]", j, activity/8)
		}
		seen[j/time.Second] = true
	}
	if len(seen) < 10 {
		t.Fatalf("jitter took %d distinct seconds in 1000 draws, want a spread", len(seen))
	}
}
