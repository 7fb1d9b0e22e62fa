package console

import (
	"sync"
	"time"
)

// sample is one point of an app's charts.
type sample struct {
	Time        int64   `json:"t"` // Unix milliseconds
	Connections int64   `json:"connections"`
	InPerSec    float64 `json:"in_per_s"`
	OutPerSec   float64 `json:"out_per_s"`
	totalIn     uint64
	totalOut    uint64
}

// ring keeps the last n samples of every app.
type ring struct {
	mu   sync.Mutex // guards apps
	n    int
	apps map[string][]sample // oldest first, at most n
}

func newRing(n int) *ring { return &ring{n: n, apps: make(map[string][]sample)} }

// add appends a sample of app taken at now, turning the counter totals into
// rates against the previous sample.
func (r *ring) add(app string, now time.Time, conns int64, in, out uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := sample{Time: now.UnixMilli(), Connections: conns, totalIn: in, totalOut: out}
	list := r.apps[app]
	if len(list) > 0 {
		s.InPerSec, s.OutPerSec = rates(list[len(list)-1], now, in, out)
	}
	if len(list) >= r.n {
		copy(list, list[1:])
		list = list[:len(list)-1]
	}
	r.apps[app] = append(list, s)
}

// rates are the messages per second since prev.
func rates(prev sample, now time.Time, in, out uint64) (float64, float64) {
	secs := float64(now.UnixMilli()-prev.Time) / 1000
	if secs <= 0 || in < prev.totalIn || out < prev.totalOut {
		return 0, 0
	}
	return float64(in-prev.totalIn) / secs, float64(out-prev.totalOut) / secs
}

// series returns a copy of app's samples and the last one (ok false when
// there is none).
func (r *ring) series(app string) (list []sample, last sample, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list = append([]sample(nil), r.apps[app]...)
	if len(list) == 0 {
		return list, sample{}, false
	}
	return list, list[len(list)-1], true
}

// keep drops the apps not in ids.
func (r *ring) keep(ids []string) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	r.mu.Lock()
	for id := range r.apps {
		if !want[id] {
			delete(r.apps, id)
		}
	}
	r.mu.Unlock()
}
