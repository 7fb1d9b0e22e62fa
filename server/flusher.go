package server

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// Flushers: the outbound writes of plain TCP sockets (conn.direct). A
// goroutine per socket with queued bytes (conn.flush) costs a goroutine
// start, a write deadline (a runtime timer) and a write per socket per
// publish; a fan-out to 1,000 sockets started 1,000 goroutines. Instead a
// few flusher goroutines take dirty sockets from their lists and write each
// socket's whole queue with one non-blocking writev (writev_linux.go). A
// socket whose write would block (its send buffer is full) is handed to a
// goroutine of its own running the blocking flush with the write deadline
// (conn.flush), so a slow reader never stalls a flusher; it comes back to
// the flushers once its queue is empty. TLS sockets, sockets of other
// systems, and all sockets before Serve and after Shutdown keep the
// goroutine per flush.

// flushers is the server's set of flusher goroutines, one per P: a
// flusher never blocks, so more would only contend.
//
// Guarding rule: the lists are made by start before any worker runs and
// never change afterwards. start and stop run once (Serve, Shutdown); wg
// tracks the workers, and stop returns after they ended.
type flushers struct {
	lists     []flushList
	on        atomic.Bool // workers run and take sockets
	startOnce sync.Once
	stopOnce  sync.Once
	wg        sync.WaitGroup
	// handoffs counts writes that would have blocked and went to a
	// goroutine of their own.
	handoffs atomic.Int64
}

// flushList is one flusher's dirty sockets.
//
// Guarding rule: mu guards dirty, waiting and stopped. A socket is on a
// list at most once: it is added only by whoever set its conn.writing
// (send, closeWith), and only the flusher that took it clears that or puts
// it back. mu is taken under channel read locks (the fan-out calls add), so
// nothing is called under it but the condition's signal.
type flushList struct {
	mu      sync.Mutex
	cond    sync.Cond
	dirty   []*conn
	waiting bool // the flusher waits on cond
	stopped bool // stop was called: add refuses, the flusher drains and ends
}

// start starts one flusher per P (Serve). Until then every socket flushes
// from its own goroutine.
func (f *flushers) start(s *Server) {
	f.startOnce.Do(func() {
		if !directWriteSupported {
			return
		}
		n := max(runtime.GOMAXPROCS(0), 1)
		f.lists = make([]flushList, n)
		for i := range f.lists {
			l := &f.lists[i]
			l.cond.L = &l.mu
			w := newFlushWorker(s, &f.handoffs)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				w.run(l)
			}()
		}
		f.on.Store(true)
	})
}

// stop ends the flushers once they have written what their lists hold.
// Sockets dirtied afterwards flush from their own goroutine.
func (f *flushers) stop() {
	f.stopOnce.Do(func() {
		f.on.Store(false)
		for i := range f.lists {
			l := &f.lists[i]
			l.mu.Lock()
			l.stopped = true
			l.cond.Signal()
			l.mu.Unlock()
		}
		f.wg.Wait()
	})
}

// add puts c, whose writing the caller just set, on a flusher's list. It
// reports false when no flusher takes it (not started, or stopped): the
// caller then flushes c from a goroutine of its own.
func (f *flushers) add(c *conn) bool {
	if !f.on.Load() {
		return false
	}
	l := &f.lists[c.hibID%uint64(len(f.lists))]
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.dirty = append(l.dirty, c)
	if l.waiting {
		// One signal per wake, not per socket: a fan-out adds thousands.
		l.waiting = false
		l.cond.Signal()
	}
	l.mu.Unlock()
	return true
}

// yieldsMax bounds the yields of a woken flusher while its list grows.
const yieldsMax = 8

// yieldEvery is how many sockets a flusher writes between yields: a
// writev to loopback costs ~7 µs here, so a yield (~0.2 µs) every 32 is
// noise, and a list of 1,000 sockets no longer holds the P for 7 ms.
const yieldEvery = 32

// flushWorker is one flusher goroutine's state; only that goroutine uses
// it.
type flushWorker struct {
	srv      *Server
	handoffs *atomic.Int64
	batch    []*conn // the list taken, reused
	w        rawWrite
	writeFn  func(fd uintptr) bool // w.write bound once: no closure per socket
	// msgs and bytes are written frames and bytes not yet added to the
	// metrics: one Add per list taken instead of one per socket.
	msgs, bytes int
}

