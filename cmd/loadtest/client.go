package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

// Per-connection state is one small struct. The gws client is configured for
// a small footprint: 512-byte read buffer, ParallelEnabled false (OnMessage
// runs on the ReadLoop goroutine; the handler below does no JSON decoding,
// so that goroutine's stack stays small), ParallelGolimit 1 (gws allocates a
// channel of that capacity per connection anyway) and a no-op session store.
const clientReadBufferSize = 512

const (
	stDialing     int32 = iota
	stSubscribing       // connection_established seen, subscribe sent
	stReady
	stFailed
)

type client struct {
	lt        *loadtest
	ws        *gws.Conn
	sub       bool
	subscribe string // the pusher:subscribe frame this connection sends
	state     atomic.Int32
	ready     chan error // buffered 1; receives the handshake/subscription outcome
}

func (c *client) finish(err error) {
	to := stReady
	if err != nil {
		to = stFailed
	}
	if c.state.CompareAndSwap(stDialing, to) || c.state.CompareAndSwap(stSubscribing, to) {
		c.ready <- err
	}
}

func (c *client) OnOpen(*gws.Conn) {}

func (c *client) OnPing(s *gws.Conn, payload []byte) { _ = s.WritePong(payload) }

func (c *client) OnPong(*gws.Conn, []byte) {}

func (c *client) OnClose(_ *gws.Conn, err error) {
	if c.state.Load() == stReady {
		if !c.lt.closing.Load() {
			c.lt.dropped.Add(1)
			c.lt.noteDrop(err)
		}
		return
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	c.finish(fmt.Errorf("closed during handshake: %w", err))
}

func (c *client) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	b := m.Bytes()
	ev := frameEvent(b)
	switch {
	case string(ev) == "pusher:connection_established":
		if !c.sub {
			c.finish(nil)
			return
		}
		c.state.CompareAndSwap(stDialing, stSubscribing)
		if err := s.WriteString(c.subscribe); err != nil {
			c.finish(fmt.Errorf("send subscribe: %w", err))
		}
	case string(ev) == "pusher_internal:subscription_succeeded":
		c.finish(nil)
	case string(ev) == "pusher:ping":
		c.lt.pings.Add(1)
		_ = s.WriteString(pongFrame)
	case string(ev) == "pusher:error":
		if st := c.state.Load(); st == stDialing || st == stSubscribing {
			c.finish(fmt.Errorf("pusher:error: %s", truncate(b, 200)))
		} else {
			c.lt.serverErrors.Add(1)
		}
	case len(ev) >= 6 && string(ev[:6]) == "pusher":
		// pusher:pong, pusher_internal:subscription_count, ...: ignore.
	default:
		now := time.Now().UnixNano()
		ts, ok := frameTimestamp(b)
		if !ok {
			c.lt.unparsed.Add(1)
			return
		}
		c.lt.hist.record(time.Duration(now - ts))
		c.lt.delivered.Add(1)
		for {
			last := c.lt.lastDeliveryNs.Load()
			if now <= last || c.lt.lastDeliveryNs.CompareAndSwap(last, now) {
				break
			}
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// noSession is a SessionStorage that stores nothing (saves a map + mutex per
// connection).
type noSession struct{}

func (noSession) Len() int                     { return 0 }
func (noSession) Load(string) (any, bool)      { return nil, false }
func (noSession) Delete(string)                {}
func (noSession) Store(string, any)            {}
func (noSession) Range(func(string, any) bool) {}
func newNoSession() gws.SessionStorage         { return noSession{} }

type quietLogger struct{}

func (quietLogger) Error(...any) {}

// dialControl refuses non-loopback peers at connect time unless allowRemote.
func dialControl(allowRemote bool) func(network, address string, c syscall.RawConn) error {
	if allowRemote {
		return nil
	}
	return func(_, address string, _ syscall.RawConn) error { return checkLoopbackAddr(address) }
}

// dial opens one connection and waits (at most until deadline) for
// connection_established and, for subscribers, subscription_succeeded.
func (lt *loadtest) dial(i int, sub bool, deadline time.Time) (*client, error) {
	if err := lt.ctx.Err(); err != nil {
		return nil, err
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, errors.New("connect phase deadline (-connect-timeout) reached")
	}
	hs := min(wait, lt.cfg.DialTimeout)
	connDeadline := time.Now().Add(hs) // dial + upgrade + handshake frames
	c := &client{lt: lt, sub: sub, subscribe: lt.subscribe, ready: make(chan error, 1)}
	if sub && lt.cfg.UniqueChannels {
		c.subscribe = subscribeFrame(lt.cfg.Channel + "-" + strconv.Itoa(i))
	}
	opt := &gws.ClientOption{
		Addr:             lt.wsURL,
		ReadBufferSize:   clientReadBufferSize,
		ParallelEnabled:  false,
		ParallelGolimit:  1,
		HandshakeTimeout: hs,
		NewSession:       newNoSession,
		Logger:           quietLogger{},
		NewDialer: func() (gws.Dialer, error) {
			return &net.Dialer{Timeout: hs, Control: dialControl(lt.cfg.AllowRemote)}, nil
		},
	}
	ws, resp, err := gws.NewClient(c, opt)
	if err != nil {
		if resp != nil && resp.StatusCode != 0 && resp.StatusCode != 101 {
			return nil, fmt.Errorf("upgrade: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	c.ws = ws
	lt.loops.Add(1)
	go func() {
		defer lt.loops.Done()
		ws.ReadLoop()
	}()
	t := time.NewTimer(max(time.Until(connDeadline), time.Millisecond))
	defer t.Stop()
	select {
	case err = <-c.ready:
	case <-t.C:
		want := "pusher:connection_established"
		if c.state.Load() == stSubscribing {
			want = "pusher_internal:subscription_succeeded"
		}
		err = fmt.Errorf("no %s within %v", want, hs)
	case <-lt.ctx.Done():
		err = lt.ctx.Err()
	}
	if err == nil {
		return c, nil
	}
	c.finish(err) // mark failed if the timeout won
	_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteClose(1000, nil)
	return nil, err
}

// connectAll opens cfg.Conns connections with cfg.Concurrency parallel dials.
func (lt *loadtest) connectAll() {
	deadline := time.Now().Add(lt.cfg.ConnectTimeout)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	lt.clients = make([]*client, 0, lt.cfg.Conns)
	for w := 0; w < max(1, lt.cfg.Concurrency); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				sub := i < lt.cfg.Subs
				c, err := lt.dial(i, sub, deadline)
				mu.Lock()
				if err != nil {
					lt.connFailed++
					if lt.firstConnErr == "" {
						lt.firstConnErr = err.Error()
					}
				} else {
					lt.clients = append(lt.clients, c)
					if sub {
						lt.subscribed++
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < lt.cfg.Conns; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// closeAll sends a close frame on every connection (in parallel) and waits,
// bounded, for the read loops to end.
func (lt *loadtest) closeAll(wait time.Duration) (unfinished bool) {
	lt.closing.Store(true)
	jobs := make(chan *client)
	var wg sync.WaitGroup
	for w := 0; w < max(1, lt.cfg.Concurrency); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				_ = c.ws.SetWriteDeadline(time.Now().Add(time.Second))
				_ = c.ws.WriteClose(1000, nil)
			}
		}()
	}
	for _, c := range lt.clients {
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	done := make(chan struct{})
	go func() { lt.loops.Wait(); close(done) }()
	select {
	case <-done:
		return false
	case <-time.After(wait):
		return true
	}
}
