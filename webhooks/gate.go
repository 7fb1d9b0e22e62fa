package webhooks

import (
	"container/heap"
	"context"
	"time"
)

// The gate turns the server's raw transitions into the events Pusher sends
// (shared/spec/pusher-protocol.md §5):
//
//   - channel_vacated and member_removed wait GracePeriod; a
//     channel_occupied (member_added) for the same channel (member) in that
//     time cancels both, so a page reload sends nothing.
//   - cache_miss is sent once per channel per CacheMissWindow, however many
//     subscribers missed the cache together.
//   - subscription_count above CountThreshold subscribers is sent at most
//     once per CountThrottle per channel, with the latest count; at or below
//     the threshold every change is sent.
//
// The gate's state lives in Dispatcher fields guarded by Dispatcher.mu.

type chanKey struct{ app, channel string }

type memberKey struct{ app, channel, user string }

// timed is a decision due at a time. Cancelled ones stay in the heap and are
// skipped when they come due.
type timed struct {
	at        time.Time
	seq       uint64              // ties at the same time fire in scheduling order
	fire      func(now time.Time) // called with Dispatcher.mu held
	cancelled bool
}

// countState throttles one channel's subscription_count.
type countState struct {
	// next is when the throttle window ends; it holds pending, if any.
	next *timed
	// pending is the latest count not yet sent; -1 for none.
	pending int
}

// gateLocked applies the gate to e and passes what survives to
// decideLocked. d.mu must be held.
func (d *Dispatcher) gateLocked(as *appState, e Event, now time.Time) {
	ck := chanKey{e.App, e.Channel}
	switch e.Name {
	case ChannelVacated:
		// A throttled count is stale once the channel is empty, and the
		// next subscriber's cache miss is a new one.
		if st := d.counts[ck]; st != nil {
			st.next.cancelled = true
			delete(d.counts, ck)
		}
		if t := d.cacheMiss[ck]; t != nil {
			t.cancelled = true
			delete(d.cacheMiss, ck)
		}
		if d.cfg.GracePeriod > 0 {
			holdLocked(d, d.vacated, ck, as, e, now)
			return
		}
	case ChannelOccupied:
		if returnedLocked(d.vacated, ck, now) {
			return
		}
	case MemberRemoved:
		if d.cfg.GracePeriod > 0 {
			holdLocked(d, d.removed, memberKey{e.App, e.Channel, e.UserID}, as, e, now)
			return
		}
	case MemberAdded:
		if returnedLocked(d.removed, memberKey{e.App, e.Channel, e.UserID}, now) {
			return
		}
	case CacheMiss:
		if t := d.cacheMiss[ck]; t != nil && t.at.After(now) {
			return
		}
		var t *timed
		t = d.afterLocked(now.Add(d.cfg.CacheMissWindow), func(time.Time) {
			if d.cacheMiss[ck] == t {
				delete(d.cacheMiss, ck)
			}
		})
		d.cacheMiss[ck] = t
	case SubscriptionCount:
		if !d.throttleCountLocked(as, ck, e, now) {
			return
		}
	}
	d.decideLocked(as, e, now)
}

// holdLocked keeps a channel_vacated or member_removed e in held[k] for
// the grace period, then decides it. The event keeps the time it happened,
// not the time it is decided. d.mu must be held.
func holdLocked[K comparable](d *Dispatcher, held map[K]*timed, k K, as *appState, e Event, now time.Time) {
	if old := held[k]; old != nil {
		old.cancelled = true
	}
	var t *timed
	t = d.afterLocked(now.Add(d.cfg.GracePeriod), func(time.Time) {
		if held[k] == t {
			delete(held, k)
		}
		d.decideLocked(as, e, now)
	})
	held[k] = t
}

// returnedLocked handles the channel_occupied or member_added that follows
// a held event for k: within the grace period neither is sent (it reports
// true); after it, the held event is decided first (the gate loop was about
// to). d.mu must be held.
func returnedLocked[K comparable](held map[K]*timed, k K, now time.Time) bool {
	t := held[k]
	if t == nil {
		return false
	}
	t.cancelled = true
	if t.at.After(now) {
		delete(held, k)
		return true
	}
	t.fire(now)
	return false
}

// throttleCountLocked reports whether a subscription_count goes out now;
// otherwise it is kept as the channel's pending count.
func (d *Dispatcher) throttleCountLocked(as *appState, ck chanKey, e Event, now time.Time) bool {
	st := d.counts[ck]
	if e.SubscriptionCount <= d.cfg.CountThreshold {
		if st != nil { // a pending larger count is stale now
			st.next.cancelled = true
			delete(d.counts, ck)
		}
		return true
	}
	if st != nil {
		st.pending = e.SubscriptionCount
		return false
	}
	d.startCountWindowLocked(as, ck, e, now)
	return true
}

// startCountWindowLocked opens a throttle window for ck; when it ends, the
// pending count (if any) is sent and a new window opens.
func (d *Dispatcher) startCountWindowLocked(as *appState, ck chanKey, e Event, now time.Time) {
	st := &countState{pending: -1}
	st.next = d.afterLocked(now.Add(d.cfg.CountThrottle), func(now time.Time) {
		if d.counts[ck] != st {
			return
		}
		delete(d.counts, ck)
		if st.pending < 0 {
			return
		}
		e.SubscriptionCount = st.pending
		d.startCountWindowLocked(as, ck, e, now)
		d.decideLocked(as, e, now)
	})
	d.counts[ck] = st
}

// afterLocked schedules fire at at and wakes the gate loop if it is now
// the earliest decision.
func (d *Dispatcher) afterLocked(at time.Time, fire func(time.Time)) *timed {
	d.dueSeq++
	t := &timed{at: at, seq: d.dueSeq, fire: fire}
	heap.Push(&d.due, t)
	if d.due[0] == t {
		select {
		case d.gateWake <- struct{}{}:
		default:
		}
	}
	return t
}

// fireDueLocked runs the decisions due at or before until, in time order;
// now is the current time.
func (d *Dispatcher) fireDueLocked(until, now time.Time) {
	for len(d.due) > 0 && !d.due[0].at.After(until) {
		t := heap.Pop(&d.due).(*timed)
		if !t.cancelled {
			t.fire(now)
		}
	}
}

// runGate fires decisions as they come due, until ctx ends.
func (d *Dispatcher) runGate(ctx context.Context) {
	tm := d.clock.NewTimer()
	defer tm.Stop()
	for {
		d.mu.Lock()
		now := d.clock.Now()
		d.fireDueLocked(now, now)
		var wait time.Duration = -1
		if len(d.due) > 0 {
			wait = d.due[0].at.Sub(now)
		}
		d.mu.Unlock()

		if wait >= 0 {
			tm.Reset(wait)
		} else {
			tm.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-d.gateWake:
		case <-tm.C():
		}
	}
}

// timedHeap orders decisions by due time.
type timedHeap []*timed

func (h timedHeap) Len() int { return len(h) }
func (h timedHeap) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h timedHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timedHeap) Push(x any)   { *h = append(*h, x.(*timed)) }
func (h *timedHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
