package ratelimit

import (
	"context"
	"sync"
	"time"
)

// periodic runs one limiter's background work (Memory's sweep, Window's
// flush) until ctx is done or close is called. close is idempotent and waits
// for running loops, so nothing outlives it.
type periodic struct {
	mu     sync.Mutex // guards closed and wg.Add against close's wg.Wait
	closed bool
	stop   chan struct{} // closed by close
	wg     sync.WaitGroup

	// afterTick, when set (tests only, before run), is called after each
	// tick's work, so a test can wait for it on a channel instead of sleeping.
	afterTick func()
}

func newPeriodic() periodic {
	return periodic{stop: make(chan struct{})}
}

// run calls fn every interval until ctx is done or close is called. It
// returns at once if close has already been called. fn runs on the calling
// goroutine, never concurrently with itself within one run.
func (p *periodic) run(ctx context.Context, interval time.Duration, fn func()) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	// One owned timer, reset after each tick; time.After in a loop would
	// leave a timer behind per iteration (nats-server #8204).
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.stop:
			return
		case <-t.C:
			fn()
			if p.afterTick != nil {
				p.afterTick()
			}
			t.Reset(interval)
		}
	}
}

// close stops every run loop and waits for them to return. It reports
// whether this call was the first.
func (p *periodic) close() bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.closed = true
	close(p.stop)
	p.mu.Unlock()
	p.wg.Wait()
	return true
}