func newFlushWorker(s *Server, handoffs *atomic.Int64) *flushWorker {
	w := &flushWorker{srv: s, handoffs: handoffs}
	w.writeFn = w.w.write
	return w
}

// run takes l's dirty sockets, all at once, and writes each until l is
// stopped and empty.
func (w *flushWorker) run(l *flushList) {
	for {
		l.mu.Lock()
		for len(l.dirty) == 0 && !l.stopped {
			l.waiting = true
			l.cond.Wait()
		}
		if len(l.dirty) == 0 {
			l.mu.Unlock()
			return
		}
		// Let what is runnable run first (more publishes, mostly): their
		// frames then leave in the same writev as these. Woken at once,
		// a flusher wrote one frame per write where goroutines per socket,
		// queued behind the publishers, wrote 3.5 (the http scenario).
		for range yieldsMax {
			n := len(l.dirty)
			l.mu.Unlock()
			runtime.Gosched()
			l.mu.Lock()
			if len(l.dirty) == n {
				break
			}
		}
		// Swap the list with the one just written: no allocation once
		// both have grown to the fan-out's size.
		w.batch, l.dirty = l.dirty, w.batch[:0]
		l.mu.Unlock()

		for i, c := range w.batch {
			if i%yieldEvery == yieldEvery-1 {
				// A publish the network poller found meanwhile runs now
				// rather than after the whole list: its frames join the
				// queues of the sockets not written yet.
				runtime.Gosched()
			}
			if w.flushConn(c) {
				l.mu.Lock()
				l.dirty = append(l.dirty, c)
				l.mu.Unlock()
			}
			w.batch[i] = nil // no dead socket kept alive by the spare list
		}
		if w.msgs > 0 {
			w.srv.metrics.messagesOut.Add(float64(w.msgs))
			w.srv.metrics.bytesOut.Add(float64(w.bytes))
			w.msgs, w.bytes = 0, 0
		}
	}
}

// flushConn writes c's queue with one non-blocking writev. It reports true
// when more frames were queued meanwhile: c stays dirty and goes to the
// back of the list, so one busy socket does not hold up the others.
func (w *flushWorker) flushConn(c *conn) (again bool) {
	batch := c.takeQueue()
	if batch == nil {
		return false
	}

	// wio orders this write with gws's own (wire.Write); when gws is
	// writing, the blocking path waits for it instead of this goroutine.
	if !c.wio.TryLock() {
		w.handoff(c, batch, 0, 0, false)
		return false
	}
	w.w.prepare(batch)
	err := c.wire.raw.Write(w.writeFn)
	written := w.w.n
	w.w.frames = nil

	// Skip the frames written whole; off is how far into the next.
	i, off := 0, written
	for i < len(batch) && off >= len(batch[i]) {
		off -= len(batch[i])
		i++
	}
	w.msgs += i
	w.bytes += written

	switch {
	case i == len(batch):
		c.wio.Unlock()
		clear(batch)
		c.wmu.Lock()
		c.pending -= written
		if c.spare == nil {
			c.spare = batch[:0]
		}
		again = len(c.queue) > 0
		if !again {
			c.writing = false
		}
		closeAfter, drop := c.closeAfter && !again, c.dropAfter
		c.wmu.Unlock()
		if closeAfter {
			c.afterCloseFrame(drop)
		}
		return again
	case (err == nil && w.w.blocked()) || errors.Is(err, os.ErrDeadlineExceeded):
		// The send buffer is full, or the poller refused before writing
		// because a write deadline gws's own write (wire.Write) left
		// behind has passed: the blocking path, with a deadline of its
		// own, takes over.
		c.wmu.Lock()
		c.pending -= written
		c.wmu.Unlock()
		w.handoff(c, batch, i, off, true)
		return false
	default:
		// The peer is gone (EPIPE, ECONNRESET) or the socket is closed.
		c.wio.Unlock()
		clear(batch)
		c.writeFailed(written)
		return false
	}
}

// handoff gives c's unwritten frames, batch[i:] with off bytes of the
// first already written, to a goroutine of its own running the blocking
// flush (conn.flush, which c's writing now belongs to). If held, the
// caller holds c.wio and the goroutine inherits it, so nothing is written
// between the two parts of a frame.
func (w *flushWorker) handoff(c *conn, batch [][]byte, i, off int, held bool) {
	w.handoffs.Add(1)
	if off > 0 {
		batch[i] = batch[i][off:]
	}
	c.rest, c.restFrom, c.restHeld = batch, i, held
	go c.flushFn()
}
