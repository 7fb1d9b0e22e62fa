package server

import (
	"context"
	"strings"
	"sync"

	"github.com/sockudo/sockudo/server/protocol"
)

// localPresence is the single-node Presence: counts, members and signed-in
// users in memory, sharded like the hub. It is the whole truth when there
// is one node.
type localPresence struct {
	channels [numShards]presenceShard
	users    [numShards]signedInShard
}

var _ Presence = (*localPresence)(nil)

type presenceShard struct {
	mu       sync.Mutex // guards channels and everything they hold
	channels map[chanKey]*channelPresence
}

// channelPresence exists while a channel has subscribers.
type channelPresence struct {
	subs    int
	members map[string]*member // presence channels only: by user id
}

// member is a presence user and how many of its sockets are subscribed.
type member struct {
	info    []byte
	sockets int
}

type signedInShard struct {
	mu    sync.Mutex // guards users
	users map[chanKey]int
}

func (p *localPresence) shard(k chanKey) *presenceShard { return &p.channels[shardOf(k.app, k.name)] }

func (p *localPresence) Join(_ context.Context, app, channel, _ string, m *protocol.Member, maxMembers int) (JoinResult, error) {
	k := chanKey{app, channel}
	sh := p.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cp := sh.channels[k]
	if m != nil && cp != nil && cp.members[m.UserID] == nil && len(cp.members) >= maxMembers {
		return JoinResult{}, ErrPresenceFull
	}
	if cp == nil {
		if sh.channels == nil {
			sh.channels = make(map[chanKey]*channelPresence)
		}
		cp = &channelPresence{}
		sh.channels[k] = cp
	}
	cp.subs++
	res := JoinResult{Occupied: cp.subs == 1, Count: cp.subs}
	if m == nil {
		return res, nil
	}
	if cp.members == nil {
		cp.members = make(map[string]*member)
	}
	mem := cp.members[m.UserID]
	if mem == nil {
		mem = &member{info: m.Info}
		cp.members[m.UserID] = mem
		res.FirstForUser = true
	}
	mem.sockets++
	res.Members = cp.memberList()
	return res, nil
}

func (p *localPresence) Leave(_ context.Context, app, channel, _, userID string) (LeaveResult, error) {
	k := chanKey{app, channel}
	sh := p.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cp := sh.channels[k]
	if cp == nil {
		return LeaveResult{Vacated: true}, nil
	}
	var res LeaveResult
	if mem := cp.members[userID]; userID != "" && mem != nil {
		if mem.sockets--; mem.sockets == 0 {
			delete(cp.members, userID)
			res.LastForUser = true
		}
	}
	cp.subs--
	res.Count = cp.subs
	if cp.subs <= 0 {
		delete(sh.channels, k)
		res.Vacated = true
	}
	return res, nil
}

func (cp *channelPresence) memberList() []protocol.Member {
	out := make([]protocol.Member, 0, len(cp.members))
	for id, m := range cp.members {
		out = append(out, protocol.Member{UserID: id, Info: m.info})
	}
	return out
}

func (p *localPresence) Members(_ context.Context, app, channel string) ([]protocol.Member, error) {
	k := chanKey{app, channel}
	sh := p.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cp := sh.channels[k]; cp != nil {
		return cp.memberList(), nil
	}
	return nil, nil
}

func (p *localPresence) Channel(_ context.Context, app, channel string) (ChannelCounts, error) {
	k := chanKey{app, channel}
	sh := p.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := ChannelCounts{Name: channel}
	if cp := sh.channels[k]; cp != nil {
		c.Subscriptions, c.Users = cp.subs, len(cp.members)
	}
	return c, nil
}

func (p *localPresence) Channels(_ context.Context, app, prefix string) ([]ChannelCounts, error) {
	var out []ChannelCounts
	for i := range p.channels {
		sh := &p.channels[i]
		sh.mu.Lock()
		for k, cp := range sh.channels {
			if k.app == app && strings.HasPrefix(k.name, prefix) {
				out = append(out, ChannelCounts{Name: k.name, Subscriptions: cp.subs, Users: len(cp.members)})
			}
		}
		sh.mu.Unlock()
	}
	return out, nil
}

func (p *localPresence) signedIn(k chanKey) *signedInShard { return &p.users[shardOf(k.app, k.name)] }

func (p *localPresence) SignIn(_ context.Context, app, userID, _ string) (bool, error) {
	k := chanKey{app, userID}
	sh := p.signedIn(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.users == nil {
		sh.users = make(map[chanKey]int)
	}
	sh.users[k]++
	return sh.users[k] == 1, nil
}

func (p *localPresence) SignOut(_ context.Context, app, userID, _ string) (bool, error) {
	k := chanKey{app, userID}
	sh := p.signedIn(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n, ok := sh.users[k]
	if !ok {
		return false, nil
	}
	if n <= 1 {
		delete(sh.users, k)
		return true, nil
	}
	sh.users[k] = n - 1
	return false, nil
}

func (p *localPresence) Online(_ context.Context, app string, userIDs []string) ([]bool, error) {
	out := make([]bool, len(userIDs))
	for i, id := range userIDs {
		k := chanKey{app, id}
		sh := p.signedIn(k)
		sh.mu.Lock()
		out[i] = sh.users[k] > 0
		sh.mu.Unlock()
	}
	return out, nil
}

// NewLocalPresence returns the single-node Presence, the default.
func NewLocalPresence() Presence { return &localPresence{} }
