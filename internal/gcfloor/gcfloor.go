// Package gcfloor keeps the garbage collector from running over and over
// on a tiny heap.
//
// The server runs the collector at 50% heap growth (GOGC=50) so that tens
// of thousands of sockets cost little memory. But the runtime's minimum
// heap goal scales with that percentage (4 MiB × GOGC/100 = 2 MiB), and a
// server with few sockets has well under 1 MiB of live heap: under a
// stream of API requests it collected 368 times in 60,000 publishes, 6% of
// its time. Floor raises the percentage while the live heap is small, so
// that the next collection waits for the heap to reach a floor (8 MiB),
// and goes back to the base percentage once growth by the base alone gets
// there. The runtime has no setting for this; its only per-cycle hook is a
// finalizer, which is what Start uses.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// defaultHeapMinimum is the runtime's minimum heap goal at GOGC=100; at
// percentage p it is defaultHeapMinimum × p / 100.
const defaultHeapMinimum = 4 << 20

// maxPercent bounds the raised percentage: a heap whose live part is a few
// KiB would otherwise ask for a percentage in the thousands.
const maxPercent = 1000

// Percent is the GC percentage that makes the next heap goal about
// max(live × (1 + base/100), floor): base once growth by base alone reaches
// floor, otherwise the percentage whose growth (or minimum heap goal,
// whichever is smaller) reaches floor.
func Percent(live, floor uint64, base int) int {
	if live*uint64(100+base)/100 >= floor {
		return base
	}
	p := maxPercent
	if live > 0 {
		p = int(min((floor-live)*100/live, uint64(maxPercent)))
	}
	// Above this the runtime's minimum heap goal alone passes floor.
	p = min(p, int(floor*100/defaultHeapMinimum))
	return max(p, base)
}

// Floor adjusts the GC percentage after every collection. Stop ends it and
// restores base.
//
// Guarding rule: mu orders adjust (the runtime's finalizer goroutine) with
// Stop; percent is what was last set, read and written under mu.
type Floor struct {
	floor   uint64
	base    int
	stopped atomic.Bool

	mu      sync.Mutex
	percent int
	sample  []metrics.Sample
}

// Start sets the GC percentage for a heap that has not been collected yet
// and re-evaluates it after each collection.
func Start(base int, floor uint64) *Floor {
	f := &Floor{floor: floor, base: base, percent: -2,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	f.mu.Lock()
	f.setLocked(Percent(0, floor, base))
	f.mu.Unlock()
	f.arm()
	return f
}

// sentinel is garbage the moment it is made: its finalizer runs after the
// next collection. It holds a pointer so that it is not batched with other
// tiny objects (which would delay it by their lifetimes).
type sentinel struct{ f *Floor }

func (f *Floor) arm() {
	runtime.SetFinalizer(&sentinel{f: f}, func(s *sentinel) {
		if s.f.adjust() {
			s.f.arm()
		}
	})
}

// adjust sets the percentage for the live heap the last collection left;
// false once stopped.
func (f *Floor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() {
		return false
	}
	metrics.Read(f.sample)
	var live uint64
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = f.sample[0].Value.Uint64()
	}
	f.setLocked(Percent(live, f.floor, f.base))
	return true
}

func (f *Floor) setLocked(p int) {
	if p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
}

// Stop ends the adjustments and restores the base percentage.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(f.base)
	f.percent = f.base
}
