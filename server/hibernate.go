package server

import (
	"bufio"
	"errors"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Hibernation: an idle socket has no goroutine. A goroutine costs 2.5 KiB
// (a 2 KiB stack that never shrinks below that, and its 456-byte g), more
// than everything else a socket holds, and gws has no poller mode: its
// ReadLoop goroutine lives as long as the socket. So when the read
// goroutine finds nothing to read at a message boundary, wire.Read ends the
// gws read loop with errDozing instead of waiting (wire_unix.go rawRead);
// gws unwinds through its close path, whose close frame and Close the wire
// swallows (wire.quiet), and OnClose, seeing the socket doze, hands it to
// the server's poller (an epoll set of its own, hibernate_linux.go) instead
// of tearing it down. The gws connection, its read buffer and the
// goroutine are then garbage. When the socket becomes readable (a message,
// a pong, EOF) the poller wakes it: a fresh gws connection is made over the
// same wire (resume) and a new read goroutine runs its ReadLoop. gws keeps
// no state between messages that a fresh connection lacks: no compression
// (never negotiated), no unfinished fragment (dozing happens only between
// messages), nothing buffered (wire.Read runs only when gws's reader is
// empty).
//
// gws hands each message to a goroutine of its own (ParallelEnabled, one at
// a time per gws connection), so the read loop keeps reading while a
// message is handled and teardown can overlap it. A fresh gws connection
// does not know about the old one's message, so a socket dozes only when no
// message is being handled: the frame guard counts the data messages it
// saw complete (conn.msgs) and OnMessage counts them done. A reader that
// finds nothing to read while a message is still handled waits in the
// poller as before (idleParked); the message's end then nudges it with a
// read deadline in the past, and it dozes (wire.Read). A socket also stays
// awake for dozeAfter after bytes arrive (a read deadline ends the wait the
// same way), so a chatty client is not woken for every message.
//
// Closing a socket needs a reader (to see the client's close reply, the
// read deadline, or EOF, and to run teardown), so every close path marks
// the socket closing and wakes it (wakeToClose); a closing socket never
// dozes.

// errDozing ends a gws read loop whose socket goes to sleep.
var errDozing = errors.New("server: socket dozing")

// hibernator watches sleeping sockets and wakes them. Its poller exists
// while the server serves (startHibernation, stopHibernation).
type hibernator struct {
	p      *poller // nil: not serving, or not linux
	nextID atomic.Uint64
	shards [numShards]hibShard
	wg     sync.WaitGroup // the poller goroutine
	// pollErrors counts failed epoll_waits other than EINTR (none are
	// expected).
	pollErrors  atomic.Int64
	onPollError func(error) // set before the poller starts
}

type hibShard struct {
	mu    sync.Mutex
	conns map[uint64]*conn // sleeping sockets by conn.hibID; conn.asleep
}

func (h *hibernator) shard(id uint64) *hibShard { return &h.shards[id%numShards] }

// dozeAfter is how long a chatty socket (chattyWakes) stays awake after
// bytes last arrived, so that it does not pay a wake (a gws connection, a
// read buffer, a goroutine start: ~20 allocations and 1.3 KiB,
// BenchmarkMessageRoundTrip) for every message. Other sockets doze at once.
const dozeAfter = time.Second

// chattyWakes is how many quick wakes in a row make a socket linger for
// dozeAfter before it dozes again. Two: a client's first subscribe comes
// right after the socket dozed on connecting, and must not make it linger
// (a burst of connecting clients would then hold a goroutine each).
const chattyWakes = 2

// canDoze reports whether the read goroutine, with nothing to read, may put
// c to sleep now: the frame guard is between messages, no close is under
// way, and, for a chatty socket, nothing arrived for dozeAfter (else it sets
// a read deadline for then). If a message is still being handled it records that the reader
// waits idle, for messageDone to nudge. Read goroutine only.
func (c *conn) canDoze() bool {
	f := &c.frames
	if !c.srv.hibOn.Load() || f.hdrGot != 0 || f.left != 0 || f.fragOpen || c.closing.Load() {
		return false
	}
	now := time.Now().UnixNano()
	if f.quickWakes >= chattyWakes {
		if wait := f.lastRead + int64(dozeAfter) - now; wait > 0 {
			c.nudgeAt(time.Unix(0, now+wait))
			return false
		}
	}
	if c.msgs.Load() == 0 {
		f.dozedAt = now
		return true
	}
	c.idleParked.Store(true)
	// The message may have ended before the store: then its messageDone
	// found no parked reader, and this sees 0.
	if c.msgs.Load() == 0 {
		c.idleParked.Store(false)
		f.dozedAt = now
		return true
	}
	return false
}

// messageDone ends the handling of one message (OnMessage). The last one
// nudges a reader that waits idle behind it so that the socket dozes.
func (c *conn) messageDone() {
	if c.msgs.Add(-1) == 0 && c.idleParked.Swap(false) && !c.closing.Load() {
		c.nudgeAt(nudgeDeadline)
	}
}

// nudgeAt makes the reader's wait end at t, unless a close has set the
// read deadline that ends the socket.
func (c *conn) nudgeAt(t time.Time) {
	c.mu.Lock()
	if !c.closeDeadline {
		c.nudged.Store(true)
		_ = c.nc.SetReadDeadline(t)
	}
	c.mu.Unlock()
}

// nudgeDeadline is a read deadline already past: the waiting read returns.
var nudgeDeadline = time.Unix(1, 0)

// nudgedRead reports whether err is messageDone's nudge rather than a real
// deadline, and if so clears the deadline again unless a close has set its
// own since (afterCloseFrame, under c.mu). Read goroutine only.
func (c *conn) nudgedRead(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) || !c.nudged.Swap(false) {
		return false
	}
	c.mu.Lock()
	if !c.closeDeadline {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
	return true
}

// sleep is OnClose of a dozing socket: it registers c with the poller, or
// wakes it at once if it is closing meanwhile or the poller is gone. A
// closing socket is marked closing before wake is tried (wakeToClose), so
// either that wake finds c asleep or this sees closing.
func (h *hibernator) sleep(c *conn) {
	sh := h.shard(c.hibID)
	sh.mu.Lock()
	c.asleep = true
	if sh.conns == nil {
		sh.conns = make(map[uint64]*conn)
	}
	sh.conns[c.hibID] = c
	ok := !c.closing.Load() && h.p != nil && h.p.watch(c)
	sh.mu.Unlock()
	if !ok {
		h.wake(c)
	}
}

// wake starts a read goroutine for c if it sleeps; otherwise it does
// nothing.
func (h *hibernator) wake(c *conn) {
	sh := h.shard(c.hibID)
	sh.mu.Lock()
	if !c.asleep {
		sh.mu.Unlock()
		return
	}
	c.asleep = false
	delete(sh.conns, c.hibID)
	sh.mu.Unlock()
	go c.resume()
}

// byID returns the sleeping socket with hibernation id id, nil if none.
func (h *hibernator) byID(id uint64) *conn {
	sh := h.shard(id)
	sh.mu.Lock()
	c := sh.conns[id]
	sh.mu.Unlock()
	return c
}

// wakeToClose makes sure a read goroutine runs for c, which is closing:
// only a reader sees the close reply, the read deadline or EOF, and runs
// teardown.
func (c *conn) wakeToClose() {
	c.closing.Store(true)
	c.srv.hib.wake(c)
}

// resume gives a woken socket a fresh gws connection over the same wire and
// runs its read loop. gws only makes connections by upgrading, so this
// replays an upgrade whose 101 response the wire swallows.
func (c *conn) resume() {
	f := &c.frames // this goroutine is the reader now
	if time.Now().UnixNano()-f.dozedAt < int64(dozeAfter) {
		f.quickWakes = min(f.quickWakes+1, chattyWakes)
	} else {
		f.quickWakes = 0
	}
	c.wire.quiet = true
	socket, err := c.srv.upgrader.UpgradeFromConn(&c.wire, bufio.NewReaderSize(&c.wire, readBufferSize), resumeRequest)
	c.wire.quiet = false
	if err != nil {
		// Not expected: the request is fixed and the wire swallows the
		// write. Drop the socket without a reader.
		c.srv.log.Error("resuming a socket failed", "err", err)
		c.closing.Store(true)
		_ = c.nc.Close()
		c.srv.teardown(c)
		return
	}
	socket.ReadLoop()
}

// resumeRequest is the upgrade request resume replays; gws only reads it.
var resumeRequest = &http.Request{
	Method: http.MethodGet,
	Header: http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"c29ja3VkbyByZXN1bWUgMQ=="},
	},
}

// startHibernation starts the poller; until then (and where there is no
// epoll) sockets keep their read goroutine.
func (s *Server) startHibernation() {
	s.hibStart.Do(func() {
		if !hibernationSupported {
			return
		}
		p, err := newPoller()
		if err != nil {
			s.log.Warn("idle sockets keep a goroutine: no epoll set", "err", err)
			return
		}
		s.hib.p = p
		s.hib.onPollError = func(err error) {
			s.warnLimited("epoll", "waiting for sleeping sockets failed", "err", err)
		}
		s.hib.wg.Add(1)
		go func() {
			defer s.hib.wg.Done()
			p.run(&s.hib)
		}()
		s.hibOn.Store(true)
	})
}

// stopHibernation ends the poller once every socket is gone.
func (s *Server) stopHibernation() {
	s.hibStop.Do(func() {
		if !s.hibOn.Load() {
			return
		}
		s.hibOn.Store(false)
		s.hib.p.wakeUp()
		s.hib.wg.Wait()
		s.hib.p.close()
	})
}
