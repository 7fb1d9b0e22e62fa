package server

import (
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"golang.org/x/time/rate"

	"github.com/sockudo/sockudo/server/protocol"
)

// conn is one WebSocket connection. It doubles as the gws session storage,
// so a socket costs no session map.
//
// Locking rule:
//   - Fields above mu are set before the conn is published (registered in
//     the server) and only read afterwards, without a lock.
//   - mu guards the subscription and user state. gws runs OnMessage one at
//     a time per socket (ParallelGolimit 1), but OnClose may overlap the
//     last OnMessage, so subscribe checks closed under mu.
//   - wmu guards the outbound queue and is the innermost lock: the fan-out
//     takes it under channel read locks, so nothing is called under it.
type conn struct {
	srv      *Server
	ws       *gws.Conn
	nc       net.Conn
	app      *app
	socketID string
	ip       string
	// timer is the activity/ping timer. Atomic because the timer's own
	// callback reads it and may run before serveWS's store is visible.
	timer atomic.Pointer[time.Timer]
	// flushFn is c.flush bound once: "go c.flush()" would allocate a
	// closure per send, i.e. per subscriber per publish.
	flushFn func()

	lastSeen  atomic.Int64 // unix nanos of the last frame received
	closing   atomic.Bool  // a close was started; inbound frames are ignored
	closeCode atomic.Int32 // the code of the first server-initiated close
	pingedAt  atomic.Int64 // unix nanos of our unanswered pusher:ping, 0 if none

	// limiter throttles client events; only OnMessage touches it.
	limiter *rate.Limiter

	mu sync.Mutex
	// subs are the socket's subscriptions. A slice, not a map: sockets hold
	// a handful of channels, and a small map costs ~250 bytes per socket.
	subs   []*subscription
	user   *signedUser // nil until pusher:signin
	closed bool

	wmu        sync.Mutex
	queue      [][]byte // frames waiting for the writer
	spare      [][]byte // the writer's previous batch, reused
	pending    int      // bytes in queue and in the batch being written
	writing    bool     // a flush goroutine is running
	wclosed    bool     // a close frame is queued or the socket is gone
	closeAfter bool     // the queue ends with a close frame
}

// signedUser is the identity a socket signed in with.
type signedUser struct {
	id        string
	info      json.RawMessage
	watchlist []string
}

// gws.SessionStorage: the conn is its own session.
func (c *conn) Len() int                     { return 0 }
func (c *conn) Load(string) (any, bool)      { return c, true }
func (c *conn) Delete(string)                {}
func (c *conn) Store(string, any)            {}
func (c *conn) Range(func(string, any) bool) {}

// send queues a complete WebSocket frame. It never blocks: a socket whose
// queue would exceed MaxPendingBytes is closed with 4100 instead (a slow
// consumer must not grow memory or stall the publisher). The frame must not
// be modified afterwards; it is shared between sockets.
func (c *conn) send(frame []byte) {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	if c.pending+len(frame) > c.srv.cfg.MaxPendingBytes {
		c.wmu.Unlock()
		c.srv.slowConsumer(c)
		return
	}
	c.queue = append(c.queue, frame)
	c.pending += len(frame)
	start := !c.writing
	c.writing = true
	c.wmu.Unlock()
	if start {
		go c.flushFn()
	}
}

// flush writes queued frames until the queue is empty. It runs only while
// there is work, so an idle socket has no writer goroutine.
func (c *conn) flush() {
	for {
		c.wmu.Lock()
		batch := c.queue
		if len(batch) == 0 {
			c.writing = false
			closeAfter := c.closeAfter
			c.wmu.Unlock()
			if closeAfter {
				c.afterCloseFrame()
			}
			return
		}
		c.queue = c.spare[:0]
		c.spare = nil
		n := 0
		for _, f := range batch {
			n += len(f)
		}
		c.wmu.Unlock()

		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		var err error
		if len(batch) == 1 {
			_, err = c.nc.Write(batch[0])
		} else {
			bufs := net.Buffers(batch)
			_, err = bufs.WriteTo(c.nc)
		}
		clear(batch)

		if err == nil {
			c.srv.metrics.messagesOut.Add(float64(len(batch)))
			c.srv.metrics.bytesOut.Add(float64(n))
		}
		c.wmu.Lock()
		c.pending -= n
		if c.spare == nil {
			c.spare = batch[:0]
		}
		if err != nil {
			c.wclosed = true
			c.writing = false
			c.queue = nil
			c.wmu.Unlock()
			_ = c.nc.Close() // ends the read loop, which runs OnClose
			return
		}
		c.wmu.Unlock()
	}
}

