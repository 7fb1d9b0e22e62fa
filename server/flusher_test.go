package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// flushServer is a server whose flushers run, without serving.
func flushServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if !directWriteSupported {
		t.Skip("no flushers on this system")
	}
	s, err := New(cfg, &memStore{apps: []storage.App{testApp()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.flush.start(s)
	t.Cleanup(s.flush.stop)
	return s
}

// directConn is a socket the flushers write, over loopback TCP, and the
// peer's end, which reads nothing until the test does. small shrinks both
// buffers so that writes soon block.
func directConn(t testing.TB, s *Server, small bool) (*conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if small {
		// Only the send buffer: a receive buffer of a few KiB lets Linux
		// hold back window updates once the peer reads (silly window
		// avoidance) until a zero-window probe, up to seconds later.
		_ = nc.(*net.TCPConn).SetWriteBuffer(4096)
	}
	c := &conn{srv: s, nc: nc, app: s.apps.byKey("app-key"), socketID: "1." + strconv.Itoa(int(s.hib.nextID.Load()+1)), hibID: s.hib.nextID.Add(1)}
	c.wire.c = c
	c.flushFn = c.flush
	c.wire.useRaw(nc)
	c.direct = c.wire.raw != nil
	if !c.direct {
		t.Fatal("a loopback TCP socket is not written directly")
	}
	t.Cleanup(func() { _ = nc.Close(); _ = peer.Close() })
	return c, peer
}

// numbered is frame k of a test stream: its number, then padding, so a
// byte out of place shows.
func numbered(k, size int) []byte {
	p := fmt.Sprintf(`{"event":"n","data":"%06d%s"}`, k, strings.Repeat("x", size))
	return protocol.TextFrame([]byte(p))
}

func reading(peer *net.TCPConn) { _ = peer.SetReadDeadline(time.Now().Add(waitTimeout)) }

// wsFrame is one server frame as the peer reads it.
type wsFrame struct {
	op      byte
	payload []byte
}

// readFrame reads one unmasked server frame.
func readFrame(r *bufio.Reader) (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsFrame{}, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return wsFrame{}, err
		}
		n = int(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return wsFrame{}, err
		}
		n = int(binary.BigEndian.Uint64(e[:]))
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return wsFrame{op: h[0] & 0x0f, payload: p}, err
}

func (c *conn) pendingBytes() (int, bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.pending, c.writing
}

// A write that fills the send buffer goes to a goroutine of its own
// mid-frame; the flushers go on writing other sockets meanwhile, and the
// peer gets every byte in order once it reads.
func TestFlusherHandsOffBlockedWrite(t *testing.T) {
	s := flushServer(t, Config{MaxPendingBytes: 64 << 20})
	slow, slowPeer := directConn(t, s, true)
	fast, fastPeer := directConn(t, s, false)

	var want bytes.Buffer
	for k := 0; s.flush.handoffs.Load() == 0 || k < 200; k++ {
		if k == 20000 {
			t.Fatal("no write was handed off after 20,000 frames to a peer that does not read")
		}
		f := numbered(k, 1000)
		want.Write(f)
		slow.send(f)
	}
	if _, writing := slow.pendingBytes(); !writing {
		t.Fatal("the blocked socket has no writer")
	}

	// The flushers still write a socket whose peer reads.
	f := numbered(0, 10)
	fast.send(f)
	got := make([]byte, len(f))
	_ = fastPeer.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(fastPeer, got); err != nil || !bytes.Equal(got, f) {
		t.Fatalf("fast socket: %q, %v", got, err)
	}

	reading(slowPeer)
	all := make([]byte, want.Len())
	if got, err := io.ReadFull(slowPeer, all); err != nil {
		p, w := slow.pendingBytes()
		t.Fatalf("read %d of %d bytes: %v; pending %d writing %v handoffs %d", got, want.Len(), err, p, w, s.flush.handoffs.Load())
	}
	if !bytes.Equal(all, want.Bytes()) {
		i := 0
		for i < len(all) && all[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("stream differs at byte %d of %d", i, len(all))
	}
	waitFor(t, "the writer to finish", func() bool {
		p, writing := slow.pendingBytes()
		return p == 0 && !writing
	})
	// Back to the flushers: the next frame is written again.
	before := s.flush.handoffs.Load()
	slow.send(f)
	if _, err := io.ReadFull(slowPeer, got); err != nil || !bytes.Equal(got, f) {
		t.Fatalf("after the backlog: %q, %v", got, err)
	}
	if n := s.flush.handoffs.Load(); n != before {
		t.Fatalf("%d more handoffs for a socket with room", n-before)
	}
}

// A socket whose peer does not read is closed with 4100 once its queue
// passes MaxPendingBytes: what the flusher had started is finished, the
// rest discarded, and pusher:error 4100 and close 4100 come last.
func TestFlusherSlowConsumerClosedWith4100(t *testing.T) {
	s := flushServer(t, Config{MaxPendingBytes: 64 << 10})
	c, peer := directConn(t, s, true)
	for k := 0; c.closeCode.Load() == 0; k++ {
		if k == 20000 {
			t.Fatal("not closed after 20,000 frames to a peer that does not read")
		}
		c.send(numbered(k, 1000))
	}
	if code := c.closeCode.Load(); code != int32(protocol.CodeOverCapacity) {
		t.Fatalf("close code %d, want 4100", code)
	}
	frames := readUntilClose(t, peer)
	last, closing := frames[len(frames)-2], frames[len(frames)-1]
	if last.op != 1 || !strings.Contains(string(last.payload), `"code":4100`) {
		t.Fatalf("frame before the close: %q", last.payload)
	}
	if code := binary.BigEndian.Uint16(closing.payload); code != 4100 {
		t.Fatalf("close code %d, want 4100", code)
	}
	for i, f := range frames[:len(frames)-2] {
		if want := fmt.Sprintf(`"data":"%06d`, i); !strings.Contains(string(f.payload), want) {
			t.Fatalf("frame %d is %.40q, want %s", i, f.payload, want)
		}
	}
}

// readUntilClose reads frames until a close frame, which it returns last.
func readUntilClose(t *testing.T, peer *net.TCPConn) []wsFrame {
	t.Helper()
	reading(peer)
	r := bufio.NewReader(peer)
	var frames []wsFrame
	for {
		f, err := readFrame(r)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(frames), err)
		}
		frames = append(frames, f)
		if f.op == 8 {
			return frames
		}
	}
}

