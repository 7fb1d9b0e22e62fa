package server

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
//   - wio serialises writes to nc (see the field); it is taken before wmu.
type conn struct {
	srv      *Server
	hibID    uint64   // the socket's id in the hibernator, never 0
	nc       net.Conn // the TCP connection; gws reads and writes through wire
	wire     wire
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
	// msgStart is when the unfinished inbound message started (unix nanos),
	// 0 between messages. Written by the read goroutine (frame_guard.go),
	// read by the timer.
	msgStart atomic.Int64
	// frames is the inbound frame parser; only the read goroutine uses it.
	frames frameState

	// asleep: the socket has no read goroutine (hibernate.go). Guarded by
	// its hibShard's mu.
	asleep bool
	// msgs counts data messages read but not yet handled (frame guard +1,
	// OnMessage -1); idleParked: the reader waits for bytes with msgs > 0;
	// nudged: messageDone set a past read deadline to wake that reader.
	msgs       atomic.Int32
	idleParked atomic.Bool
	nudged     atomic.Bool

	// limiter throttles client events; only OnMessage touches it.
	limiter *rate.Limiter

	mu sync.Mutex
	// subs are the socket's subscriptions. A slice: sockets usually hold a
	// handful of channels, and a small map costs ~250 bytes per socket.
	// Beyond subsIndexed channels subIdx indexes it by name, so lookups
	// stay O(1) up to MaxChannelsPerConnection (BenchmarkSubscribeMany).
	subs   []*subscription
	subIdx map[string]int // index in subs by channel name; nil when small
	user   *signedUser    // nil until pusher:signin
	closed bool
	// closeDeadline: afterCloseFrame set the read deadline that ends the
	// socket; a nudge (hibernate.go) must not clear it.
	closeDeadline bool

	wmu        sync.Mutex
	queue      [][]byte // frames waiting for the writer
	spare      [][]byte // the writer's previous batch, reused
	pending    int      // bytes in queue and in the batch being written
	writing    bool     // a writer owns the socket: on a flusher's list, or a flush goroutine
	wclosed    bool     // a close frame is queued or the socket is gone
	closeAfter bool     // the queue ends with a close frame
	dropAfter  bool     // drop the TCP connection right after the close frame
	// direct: the flushers write this socket (flusher.go): plain TCP on
	// Linux. Set before the conn is published.
	direct bool
	// restHeld: wio is held for rest (below).
	restHeld bool

	// wio is held by whoever writes to nc: a flusher, a flush goroutine,
	// gws (wire.Write). A flusher's write may stop inside a frame; the
	// flush goroutine it hands the rest to inherits wio, so no other
	// write lands inside that frame. Taken before wmu, never under it.
	wio sync.Mutex
	// rest is a batch a flusher could not finish: rest[restFrom:] is
	// unwritten (its first frame resliced past what was written). Only
	// the socket's writer (writing) touches rest, restFrom and restHeld.
	rest     [][]byte
	restFrom int
}

// signedUser is the identity a socket signed in with.
type signedUser struct {
	id        string
	info      json.RawMessage
	watchlist []string
}

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
		c.startWriter()
	}
}

// startWriter hands c, whose writing the caller just set, to a flusher,
// or to a flush goroutine of its own where no flusher takes it.
func (c *conn) startWriter() {
	if !c.direct || !c.srv.flush.add(c) {
		go c.flushFn()
	}
}

// flush writes queued frames with the write deadline until the queue is
// empty, from a goroutine of its own: every flush of a socket the flushers
// do not write, and the rest of a flusher's write that would have blocked
// (flusher.go). It runs only while there is work, so an idle socket has no
// writer goroutine.
func (c *conn) flush() {
	if batch := c.rest; batch != nil {
		from, held := c.restFrom, c.restHeld
		c.rest = nil
		if !held {
			c.wio.Lock()
		}
		if !c.writeBlocking(batch, from) {
			return
		}
	}
	for {
		batch := c.takeQueue()
		if batch == nil {
			return
		}
		c.wio.Lock()
		if !c.writeBlocking(batch, 0) {
			return
		}
	}
}

