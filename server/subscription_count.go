package server

import (
	"sync"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

// subscriptionCountThrottle and Threshold: above 100 subscribers the count
// goes out at most every 5 s (§2.3).
const (
	subscriptionCountThreshold = 100
	subscriptionCountThrottle  = 5 * time.Second
)

// countThrottle paces pusher_internal:subscription_count on large
// channels. It holds state only for channels above the threshold.
type countThrottle struct {
	shards [numShards]countShard
}

type countShard struct {
	mu sync.Mutex // guards channels and their entries
	m  map[chanKey]*countState
}

type countState struct {
	sentAt time.Time
	timer  *time.Timer // pending send, nil if none
}

// subscriptionCount sends a channel's new count to its subscribers, or
// schedules it when throttled. vacated drops the channel's state.
func (s *Server) subscriptionCount(a *app, channel string, count int, vacated bool) {
	enabled := a.config().EnableSubscriptionCount
	k := chanKey{a.id, channel}
	sh := &s.counts.shards[shardOf(k.app, k.name)]
	sh.mu.Lock()
	st := sh.m[k]
	if vacated || !enabled || count <= subscriptionCountThreshold {
		if st != nil {
			if st.timer != nil {
				st.timer.Stop()
			}
			delete(sh.m, k)
		}
		sh.mu.Unlock()
		if enabled && !vacated {
			s.broadcast(Message{App: a.id, Channel: channel, Frame: protocol.SubscriptionCountFrame(channel, count)})
		}
		return
	}
	if st == nil {
		if sh.m == nil {
			sh.m = make(map[chanKey]*countState)
		}
		st = &countState{}
		sh.m[k] = st
	}
	if wait := subscriptionCountThrottle - time.Since(st.sentAt); wait > 0 {
		if st.timer == nil {
			st.timer = time.AfterFunc(wait, func() { s.sendThrottledCount(k, st) })
		}
		sh.mu.Unlock()
		return
	}
	st.sentAt = time.Now()
	sh.mu.Unlock()
	s.broadcast(Message{App: a.id, Channel: channel, Frame: protocol.SubscriptionCountFrame(channel, count)})
}

// sendThrottledCount sends the current count when a throttle period ends.
func (s *Server) sendThrottledCount(k chanKey, st *countState) {
	sh := &s.counts.shards[shardOf(k.app, k.name)]
	sh.mu.Lock()
	if sh.m[k] != st {
		sh.mu.Unlock()
		return
	}
	st.timer = nil
	st.sentAt = time.Now()
	sh.mu.Unlock()
	c, err := s.presence.Channel(s.ctx, k.app, k.name)
	if err != nil || c.Subscriptions == 0 {
		return
	}
	s.broadcast(Message{App: k.app, Channel: k.name, Frame: protocol.SubscriptionCountFrame(k.name, c.Subscriptions)})
}
