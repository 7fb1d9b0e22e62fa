package server

import (
	"encoding/json"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

const numShards = 64

var shardSeed = maphash.MakeSeed()

func shardOf(app, name string) int {
	var h maphash.Hash
	h.SetSeed(shardSeed)
	h.WriteString(app)
	h.WriteByte(0)
	h.WriteString(name)
	return int(h.Sum64() % numShards)
}

type chanKey struct{ app, name string }

// hub is this node's registry of channels and their subscribers, sharded by
// (app, channel) so there is no global lock on the hot path.
type hub struct {
	shards [numShards]hubShard
	cache  cacheStore
}

type hubShard struct {
	mu       sync.RWMutex // guards channels
	channels map[chanKey]*channel
}

// channel is one occupied channel. It exists while it has subscribers.
type channel struct {
	key  chanKey
	kind protocol.Channel

	mu      sync.RWMutex       // guards the fields below
	subs    []*subscription    // dense; subscription.idx is the position
	members map[string]*member // presence only: by user id

	countSentAt time.Time   // last subscription_count broadcast
	countTimer  *time.Timer // pending throttled broadcast
}

// subscription ties a conn to a channel.
type subscription struct {
	name   string // channel name
	c      *conn
	ch     *channel // nil for #server-to-user- (delivered through the user index)
	idx    int      // position in ch.subs; guarded by ch.mu
	userID string   // presence user id
}

// member is a presence user and how many of its sockets are subscribed.
type member struct {
	info    json.RawMessage
	sockets int
}

func (h *hub) shard(k chanKey) *hubShard { return &h.shards[shardOf(k.app, k.name)] }

// lookup returns the channel of app and name, nil if unoccupied.
func (h *hub) lookup(app, name string) *channel {
	k := chanKey{app, name}
	sh := h.shard(k)
	sh.mu.RLock()
	ch := sh.channels[k]
	sh.mu.RUnlock()
	return ch
}

// joinResult is what a subscribe did, for the caller's follow-ups.
type joinResult struct {
	sub *subscription
	err *protocol.SubscriptionError
	t   transition
}

// subscribe adds c to the channel and, under the channel lock so that no
// channel event can overtake it, queues subscription_succeeded, presence
// member_added to the others, the cache replay and subscription_count.
// m is the presence member (nil otherwise). Lock: c.mu held.
func (h *hub) subscribeLocked(c *conn, name string, kind protocol.Channel, m *protocol.Member) joinResult {
	k := chanKey{c.app.id, name}
	sh := h.shard(k)
	sh.mu.Lock()
	if sh.channels == nil {
		sh.channels = make(map[chanKey]*channel)
	}
	ch := sh.channels[k]
	if ch == nil {
		ch = &channel{key: k, kind: kind}
		sh.channels[k] = ch
	}
	ch.mu.Lock()
	sh.mu.Unlock()
	res := h.joinLocked(c, ch, kind, m)
	empty := len(ch.subs) == 0
	res.t.occupied = len(ch.subs) == 1 && res.err == nil
	ch.mu.Unlock()
	if empty { // a refused first subscriber must not leave the channel behind
		h.dropIfEmpty(ch)
	}
	return res
}

// joinLocked is subscribeLocked's part under the channel lock.
// Lock: c.mu and ch.mu held.
func (h *hub) joinLocked(c *conn, ch *channel, kind protocol.Channel, m *protocol.Member) joinResult {
	cfg := c.app.config()
	name := ch.key.name
	k := ch.key
	s := &subscription{name: name, c: c, ch: ch, idx: len(ch.subs)}
	var t transition
	firstForUser := false
	if m != nil {
		if ch.members == nil {
			ch.members = make(map[string]*member)
		}
		mem := ch.members[m.UserID]
		if mem == nil {
			if len(ch.members) >= cfg.MaxPresenceMembersPerChannel {
				return joinResult{err: &protocol.SubscriptionError{Status: 4100,
					Message: "Presence channel is full: at most " + strconv.Itoa(cfg.MaxPresenceMembersPerChannel) + " members"}}
			}
			mem = &member{info: m.Info}
			ch.members[m.UserID] = mem
			firstForUser = true
		}
		mem.sockets++
		s.userID = m.UserID
	}
	ch.subs = append(ch.subs, s)

	if m != nil {
		c.sendPayload(protocol.AppendEvent(nil, "pusher_internal:subscription_succeeded", name, presenceData(ch.members), ""))
		if firstForUser {
			h.broadcastLocked(ch, textFrame(protocol.AppendEvent(nil, "pusher_internal:member_added", name, memberData(m.UserID, m.Info), "")), c)
		}
	} else {
		c.sendPayload(protocol.AppendEvent(nil, "pusher_internal:subscription_succeeded", name, "{}", ""))
	}
	if kind.Cache {
		if frame, ok := h.cache.get(k); ok {
			c.send(frame)
		} else {
			c.sendPayload(protocol.AppendEventNoData(nil, "pusher:cache_miss", name))
			t.cacheMiss = true
		}
	}
	t.count = -1
	if kind.Type != protocol.Presence {
		t.count = len(ch.subs)
		if cfg.EnableSubscriptionCount {
			h.subscriptionCountLocked(ch)
		}
	}
	if firstForUser {
		t.memberAdded = m.UserID
	}
	return joinResult{sub: s, t: t}
}

// unsubscribe removes s from its channel; presence member_removed goes to
// the others when it was the user's last socket. Removal is by identity, so
// a stale subscription never removes a newer one. It returns what changed.
func (h *hub) unsubscribe(s *subscription) (t transition) {
	t.count = -1
	ch := s.ch
	if ch == nil {
		return t
	}
	sh := h.shard(ch.key)
	sh.mu.Lock()
	ch.mu.Lock()
	defer sh.mu.Unlock()
	defer ch.mu.Unlock()
	if s.idx >= len(ch.subs) || ch.subs[s.idx] != s {
		return t
	}
	last := len(ch.subs) - 1
	ch.subs[s.idx] = ch.subs[last]
	ch.subs[s.idx].idx = s.idx
	ch.subs[last] = nil
	ch.subs = ch.subs[:last]

	if s.userID != "" {
		if mem := ch.members[s.userID]; mem != nil {
			mem.sockets--
			if mem.sockets == 0 {
				delete(ch.members, s.userID)
				t.memberRemoved = s.userID
				h.broadcastLocked(ch, textFrame(protocol.AppendEvent(nil, "pusher_internal:member_removed", ch.key.name, memberData(s.userID, nil), "")), nil)
			}
		}
	}
	if h.dropIfEmptyLocked(ch) {
		t.vacated = true
		return t
	}
	if ch.kind.Type != protocol.Presence {
		t.count = len(ch.subs)
		if s.c.app.config().EnableSubscriptionCount {
			h.subscriptionCountLocked(ch)
		}
	}
	return t
}

// dropIfEmpty removes ch from its shard if it has no subscribers.
func (h *hub) dropIfEmpty(ch *channel) {
	sh := h.shard(ch.key)
	sh.mu.Lock()
	ch.mu.Lock()
	h.dropIfEmptyLocked(ch)
	ch.mu.Unlock()
	sh.mu.Unlock()
}

// dropIfEmptyLocked removes an empty channel from its shard.
// Lock: the shard and ch.mu held.
func (h *hub) dropIfEmptyLocked(ch *channel) bool {
	if len(ch.subs) > 0 {
		return false
	}
	sh := h.shard(ch.key)
	if sh.channels[ch.key] == ch {
		delete(sh.channels, ch.key)
	}
	if ch.countTimer != nil {
		ch.countTimer.Stop()
		ch.countTimer = nil
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

// broadcastLocked queues frame on every subscriber but skip. Lock: ch.mu.
func (h *hub) broadcastLocked(ch *channel, frame []byte, skip *conn) {
	for _, s := range ch.subs {
		if s.c != skip {
			s.c.send(frame)
		}
	}
}

// subscriptionCountThrottle and Threshold: above 100 subscribers the count
// goes out at most every 5 s (§2.3).
const (
	subscriptionCountThreshold = 100
	subscriptionCountThrottle  = 5 * time.Second
)

// subscriptionCountLocked broadcasts pusher_internal:subscription_count, or
// schedules it when throttled. Lock: ch.mu held for writing.
func (h *hub) subscriptionCountLocked(ch *channel) {
	if len(ch.subs) > subscriptionCountThreshold {
		if wait := subscriptionCountThrottle - time.Since(ch.countSentAt); wait > 0 {
			if ch.countTimer == nil {
				ch.countTimer = time.AfterFunc(wait, func() {
					ch.mu.Lock()
					defer ch.mu.Unlock()
					ch.countTimer = nil
					if len(ch.subs) > 0 {
						h.sendCountLocked(ch)
					}
				})
			}
			return
		}
	}
	h.sendCountLocked(ch)
}

func (h *hub) sendCountLocked(ch *channel) {
	ch.countSentAt = time.Now()
	data := `{"subscription_count":` + strconv.Itoa(len(ch.subs)) + `}`
	h.broadcastLocked(ch, textFrame(protocol.AppendEvent(nil, "pusher_internal:subscription_count", ch.key.name, data, "")), nil)
}

// channelInfo is a snapshot of one channel's counts.
type channelInfo struct {
	name              string
	presence          bool
	subscriptionCount int
	userCount         int
}

// info returns the counts of one channel; ok is false when unoccupied.
func (h *hub) info(app, name string) (channelInfo, bool) {
	ch := h.lookup(app, name)
	if ch == nil {
		return channelInfo{name: name}, false
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	if len(ch.subs) == 0 {
		return channelInfo{name: name}, false
	}
	return channelInfo{name: name, presence: ch.kind.Type == protocol.Presence,
		subscriptionCount: len(ch.subs), userCount: len(ch.members)}, true
}

// channels lists the occupied channels of app whose names start with prefix.
func (h *hub) channels(app, prefix string) []channelInfo {
	var out []channelInfo
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for k, ch := range sh.channels {
			if k.app != app || len(k.name) < len(prefix) || k.name[:len(prefix)] != prefix {
				continue
			}
			ch.mu.RLock()
			if len(ch.subs) > 0 {
				out = append(out, channelInfo{name: k.name, presence: ch.kind.Type == protocol.Presence,
					subscriptionCount: len(ch.subs), userCount: len(ch.members)})
			}
			ch.mu.RUnlock()
		}
		sh.mu.RUnlock()
	}
	return out
}

// users returns the presence user ids of a channel.
func (h *hub) users(app, name string) []string {
	ch := h.lookup(app, name)
	if ch == nil {
		return nil
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	ids := make([]string, 0, len(ch.members))
	for id := range ch.members {
		ids = append(ids, id)
	}
	return ids
}

// presenceData encodes the subscription_succeeded payload of a presence
// channel: {"presence":{"ids":[…],"hash":{…},"count":n}}. A member without
// user_info is null in hash, never dropped (§7.7).
func presenceData(members map[string]*member) string {
	b := make([]byte, 0, 64+len(members)*32)
	b = append(b, `{"presence":{"ids":[`...)
	i := 0
	for id := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendString(b, id)
		i++
	}
	b = append(b, `],"hash":{`...)
	i = 0
	for id, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendString(b, id)
		b = append(b, ':')
		b = appendRawOrNull(b, m.info)
		i++
	}
	b = append(b, `},"count":`...)
	b = strconv.AppendInt(b, int64(len(members)), 10)
	return string(append(b, "}}"...))
}

// memberData encodes member_added ({"user_id","user_info"}) or, with nil
// info, member_removed ({"user_id"}).
func memberData(userID string, info json.RawMessage) string {
	b := append([]byte(`{"user_id":`), protocol.AppendString(nil, userID)...)
	if info != nil {
		b = append(b, `,"user_info":`...)
		b = append(b, info...)
	}
	return string(append(b, '}'))
}

func appendRawOrNull(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	return append(b, raw...)
}