// takeQueue takes the frames queued for writing. When none are left it
// ends the socket's write turn instead (c.writing), sends the close that
// waited for the queue to drain, and returns nil. Both write paths, the
// flushers' and the blocking one, end this way.
func (c *conn) takeQueue() [][]byte {
	c.wmu.Lock()
	batch := c.queue
	if len(batch) == 0 {
		c.writing = false
		closeAfter, drop := c.closeAfter, c.dropAfter
		c.wmu.Unlock()
		if closeAfter {
			c.afterCloseFrame(drop)
		}
		return nil
	}
	c.queue = c.spare[:0]
	c.spare = nil
	c.wmu.Unlock()
	return batch
}

// writeBlocking writes batch[from:] under the write deadline and releases
// c.wio, which the caller holds. It reports false if the write failed: the
// socket is then closing.
func (c *conn) writeBlocking(batch [][]byte, from int) bool {
	frames := batch[from:]
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	var err error
	if len(frames) == 1 {
		_, err = c.nc.Write(frames[0])
	} else {
		bufs := net.Buffers(frames)
		_, err = bufs.WriteTo(c.nc)
	}
	if c.direct && err == nil {
		// A flusher's next write would fail on this deadline once passed.
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	c.wio.Unlock()
	clear(batch)
	if err != nil {
		c.writeFailed(n)
		return false
	}
	c.srv.metrics.messagesOut.Add(float64(len(frames)))
	c.srv.metrics.bytesOut.Add(float64(n))
	c.wmu.Lock()
	c.pending -= n
	if c.spare == nil {
		c.spare = batch[:0]
	}
	c.wmu.Unlock()
	return true
}

// writeFailed ends the writing of a socket whose write of n bytes failed:
// nothing more is queued, and the socket is closed.
func (c *conn) writeFailed(n int) {
	c.wmu.Lock()
	c.pending -= n
	c.wclosed = true
	c.writing = false
	c.queue = nil
	c.wmu.Unlock()
	_ = c.nc.Close() // ends the read loop, which runs OnClose
	c.wakeToClose()
}

// close sends a pusher:error with e and, for closing codes, a close frame
// with the same code; then the socket is shut. Frames queued earlier are
// written first unless discard is set (slow consumers). Idempotent.
func (c *conn) close(e *protocol.Error, discard bool) {
	c.closeWith(e, discard, false)
}

// abort is close for a client that cannot take part in the closing
// handshake (it is in the middle of a frame): the queue is discarded and
// the TCP connection dropped once the close frame is written.
func (c *conn) abort(e *protocol.Error) { c.closeWith(e, true, true) }

func (c *conn) closeWith(e *protocol.Error, discard, drop bool) {
	c.closeCode.CompareAndSwap(0, int32(e.Code))
	c.closing.Store(true)
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	c.wclosed = true
	c.closeAfter = true
	c.dropAfter = drop
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
		c.startWriter()
	}
}

// closeWait is how long a closed socket waits for the client's close reply
// before the TCP connection is dropped. Closing the TCP connection at once
// could reset it and lose the close frame on the client side.
const closeWait = 2 * time.Second

func (c *conn) afterCloseFrame(drop bool) {
	wait := closeWait
	if drop {
		wait = 0
	}
	c.mu.Lock() // ordered with the nudge's deadline (hibernate.go)
	c.closeDeadline = true
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	c.mu.Unlock()
	c.wakeToClose() // a sleeping socket has no reader to see the deadline
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
		c.resetTimer(c.srv.cfg.ActivityTimeout + pingJitter(c.srv.cfg.ActivityTimeout))
	}
}