// close sends a pusher:error with e and, for closing codes, a close frame
// with the same code; then the socket is shut. Frames queued earlier are
// written first unless discard is set (slow consumers). Idempotent.
func (c *conn) close(e *protocol.Error, discard bool) {
	c.closeCode.CompareAndSwap(0, int32(e.Code))
	c.closing.Store(true)
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	c.wclosed = true
	c.closeAfter = true
	if discard {
		for _, f := range c.queue {
			c.pending -= len(f)
		}
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	c.queue = append(c.queue, e.Frame(), e.CloseFrame())
	start := !c.writing
	c.writing = true
	c.wmu.Unlock()
	if start {
		go c.flushFn()
	}
}

// closeWait is how long a closed socket waits for the client's close reply
// before the TCP connection is dropped. Closing the TCP connection at once
// could reset it and lose the close frame on the client side.
const closeWait = 2 * time.Second

func (c *conn) afterCloseFrame() {
	_ = c.nc.SetReadDeadline(time.Now().Add(closeWait))
}

// sendError sends a non-fatal pusher:error.
func (c *conn) sendError(code protocol.Code, msg, channel string) {
	c.send(protocol.ErrorFrame(code, msg, channel))
}

// touch records inbound activity. The first frame after our ping re-arms
// the timer for a full activity period (once per ping, not per frame).
func (c *conn) touch() {
	c.lastSeen.Store(time.Now().UnixNano())
	if c.pingedAt.Load() != 0 && c.pingedAt.Swap(0) != 0 {
		c.resetTimer(c.srv.cfg.ActivityTimeout)
	}
}

func (c *conn) resetTimer(d time.Duration) {
	if t := c.timer.Load(); t != nil {
		t.Reset(d)
	}
}

// onTimer is the connection's single timer: after ActivityTimeout of
// silence it sends pusher:ping, and if nothing arrives within PongTimeout
// it closes with 4201. Idle sockets cost one timer and no goroutine.
func (c *conn) onTimer() {
	if c.closing.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := c.lastSeen.Load()
	cfg := &c.srv.cfg
	if pinged := c.pingedAt.Load(); pinged != 0 {
		if last > pinged {
			c.pingedAt.Store(0) // the client answered
		} else {
			if wait := time.Duration(pinged + int64(cfg.PongTimeout) - now); wait > 0 {
				c.resetTimer(wait)
				return
			}
			c.close(protocol.ErrPongTimeout, false)
			return
		}
	}
	idle := time.Duration(now - last)
	if idle < cfg.ActivityTimeout {
		c.resetTimer(cfg.ActivityTimeout - idle)
		return
	}
	c.pingedAt.Store(now)
	// Arm the pong wait before the ping leaves: a fast answer re-arms the
	// timer for a full activity period (touch), and must not be undone.
	c.resetTimer(cfg.PongTimeout)
	c.send(protocol.PingFrame)
}

// addSubLocked records a subscription on the conn. Lock: c.mu.
func (c *conn) addSubLocked(s *subscription) { c.subs = append(c.subs, s) }

// subLocked returns the subscription to channel name, nil if none.
// Lock: c.mu.
func (c *conn) subLocked(name string) *subscription {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// sub returns the subscription to channel name, nil if none.
func (c *conn) sub(name string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subLocked(name)
}

// takeSub forgets the subscription to name and returns it, nil if none.
func (c *conn) takeSub(name string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removeSubLocked(name)
}

// removeSubLocked forgets the subscription to name and returns it, nil if
// none. Lock: c.mu.
func (c *conn) removeSubLocked(name string) *subscription {
	for i, s := range c.subs {
		if s.name == name {
			last := len(c.subs) - 1
			c.subs[i] = c.subs[last]
			c.subs[last] = nil
			c.subs = c.subs[:last]
			return s
		}
	}
	return nil
}

// teardown runs once when a socket's read loop ends: it leaves every
// channel, signs out and frees the socket's slot.
func (s *Server) teardown(c *conn) {
	c.closing.Store(true)
	if t := c.timer.Load(); t != nil {
		t.Stop()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	subs, user := c.subs, c.user
	c.subs = nil
	c.mu.Unlock()

	for _, sub := range subs {
		s.leave(c, sub)
	}
	if user != nil {
		s.signout(c, user)
	}
	c.wmu.Lock()
	c.wclosed = true
	clear(c.queue)
	c.queue = nil
	c.wmu.Unlock()

	s.unregisterConn(c)
	c.app.conns.Add(-1)
	c.app.connGauge.Dec()
	s.metrics.connsClosed.WithLabelValues(closeReason(protocol.Code(c.closeCode.Load()))).Inc()
	if s.conns.Add(-1) == 0 {
		s.signalEmpty()
	}
}
