package server

import (
	"errors"
	"sync"
	"syscall"
	"time"
)

// poller is an epoll set of sleeping sockets, one-shot: a socket reported
// readable is out of the set until it sleeps again. Level-triggered, so a
// socket that received bytes before it was added is reported at once. Its
// goroutine blocks in epoll_wait; a byte on the stop pipe ends it.
type poller struct {
	epfd int
	stop [2]int // pipe: read end in the set with id 0, write end for stop
	// mu orders watch before close: a socket that dozed just before the
	// server stopped must not reach a closed (maybe reused) fd number.
	mu     sync.RWMutex
	closed bool
}

// hibernationSupported: epoll is here.
const hibernationSupported = true

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd}
	if err := syscall.Pipe2(p.stop[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd) // the pipe's fds were not made: close only this
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.stop[0], &ev); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// watch adds c's socket to the set until it becomes readable or hangs up.
// It reports false if the socket cannot be watched (it is closed).
func (p *poller) watch(c *conn) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(c.hibID)),
		Pad:    int32(uint32(c.hibID >> 32)),
	}
	// A socket that slept before is still in the set, disarmed (one-shot):
	// MOD re-arms it. The kernel drops a closed socket from the set, and
	// a new socket may have its number: ADD.
	// Inside Control the socket cannot be closed and its number reused.
	var err error
	if cerr := c.wire.raw.Control(func(fd uintptr) {
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(err, syscall.ENOENT) {
			err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	}); cerr != nil {
		return false
	}
	return err == nil
}

// run wakes sockets as they become readable until stop.
func (p *poller) run(h *hibernator) {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			// EINTR (signals, preemption) is routine. Nothing else is
			// expected while the set is open, and leaving would strand
			// every sleeping socket: only the stop byte ends the loop.
			if err != syscall.EINTR {
				h.pollErrors.Add(1)
				if h.onPollError != nil {
					h.onPollError(err)
				}
				time.Sleep(time.Millisecond) // no busy loop on a persistent error
			}
			continue
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				return // stop
			}
			if c := h.byID(id); c != nil {
				h.wake(c)
			}
		}
	}
}

func (p *poller) wakeUp() { _, _ = syscall.Write(p.stop[1], []byte{1}) }

func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	_ = syscall.Close(p.stop[0])
	_ = syscall.Close(p.stop[1])
	_ = syscall.Close(p.epfd)
}
