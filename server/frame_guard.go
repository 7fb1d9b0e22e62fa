package server

import (
	"net"
	"syscall"
	"time"

	"github.com/lxzan/gws"

	"github.com/sockudo/sockudo/server/protocol"
)

// The frame guard: gws allocates a frame's declared length before its
// payload arrives (reader.go readMessage) and has no deadline for a message
// to complete, so a client could pin that memory for as long as it keeps
// the socket alive with pings. The server hands gws a wire instead of the
// TCP connection; wire.Read sees every inbound byte before gws does and
// tracks where frames begin and end, so the socket's timer can close a
// socket whose message does not complete within MessageTimeout, control
// frames inside an unfinished message do not count as activity, and every
// frame counts against MaxMessagesPerSecond. The state lives in conn (no
// allocation per socket) and is touched only by the read goroutine, except
// msgStart, which the timer reads.

// wire is the net.Conn gws reads from and writes its own frames to (close
// replies, refusals). It is a field of conn: no allocation of its own.
type wire struct {
	c *conn
	// raw reads the TCP socket without net.Conn.Read (wire_unix.go), and
	// lets an idle socket sleep without a goroutine (rawRead,
	// hibernate.go). A socket that cannot sleep (a message being handled,
	// a chatty or closing socket, no epoll) parks its read goroutine in
	// Read, and gws's read path plus net.Conn.Read comes within a few dozen
	// bytes of the goroutine's first 2 KiB of stack. Any wrapper frame
	// around net.Conn.Read made every socket's stack 4 KiB (measured: +1.3
	// KiB RSS per idle socket); going through RawConn saves two frames of
	// net. Keep the frames of Read and rawRead small. Nil when the
	// connection is not TCP (TLS) or on other systems: then c.nc.Read, and
	// the socket never sleeps.
	raw    syscall.RawConn
	readFn func(fd uintptr) bool // w.rawRead, bound once
	p      []byte                // the buffer of the raw read in progress
	n      int                   // its result
	err    error
	// quiet: gws's writes, Close and SetDeadline are swallowed, while a
	// read loop unwinds to let the socket sleep and while resume replays
	// the upgrade (hibernate.go). Owned by the socket's read goroutine.
	quiet bool
}

var _ net.Conn = (*wire)(nil)

// Read reads from the socket and runs the frame guard over what arrived.
// An idle socket's read goroutine is parked in here, so nothing is kept
// live across the read but w: the frame stays small (see wire.raw).
func (w *wire) Read(p []byte) (int, error) {
	if w.raw == nil {
		return w.readConn(p)
	}
	for {
		w.p = p
		n, err := w.rawDone(w.raw.Read(w.readFn))
		if err != nil && n == 0 && w.c.nudgedRead(err) {
			continue // the message ended: try again, now able to doze
		}
		return n, err
	}
}

// rawDone finishes a raw read: the result of rawRead, or the poller's
// error (deadline, closed).
func (w *wire) rawDone(err error) (int, error) {
	p, n := w.p, 0
	if err == nil {
		n, err = w.n, w.err
	}
	w.p, w.n, w.err = nil, 0, nil
	if n > 0 {
		w.c.observe(p[:n])
	}
	return n, err
}

func (w *wire) readConn(p []byte) (int, error) {
	n, err := w.c.nc.Read(p)
	if n > 0 {
		w.c.observe(p[:n])
	}
	return n, err
}

// Write gives each of gws's writes its own deadline: the one left by the
// last flush may have passed long ago (a close reply after an idle minute
// would fail on it and the client would see 1006).
func (w *wire) Write(p []byte) (int, error) {
	if w.quiet {
		return len(p), nil
	}
	// Not inside a frame the flushers left half written (conn.wio).
	w.c.wio.Lock()
	defer w.c.wio.Unlock()
	_ = w.c.nc.SetWriteDeadline(time.Now().Add(w.c.srv.cfg.WriteTimeout))
	return w.c.nc.Write(p)
}

func (w *wire) Close() error {
	if w.quiet {
		return nil
	}
	return w.c.nc.Close()
}

func (w *wire) SetDeadline(t time.Time) error {
	if w.quiet {
		return nil
	}
	return w.c.nc.SetDeadline(t)
}

func (w *wire) LocalAddr() net.Addr                { return w.c.nc.LocalAddr() }
func (w *wire) RemoteAddr() net.Addr               { return w.c.nc.RemoteAddr() }
func (w *wire) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *wire) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// connOf returns the conn behind a gws socket served by serveWS.
func connOf(socket *gws.Conn) *conn { return socket.NetConn().(*wire).c }

// noSession is the gws session of every socket: conn keeps its own state,
// and a zero-size value in an interface allocates nothing.
type noSession struct{}

func (noSession) Len() int                     { return 0 }
func (noSession) Load(string) (any, bool)      { return nil, false }
func (noSession) Delete(string)                {}
func (noSession) Store(string, any)            {}
func (noSession) Range(func(string, any) bool) {}

// frameState is the inbound frame parser's position; read goroutine only.
type frameState struct {
	// left is the payload bytes of the current frame still to come, or,
	// while its header is being read, the extended length read so far.
	left uint64
	// hdrGot counts header bytes seen (0: between frames). Once the second
	// byte is known, extEnd is where the extended length ends and hdrLen
	// the header's full length.
	hdrGot, extEnd, hdrLen uint8
	// b0 is the first header byte: FIN and opcode.
	b0 byte
	// fragOpen: a data frame without FIN was seen and its final
	// continuation has not been.
	fragOpen bool
	// tat is the frame rate limiter's theoretical arrival time (GCRA), unix
	// nanoseconds: one int64 instead of a limiter per socket.
	tat int64
	// lastRead is when bytes last arrived and dozedAt when the socket last
	// dozed (unix nanoseconds); quickWakes counts the wakes in a row that
	// came within dozeAfter of a doze (hibernate.go).
	lastRead, dozedAt int64
	quickWakes        uint8
}

