package server

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawClient is a WebSocket client on a plain TCP connection, for crafting
// frames gws's client would never send (unfinished ones).
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// dialRawTCP upgrades a TCP connection to /app/app-key by hand and reads
// pusher:connection_established.
func (ts *testServer) dialRawTCP(t testing.TB) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: " + ts.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
	status, err := rc.br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake: %q %v", status, err)
	}
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if op, p, err := rc.readFrame(); err != nil || op != 1 || !strings.Contains(string(p), "pusher:connection_established") {
		t.Fatalf("first frame: %d %q %v", op, p, err)
	}
	return rc
}

// readFrame reads one (unmasked, unfragmented) server frame.
func (rc *rawClient) readFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(rc.br, payload)
	return h[0] & 0x0f, payload, err
}

// clientHeader is the header of a masked client frame declaring n payload
// bytes (mask key 0, so payloads go unchanged).
func clientHeader(fin bool, op byte, n int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n < 1<<16:
		h = append(h, 0x80|126)
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	return append(h, 0, 0, 0, 0)
}

func clientFrame(fin bool, op byte, payload []byte) []byte {
	return append(clientHeader(fin, op, len(payload)), payload...)
}

func (rc *rawClient) write(b []byte) error {
	_, err := rc.nc.Write(b)
	return err
}

// awaitClose reads until the server closes the socket and returns the
// close frame's code (0 if none came) and the pusher:error codes seen.
func (rc *rawClient) awaitClose() (code int, errs []int) {
	rc.t.Helper()
	for {
		op, p, err := rc.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				rc.t.Fatalf("socket still open after %s", waitTimeout)
			}
			return code, errs
		}
		switch op {
		case 8:
			if code == 0 && len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
		case 1:
			var f struct {
				Event string `json:"event"`
				Data  struct {
					Code int `json:"code"`
				} `json:"data"`
			}
			if json.Unmarshal(p, &f) == nil && f.Event == "pusher:error" {
				errs = append(errs, f.Data.Code)
			}
		}
	}
}

// TestUnfinishedMessagesAreClosed: a message that does not complete in
// time closes its socket, whatever control frames keep coming meanwhile,
// and a frame declaring more than the payload limit is refused before its
// payload is read, so unfinished frames cannot pin memory.
func TestUnfinishedMessagesAreClosed(t *testing.T) {
	tcs := []struct {
		name     string
		send     func(rc *rawClient) error
		keepWith []byte // a control frame sent every 50ms while waiting
		code     int
	}{
		{
			name: "header only, over the limit",
			send: func(rc *rawClient) error { return rc.write(clientHeader(true, 1, 1<<20)) },
			code: 1009,
		},
		{
			name: "header only, within the limit",
			send: func(rc *rawClient) error { return rc.write(clientHeader(true, 1, 32<<10)) },
			code: 4100,
		},
		{
			name: "part of the payload",
			send: func(rc *rawClient) error {
				return rc.write(append(clientHeader(true, 1, 32<<10), strings.Repeat("x", 1000)...))
			},
			code: 4100,
		},
		{
			name: "fragment open, pongs keep coming",
			send: func(rc *rawClient) error {
				return rc.write(clientFrame(false, 1, []byte(`{"event":"pusher:ping",`)))
			},
			keepWith: clientFrame(true, 0xa, nil),
			code:     4100,
		},
		{
			name: "fragment open, pings keep coming",
			send: func(rc *rawClient) error {
				return rc.write(clientFrame(false, 1, []byte(`{"event":"pusher:ping",`)))
			},
			keepWith: clientFrame(true, 0x9, []byte("still here")),
			code:     4100,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{MessageTimeout: 300 * time.Millisecond, ActivityTimeout: time.Second,
				PongTimeout: time.Second})
			rc := ts.dialRawTCP(t)
			if err := tc.send(rc); err != nil {
				t.Fatal(err)
			}
			if tc.keepWith != nil {
				stop := make(chan struct{})
				done := make(chan struct{})
				defer func() { close(stop); <-done }()
				go func() {
					defer close(done)
					tick := time.NewTicker(50 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							if rc.write(tc.keepWith) != nil {
								return
							}
						}
					}
				}()
			}
			code, errs := rc.awaitClose()
			if code != tc.code {
				t.Fatalf("close code %d (pusher:errors %v), want %d", code, errs, tc.code)
			}
			waitFor(t, "the server to drop the socket", func() bool { return ts.conns.Load() == 0 })
		})
	}
}

