package ratelimit

import (
	"sync"
	"time"
)

// fakeClock is the injected clock of every test: time moves only when the
// test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// waitTick returns an afterTick hook and a function that waits for the next
// tick, failing the test after a generous timeout instead of sleeping.
func waitTick(t interface {
	Helper()
	Fatal(...any)
}) (hook func(), wait func()) {
	ch := make(chan struct{}, 1)
	hook = func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	wait = func() {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no tick within 10s")
		}
	}
	return hook, wait
}