// observe runs the frame guard over b, bytes just read from the socket.
func (c *conn) observe(b []byte) {
	f := &c.frames
	now := time.Now().UnixNano()
	f.lastRead = now
	completed, flood := false, false
	for len(b) > 0 {
		if f.hdrGot == 0 && f.left > 0 { // inside a payload
			k := uint64(len(b))
			if k > f.left {
				k = f.left
			}
			f.left -= k
			b = b[k:]
			if f.left == 0 && f.endFrame() {
				completed = true
				c.countMessage()
			}
			continue
		}
		x := b[0]
		b = b[1:]
		switch f.hdrGot {
		case 0: // a new frame
			f.b0, f.left, f.hdrGot = x, 0, 1
			if !c.allowFrame(now) {
				flood = true
			}
			continue
		case 1:
			f.extEnd = 2
			switch l := x & 0x7f; l {
			case 126:
				f.extEnd += 2
			case 127:
				f.extEnd += 8
			default:
				f.left = uint64(l)
			}
			f.hdrLen = f.extEnd
			if x&0x80 != 0 {
				f.hdrLen += 4 // masking key
			}
		default:
			if f.hdrGot < f.extEnd { // extended length, big endian
				f.left = f.left<<8 | uint64(x)
			}
		}
		f.hdrGot++
		if f.hdrGot == f.hdrLen {
			f.hdrGot = 0
			if f.left == 0 && f.endFrame() {
				completed = true
				c.countMessage()
			}
		}
	}
	if flood {
		c.srv.inboundFlood(c)
	}
	if f.hdrGot != 0 || f.left != 0 || f.fragOpen {
		// A message is unfinished: its clock starts at this read unless it
		// started in an earlier one.
		if completed || c.msgStart.Load() == 0 {
			c.msgStart.Store(now)
			c.resetTimer(c.srv.cfg.MessageTimeout)
		}
	} else if c.msgStart.Load() != 0 {
		c.msgStart.Store(0)
	}
}

// endFrame records the end of the current frame and reports whether it
// completed a message (a data message, or a control frame outside one).
func (f *frameState) endFrame() bool {
	fin := f.b0&0x80 != 0
	switch op := f.b0 & 0x0f; {
	case op == 0: // continuation
		if fin {
			f.fragOpen = false
		}
	case op < 8: // text, binary
		f.fragOpen = !fin
	}
	return !f.fragOpen
}

// allowFrame is the inbound rate limit: MaxMessagesPerSecond on average,
// with bursts of up to the rate plus MaxChannelsPerConnection so that a
// reconnecting client can resubscribe all its channels at once. It is GCRA
// over one timestamp. Read goroutine only.
func (c *conn) allowFrame(now int64) bool {
	cfg := &c.srv.cfg
	interval := int64(time.Second) / int64(cfg.MaxMessagesPerSecond)
	burst := int64(cfg.MaxMessagesPerSecond + cfg.MaxChannelsPerConnection)
	tat := max(c.frames.tat, now)
	if tat-now > (burst-1)*interval {
		return false
	}
	c.frames.tat = tat + interval
	return true
}

// midMessage reports whether a message is being received, so control
// frames in it do not count as activity: otherwise a pong every few seconds
// would keep an unfinished message, and the memory gws reserved for it,
// alive forever.
func (c *conn) midMessage() bool { return c.msgStart.Load() != 0 }

// Errors of the frame guard. Both close with 4100: pusher-js backs off and
// reconnects, which is right for a client on a very slow link, and a
// client that floods gets no more of the server's time.
var (
	errMessageTimeout = &protocol.Error{Code: protocol.CodeOverCapacity, Message: "Message not completed in time"}
	errInboundFlood   = &protocol.Error{Code: protocol.CodeOverCapacity, Message: "Too many messages, slow down"}
)

// messageTimedOut closes a socket whose message did not complete within
// MessageTimeout. The TCP connection is dropped right after the close
// frame: the client is in the middle of a frame and could not send a close
// reply anyway.
func (s *Server) messageTimedOut(c *conn) {
	s.metrics.rateLimited.WithLabelValues("ws_message_timeout").Inc()
	s.warnLimited("message-timeout", "closing socket: message not completed in time", "app_id", c.app.id,
		"timeout", s.cfg.MessageTimeout)
	c.abort(errMessageTimeout)
}

// inboundFlood closes a socket over MaxMessagesPerSecond (4100, after a
// pusher:error). Closing rather than answering each message with an
// error: a client that floods gets no more work out of the server, and a
// silently dropped pusher:subscribe would leave pusher-js waiting for a
// subscription forever.
func (s *Server) inboundFlood(c *conn) {
	if c.closing.Load() {
		return
	}
	s.rateLimited("ws_messages", c.app.id, c.ip)
	c.close(errInboundFlood, true)
}

// pongFrame is the unmasked pong frame echoing payload (at most 125 bytes,
// a control frame's limit, which gws checked).
func pongFrame(payload []byte) []byte {
	if len(payload) == 0 {
		return emptyPong
	}
	return append([]byte{0x8a, byte(len(payload))}, payload...)
}

var emptyPong = []byte{0x8a, 0}

// countMessage counts a message the frame guard saw complete if it is a
// data message, which gws hands to OnMessage (messageDone counts it done);
// a frame gws refuses ends the socket instead. Read goroutine only.
func (c *conn) countMessage() {
	if c.frames.b0&0x0f <= 2 { // continuation, text, binary
		c.msgs.Add(1)
	}
}