// resetTimer re-arms the timer to fire after d, or sooner if an unfinished
// inbound message reaches MessageTimeout before that. A reset racing the
// read goroutine's can at worst delay the message check to the next wake.
func (c *conn) resetTimer(d time.Duration) {
	t := c.timer.Load()
	if t == nil {
		return
	}
	if start := c.msgStart.Load(); start != 0 {
		if left := time.Duration(start + int64(c.srv.cfg.MessageTimeout) - time.Now().UnixNano()); left < d {
			d = max(left, 0)
		}
	}
	t.Reset(d)
}

// onTimer is the connection's single timer: after ActivityTimeout of
// silence it sends pusher:ping, and if nothing arrives within PongTimeout
// it closes with 4201; a message unfinished after MessageTimeout closes
// the socket with 4100. Idle sockets cost one timer and no goroutine.
func (c *conn) onTimer() {
	if c.closing.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := c.lastSeen.Load()
	cfg := &c.srv.cfg
	if start := c.msgStart.Load(); start != 0 && now-start >= int64(cfg.MessageTimeout) {
		c.srv.messageTimedOut(c)
		return
	}
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
		c.resetTimer(cfg.ActivityTimeout - idle + pingJitter(cfg.ActivityTimeout))
		return
	}
	c.pingedAt.Store(now)
	// Arm the pong wait before the ping leaves: a fast answer re-arms the
	// timer for a full activity period (touch), and must not be undone.
	c.resetTimer(cfg.PongTimeout)
	c.send(protocol.PingFrame)
}

// pingJitter is a random extra wait of up to an eighth of the activity
// period before a ping. Sockets that connected in one burst would
// otherwise be pinged, and woken from sleep to answer, in the same few
// seconds every period, each getting a read goroutine back at once;
// pinging later than the activity timeout is allowed, and pusher-js pings
// on its own after the same period anyway.
func pingJitter(activity time.Duration) time.Duration {
	return rand.N(activity/8 + 1)
}

// subsIndexed is the number of subscriptions above which subIdx indexes
// them: a linear scan of a few names is faster than hashing and costs no
// map (BenchmarkSubscribeMany).
const subsIndexed = 64

// addSubLocked records a subscription on the conn. Lock: c.mu.
func (c *conn) addSubLocked(s *subscription) {
	c.subs = append(c.subs, s)
	switch {
	case c.subIdx != nil:
		c.subIdx[s.name] = len(c.subs) - 1
	case len(c.subs) > subsIndexed:
		c.subIdx = make(map[string]int, 2*len(c.subs))
		for i, s := range c.subs {
			c.subIdx[s.name] = i
		}
	}
}

// subIndexLocked returns the index of the subscription to channel name in
// c.subs, -1 if none. Lock: c.mu.
func (c *conn) subIndexLocked(name string) int {
	if c.subIdx != nil {
		if i, ok := c.subIdx[name]; ok {
			return i
		}
		return -1
	}
	for i, s := range c.subs {
		if s.name == name {
			return i
		}
	}
	return -1
}

// subLocked returns the subscription to channel name, nil if none.
// Lock: c.mu.
func (c *conn) subLocked(name string) *subscription {
	if i := c.subIndexLocked(name); i >= 0 {
		return c.subs[i]
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
	i := c.subIndexLocked(name)
	if i < 0 {
		return nil
	}
	s, last := c.subs[i], len(c.subs)-1
	c.subs[i] = c.subs[last]
	c.subs[last] = nil
	c.subs = c.subs[:last]
	if c.subIdx != nil {
		delete(c.subIdx, name)
		if i < last {
			c.subIdx[c.subs[i].name] = i
		}
		if len(c.subs) <= subsIndexed/2 {
			c.subIdx = nil // back to a scan; the map's memory goes
		}
	}
	return s
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
	c.subs, c.subIdx = nil, nil
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
	s.observeConn(c, false) // console (observer.go)
	s.perIP.release(c.ip)
	c.app.conns.Add(-1)
	c.app.connGauge.Dec()
	s.metrics.connsClosed.WithLabelValues(closeReason(protocol.Code(c.closeCode.Load()))).Inc()
	if s.conns.Add(-1) == 0 {
		s.signalEmpty()
	}
}