// TestUnfinishedFramesBoundHeap: sockets that send only a frame header
// declaring 1 MiB made the server allocate that much each and keep it.
// Now the header is refused before anything is allocated for it.
func TestUnfinishedFramesBoundHeap(t *testing.T) {
	const sockets = 40
	ts := newTestServer(t, Config{MessageTimeout: time.Second})
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	runtime.GC()
	before := heap()
	rcs := make([]*rawClient, sockets)
	for i := range rcs {
		rcs[i] = ts.dialRawTCP(t)
		if err := rcs[i].write(clientHeader(true, 1, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	// Poll until the sockets are gone, or until the heap shows the frames
	// were allocated (today's failure) instead.
	var grown uint64
	deadline := time.Now().Add(waitTimeout)
	for ts.conns.Load() > 0 && time.Now().Before(deadline) {
		if h := heap(); h > before {
			grown = max(grown, h-before)
		}
		if grown > sockets<<20/2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if grown > 8<<20 || ts.conns.Load() > 0 {
		t.Fatalf("%d header-only sockets: heap grew by %d KiB, %d sockets still open", sockets, grown>>10, ts.conns.Load())
	}
}

// TestWebSocketPingAfterIdleKeepsSocket: a client that keeps alive with
// WebSocket pings gets its pongs, however long after the server's last
// write. The pong used to be written on a deadline a flush left behind,
// and the socket closed with 1006.
func TestWebSocketPingAfterIdleKeepsSocket(t *testing.T) {
	ts := newTestServer(t, Config{WriteTimeout: 100 * time.Millisecond})
	c := ts.dial(t) // connection_established set the write deadline
	// Nothing to await: let that deadline lapse.
	<-time.After(300 * time.Millisecond)
	for _, payload := range []string{"", "keepalive"} {
		if err := c.ws.WritePing([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-c.pongs:
			if string(p) != payload {
				t.Fatalf("pong %q, want %q", p, payload)
			}
		case <-c.closed:
			t.Fatalf("socket closed (%d) instead of answering the ping", c.code)
		case <-time.After(waitTimeout):
			t.Fatal("no pong")
		}
	}
	c.ping() // still served
}

// TestInboundFloodClosesSocket: a socket over its message rate gets
// pusher:error 4100 and close 4100; one within it is unaffected.
func TestInboundFloodClosesSocket(t *testing.T) {
	ts := newTestServer(t, Config{MaxMessagesPerSecond: 5, MaxChannelsPerConnection: 5})
	calm := ts.dial(t)
	for range 8 { // within the burst of 5+5
		calm.ping()
	}
	flood := ts.dial(t)
	for range 50 {
		if flood.ws.WriteMessage(1, []byte(`{"event":"pusher:ping","data":{}}`)) != nil {
			break
		}
	}
	var f frame
	for f = flood.next(); f.Event == "pusher:pong"; f = flood.next() {
	}
	if f.Event != "pusher:error" || !strings.Contains(string(f.Data), "4100") {
		t.Fatalf("got %s, want pusher:error 4100", f.raw)
	}
	if code := flood.expectClose(); code != 4100 {
		t.Fatalf("close %d, want 4100", code)
	}
	calm.ping()
}

// TestConnectionsPerIPCap: beyond MaxConnectionsPerIP a socket is refused
// with 4100; a slot frees when a socket closes.
func TestConnectionsPerIPCap(t *testing.T) {
	ts := newTestServer(t, Config{MaxConnectionsPerIP: 2})
	a := ts.dial(t)
	ts.dial(t)
	over := ts.dialRaw(t, "", nil)
	if f := over.expect("pusher:error"); !strings.Contains(string(f.Data), "4100") {
		t.Fatalf("refusal %s, want 4100", f.raw)
	}
	if code := over.expectClose(); code != 4100 {
		t.Fatalf("close %d, want 4100", code)
	}
	_ = a.ws.NetConn().Close()
	waitFor(t, "the slot to free", func() bool { return ts.perIP.count("127.0.0.1") == 1 })
	ts.dial(t)
}

// TestFrameStateChunking runs the frame guard's parser over streams cut
// into every chunk size: a message counts as unfinished exactly until its
// last byte is read, whatever the cut.
func TestFrameStateChunking(t *testing.T) {
	big := make([]byte, 70000) // 8-byte extended length
	mid := make([]byte, 300)   // 2-byte extended length
	cat := func(frames ...[]byte) []byte {
		var b []byte
		for _, f := range frames {
			b = append(b, f...)
		}
		return b
	}
	tcs := []struct {
		name     string
		messages [][]byte // each a whole message, control frames inside included
	}{
		{"small text", [][]byte{clientFrame(true, 1, []byte(`{"event":"pusher:ping"}`))}},
		{"empty frame", [][]byte{clientFrame(true, 1, nil)}},
		{"16-bit length", [][]byte{clientFrame(true, 1, mid)}},
		{"64-bit length", [][]byte{clientFrame(true, 2, big)}},
		{"ping", [][]byte{clientFrame(true, 9, []byte("x"))}},
		{"fragments with a ping between", [][]byte{cat(
			clientFrame(false, 1, []byte("ab")), clientFrame(true, 9, nil),
			clientFrame(false, 0, mid), clientFrame(true, 0, []byte("z")),
		)}},
		{"two messages", [][]byte{clientFrame(true, 1, mid), clientFrame(true, 1, []byte("{}"))}},
	}
	s := &Server{cfg: Config{MessageTimeout: time.Minute, MaxMessagesPerSecond: 1 << 20, MaxChannelsPerConnection: 1 << 20}}
	for _, tc := range tcs {
		stream, ends := cat(tc.messages...), map[int]bool{}
		for i := range tc.messages {
			ends[len(cat(tc.messages[:i+1]...))] = true
		}
		for _, chunk := range []int{1, 2, 3, 7, 13, 64, 1000, len(stream)} {
			t.Run(tc.name+"/chunk="+strconv.Itoa(chunk), func(t *testing.T) {
				c := &conn{srv: s}
				for off := 0; off < len(stream); off += chunk {
					end := min(off+chunk, len(stream))
					c.observe(stream[off:end])
					if got, want := c.midMessage(), !ends[end]; got != want {
						t.Fatalf("after %d of %d bytes: mid-message %v, want %v", end, len(stream), got, want)
					}
				}
			})
		}
	}
}
