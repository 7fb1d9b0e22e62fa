package server

import (
	"hash/maphash"
	"sync"
)

const numShards = 64

var shardSeed = maphash.MakeSeed()

func shardOf(app, name string) int { return int(hashOf(app, name) % numShards) }

func hashOf(app, name string) uint64 {
	var h maphash.Hash
	h.SetSeed(shardSeed)
	h.WriteString(app)
	h.WriteByte(0)
	h.WriteString(name)
	return h.Sum64()
}

type chanKey struct{ app, name string }

// hub is this node's registry of channel subscribers and the fan-out to
// them, sharded by (app, channel) so there is no global lock on the hot
// path. Counts, presence members and events are not its business
// (Presence, and the server's join and leave).
type hub struct {
	shards [numShards]hubShard
}

type hubShard struct {
	mu       sync.RWMutex // guards channels
	channels map[chanKey]*channel
}

// channel is one channel with subscribers on this node. It exists while it
// has some.
type channel struct {
	key chanKey

	mu   sync.RWMutex    // guards subs
	subs []*subscription // dense; subscription.idx is the position
}

// subscription ties a conn to a channel. Fields are fixed at creation
// except idx.
type subscription struct {
	name   string // channel name
	c      *conn
	ch     *channel // nil for #server-to-user- (delivered through the user index)
	idx    int      // position in ch.subs; guarded by ch.mu
	userID string   // presence user id
}

func (h *hub) shard(k chanKey) *hubShard { return &h.shards[shardOf(k.app, k.name)] }

// add subscribes c to channel name and queues first and then (if not nil)
// then on c, under the channel lock so that no channel event overtakes
// them (subscription_succeeded, then the cache replay).
func (h *hub) add(c *conn, name, userID string, first, then []byte) *subscription {
	k := chanKey{c.app.id, name}
	sh := h.shard(k)
	sh.mu.Lock()
	if sh.channels == nil {
		sh.channels = make(map[chanKey]*channel)
	}
	ch := sh.channels[k]
	if ch == nil {
		ch = &channel{key: k}
		sh.channels[k] = ch
	}
	ch.mu.Lock()
	sh.mu.Unlock()
	s := &subscription{name: name, c: c, ch: ch, idx: len(ch.subs), userID: userID}
	ch.subs = append(ch.subs, s)
	c.send(first)
	if then != nil {
		c.send(then)
	}
	ch.mu.Unlock()
	return s
}

// remove takes s off its channel and drops the channel when it was the
// last. Removal is by identity, so a stale subscription never removes a
// newer one; it reports whether s was there.
func (h *hub) remove(s *subscription) bool {
	ch := s.ch
	if ch == nil {
		return false
	}
	sh := h.shard(ch.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if s.idx >= len(ch.subs) || ch.subs[s.idx] != s {
		return false
	}
	last := len(ch.subs) - 1
	ch.subs[s.idx] = ch.subs[last]
	ch.subs[s.idx].idx = s.idx
	ch.subs[last] = nil
	ch.subs = ch.subs[:last]
	if len(ch.subs) == 0 && sh.channels[ch.key] == ch {
		delete(sh.channels, ch.key)
	}
	return true
}

// publish queues frame on every subscriber of the channel but the socket
// except. The frame is shared: no encoding or allocation per subscriber.
// It returns the number of sockets the frame was queued for.
func (h *hub) publish(app, name string, frame []byte, except string) int {
	k := chanKey{app, name}
	sh := h.shard(k)
	sh.mu.RLock()
	ch := sh.channels[k]
	if ch == nil {
		sh.mu.RUnlock()
		return 0
	}
	ch.mu.RLock()
	sh.mu.RUnlock()
	n := 0
	for _, s := range ch.subs {
		if except != "" && s.c.socketID == except {
			continue
		}
		s.c.send(frame)
		n++
	}
	ch.mu.RUnlock()
	return n
}