// A close writes every frame queued before it, then pusher:error and the
// close frame, also when the queue was handed off mid-frame.
func TestFlusherCloseFrameLast(t *testing.T) {
	s := flushServer(t, Config{MaxPendingBytes: 64 << 20})
	c, peer := directConn(t, s, true)
	n := 0
	for ; s.flush.handoffs.Load() == 0 || n < 100; n++ {
		if n == 20000 {
			t.Fatal("no handoff after 20,000 frames to a peer that does not read")
		}
		c.send(numbered(n, 1000))
	}
	c.close(protocol.ErrReconnect, false)
	c.send(numbered(n, 10)) // after the close: dropped
	frames := readUntilClose(t, peer)
	if len(frames) != n+2 {
		t.Fatalf("%d frames, want %d and pusher:error and close", len(frames), n)
	}
	for i, f := range frames[:n] {
		if want := fmt.Sprintf(`"data":"%06d`, i); !strings.Contains(string(f.payload), want) {
			t.Fatalf("frame %d is %.40q, want %s", i, f.payload, want)
		}
	}
	if !strings.Contains(string(frames[n].payload), `"code":4200`) {
		t.Fatalf("frame before the close: %q", frames[n].payload)
	}
	if code := binary.BigEndian.Uint16(frames[n+1].payload); code != 4200 {
		t.Fatalf("close code %d, want 4200", code)
	}
}

// Serve starts one flusher per P and Shutdown stops them; a socket dirtied
// afterwards still gets its frames, from a goroutine of its own.
func TestShutdownStopsFlushers(t *testing.T) {
	if !directWriteSupported {
		t.Skip("no flushers on this system")
	}
	s, err := New(Config{}, &memStore{apps: []storage.App{testApp()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.Serve(ln)
	}()
	ts := &testServer{Server: s, addr: ln.Addr().String()}
	waitFor(t, "the flushers", s.flush.on.Load)
	if n := len(s.flush.lists); n != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d flushers, want GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
	client := ts.dial(t) // its frames came through the flushers
	client.subscribe("x")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-served
	ended := make(chan struct{})
	go func() { s.flush.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(waitTimeout):
		t.Fatal("flushers still running after Shutdown")
	}

	c, peer := directConn(t, s, false)
	if s.flush.add(c) {
		t.Fatal("a stopped flusher took a socket")
	}
	f := numbered(1, 10)
	c.send(f)
	got := make([]byte, len(f))
	_ = peer.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, f) {
		t.Fatalf("after Shutdown: %q, %v", got, err)
	}
}

// BenchmarkFanOutTCP is BenchmarkFanOut over loopback TCP sockets, each
// peer reading on a goroutine of its own: "flushers" writes them with one
// non-blocking writev per socket per publish, "goroutines" as TLS sockets
// are written (a goroutine and a write deadline per flush), which was every
// socket's path before the flushers. allocs/op must not grow with N.
func BenchmarkFanOutTCP(b *testing.B) {
	for _, mode := range []string{"goroutines", "flushers"} {
		for _, n := range []int{10, 1000} {
			b.Run(mode+"/subscribers="+strconv.Itoa(n), func(b *testing.B) {
				benchFanOutTCP(b, n, mode == "flushers")
			})
		}
	}
}

func benchFanOutTCP(b *testing.B, n int, flush bool) {
	s := flushServer(b, Config{MaxPendingBytes: 1 << 30})
	if !flush {
		s.flush.stop()
	}
	// The peers count what they read and wake the benchmark when target
	// is reached: a benchmark spinning on a counter would keep the P
	// busy, and parked readers wait for the network poller until sysmon
	// polls it (10 ms).
	var read, target atomic.Int64
	done := make(chan struct{}, 1)
	for range n {
		c, peer := directConn(b, s, false)
		c.direct = flush
		go func() {
			buf := make([]byte, 64<<10)
			for {
				k, err := peer.Read(buf)
				if read.Add(int64(k)) == target.Load() {
					done <- struct{}{}
				}
				if err != nil {
					return
				}
			}
		}()
		benchSubscribe(s, c, "bench")
	}
	target.Store(int64(n * len(protocol.SubscriptionSucceededFrame("bench"))))
	if read.Load() < target.Load() {
		<-done
	}
	payload := []byte(`{"event":"e","channel":"bench","data":"{\"hello\":\"world\"}"}`)
	per := int64(n) * int64(len(protocol.TextFrame(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target.Add(per)
		s.hub.publish("app-id", "bench", protocol.TextFrame(payload), "")
		<-done
	}
}
