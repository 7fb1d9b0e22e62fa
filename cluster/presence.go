package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
)

// Presence is the server.Presence of Redis mode: subscriptions, presence
// members and signed-in users of every node, kept in Redis with one entry
// per socket, so every node answers with cluster-wide truth and the
// transitions (occupied, first member, …) happen once per cluster.
//
// Each node lists its own entries in a set and stamps a heartbeat; when a
// node stops stamping (SIGKILL), another claims it after NodeTimeout,
// removes its entries one by one and reports each resulting leave and
// sign-out once to its server (server.PresenceReporter), which sends
// member_removed and the webhooks.
//
// The node keeps a shadow of its own entries in memory. While Redis is
// down it answers from the shadow (this node's clients only: degraded,
// but never refusing a subscription), and when Redis returns it rewrites
// its entries there and removes the ones that left meanwhile.
type Presence struct {
	n      *Node
	shadow server.Presence // this node's sockets only
	h      atomic.Pointer[presenceBox]

	// change is held shared by every Join, Leave, SignIn and SignOut
	// (across its Redis call and shadow update) and exclusively by a
	// resync, which so sees a still picture of this node's entries.
	change sync.RWMutex

	mu      sync.Mutex       // guards entries
	entries map[string]entry // this node's, by encoded entry

	beats        atomic.Int64 // heartbeats that succeeded
	healthySince atomic.Int64 // unix nanos of the first heartbeat after a failure; 0 while failing
	nodeKey      string       // this node's entry set
}

type presenceBox struct{ h server.PresenceHandler }

var (
	_ server.Presence         = (*Presence)(nil)
	_ server.PresenceReporter = (*Presence)(nil)
)

// entry is one thing this node has in Redis: a socket in a channel (join)
// or a signed-in socket.
type entry struct {
	join                 bool
	app, channel, socket string
	user                 string
	info                 []byte
}

// encode is the entry as stored in the node's set (info stays out: it is
// in the channel's info hash).
func (e entry) encode() string {
	b := make([]byte, 0, 8+len(e.app)+len(e.channel)+len(e.socket)+len(e.user))
	if e.join {
		b = append(b, 'j')
		b = appendField(b, e.app)
		b = appendField(b, e.channel)
	} else {
		b = append(b, 's')
		b = appendField(b, e.app)
	}
	b = appendField(b, e.socket)
	return string(appendField(b, e.user))
}

func decodeEntry(s string) (entry, bool) {
	r := &reader{p: []byte(s)}
	var e entry
	switch r.byte() {
	case 'j':
		e.join = true
		e.app, e.channel = r.str(), r.str()
	case 's':
		e.app = r.str()
	default:
		return e, false
	}
	e.socket, e.user = r.str(), r.str()
	return e, !r.bad && len(r.p) == 0
}

// NewPresence returns n's presence; Run keeps its heartbeat and reaps dead
// nodes.
func NewPresence(n *Node) *Presence {
	p := &Presence{n: n, shadow: server.NewLocalPresence(), entries: make(map[string]entry), nodeKey: n.key("node", n.id)}
	n.OnRecover(p.resync)
	return p
}

// RegisterHandler installs the receiver of dead nodes' transitions.
func (p *Presence) RegisterHandler(h server.PresenceHandler) error {
	if h == nil {
		return errors.New("cluster: nil presence handler")
	}
	p.h.Store(&presenceBox{h})
	return nil
}

// channel keys: sockets, users, infos, the app's channel index.
func (p *Presence) chanKeys(app, channel string, node string) []string {
	base := p.n.key("ch", app, channel)
	return []string{base + ":s", base + ":u", base + ":i", p.n.key("chans", app), node}
}

func (p *Presence) field(node, socket string) string { return node + ":" + socket }

func (p *Presence) usersKey(app string) string { return p.n.key("users", app) }

// Join records the socket in Redis, and in the shadow; without Redis the
// shadow answers.
func (p *Presence) Join(ctx context.Context, app, channel, socketID string, m *protocol.Member, maxMembers int) (server.JoinResult, error) {
	p.change.RLock()
	defer p.change.RUnlock()
	e := entry{join: true, app: app, channel: channel, socket: socketID}
	if m != nil {
		e.user, e.info = m.UserID, m.Info
	}
	var res server.JoinResult
	err := errDegraded
	if !p.n.degraded() {
		res, err = p.joinRedis(ctx, p.n.id, p.nodeKey, e, maxMembers, false)
	}
	if errors.Is(err, server.ErrPresenceFull) {
		return res, err
	}
	limit := maxMembers
	if err == nil {
		limit = int(^uint(0) >> 1) // Redis decided; the shadow only records
	}
	sres, serr := p.shadow.Join(ctx, app, channel, socketID, m, limit)
	if serr != nil {
		return sres, serr
	}
	p.remember(e)
	if err != nil {
		return sres, nil // degraded: this node's view
	}
	return res, nil
}

// joinRedis runs joinScript for e of node.
func (p *Presence) joinRedis(ctx context.Context, node, nodeKey string, e entry, maxMembers int, force bool) (server.JoinResult, error) {
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	f := "0"
	if force {
		f = "1"
	}
	v, err := joinScript.Run(ctx, p.n.rdb, p.chanKeys(e.app, e.channel, nodeKey),
		p.field(node, e.socket), e.user, string(e.info), maxMembers, e.channel, e.encode(), f).Slice()
	if err != nil {
		return server.JoinResult{}, p.n.observe("presence join", err)
	}
	if len(v) == 1 {
		return server.JoinResult{}, server.ErrPresenceFull
	}
	if len(v) < 4 {
		return server.JoinResult{}, fmt.Errorf("cluster: join answered %d values", len(v))
	}
	res := server.JoinResult{Occupied: num(v[1]) == 1, Count: int(num(v[2])), FirstForUser: num(v[3]) == 1}
	if e.user != "" {
		res.Members = make([]protocol.Member, 0, (len(v)-4)/2)
		for i := 4; i+1 < len(v); i += 2 {
			res.Members = append(res.Members, member(str(v[i]), str(v[i+1])))
		}
	}
	return res, nil
}

// Leave removes the socket from Redis and the shadow.
func (p *Presence) Leave(ctx context.Context, app, channel, socketID, userID string) (server.LeaveResult, error) {
	p.change.RLock()
	defer p.change.RUnlock()
	e := entry{join: true, app: app, channel: channel, socket: socketID, user: userID}
	sres, serr := p.shadow.Leave(ctx, app, channel, socketID, userID)
	p.forget(e)
	if p.n.degraded() {
		return sres, serr
	}
	res, _, err := p.leaveRedis(ctx, p.n.id, p.nodeKey, e)
	if err != nil {
		return sres, serr // degraded: this node's view
	}
	return res, nil
}

// leaveRedis runs leaveScript for e of node; removed is false when the
// socket was not there.
func (p *Presence) leaveRedis(ctx context.Context, node, nodeKey string, e entry) (res server.LeaveResult, removed bool, err error) {
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	v, err := leaveScript.Run(ctx, p.n.rdb, p.chanKeys(e.app, e.channel, nodeKey),
		p.field(node, e.socket), e.user, e.channel, e.encode()).Int64Slice()
	if err != nil {
		return res, false, p.n.observe("presence leave", err)
	}
	if len(v) != 4 {
		return res, false, fmt.Errorf("cluster: leave answered %d values", len(v))
	}
	return server.LeaveResult{Vacated: v[1] == 1, Count: int(v[2]), LastForUser: v[3] == 1}, v[0] == 1, nil
}

// Members lists a presence channel's users from Redis.
func (p *Presence) Members(ctx context.Context, app, channel string) ([]protocol.Member, error) {
	if p.n.degraded() {
		return p.shadow.Members(ctx, app, channel)
	}
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	all, err := p.n.rdb.HGetAll(ctx, p.n.key("ch", app, channel)+":i").Result()
	if err != nil {
		_ = p.n.observe("presence members", err)
		return p.shadow.Members(ctx, app, channel)
	}
	out := make([]protocol.Member, 0, len(all))
	for id, info := range all {
		out = append(out, member(id, info))
	}
	return out, nil
}

// Channel counts one channel's sockets and users across the cluster.
func (p *Presence) Channel(ctx context.Context, app, channel string) (server.ChannelCounts, error) {
	if p.n.degraded() {
		return p.shadow.Channel(ctx, app, channel)
	}
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	list, err := p.counts(ctx, app, []string{channel})
	if err != nil {
		return p.shadow.Channel(ctx, app, channel)
	}
	return list[0], nil
}

// Channels lists the app's occupied channels by prefix (a lexicographic
// range of the app's channel index) with their counts.
func (p *Presence) Channels(ctx context.Context, app, prefix string) ([]server.ChannelCounts, error) {
	if p.n.degraded() {
		return p.shadow.Channels(ctx, app, prefix)
	}
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	names, err := p.n.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: p.n.key("chans", app), ByLex: true,
		Start: "[" + prefix, Stop: "[" + prefix + "\xff"}).Result()
	if err == nil {
		var list []server.ChannelCounts
		list, err = p.counts(ctx, app, names)
		if err == nil {
			out := list[:0]
			for _, c := range list {
				if c.Subscriptions > 0 {
					out = append(out, c)
				}
			}
			return out, nil
		}
	}
	_ = p.n.observe("presence channels", err)
	return p.shadow.Channels(ctx, app, prefix)
}

// counts reads the sockets and users of each channel in one round trip.
func (p *Presence) counts(ctx context.Context, app string, names []string) ([]server.ChannelCounts, error) {
	out := make([]server.ChannelCounts, len(names))
	if len(names) == 0 {
		return out, nil
	}
	pipe := p.n.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, 0, 2*len(names))
	for _, name := range names {
		base := p.n.key("ch", app, name)
		cmds = append(cmds, pipe.HLen(ctx, base+":s"), pipe.HLen(ctx, base+":u"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.n.observe("presence counts", err)
	}
	for i, name := range names {
		out[i] = server.ChannelCounts{Name: name, Subscriptions: int(cmds[2*i].Val()), Users: int(cmds[2*i+1].Val())}
	}
	return out, nil
}

// SignIn records a signed-in socket.
func (p *Presence) SignIn(ctx context.Context, app, userID, socketID string) (bool, error) {
	p.change.RLock()
	defer p.change.RUnlock()
	e := entry{app: app, socket: socketID, user: userID}
	sfirst, _ := p.shadow.SignIn(ctx, app, userID, socketID)
	p.remember(e)
	if p.n.degraded() {
		return sfirst, nil
	}
	_, first, err := p.signRedis(ctx, signInScript, p.nodeKey, e)
	if err != nil {
		return sfirst, nil
	}
	return first, nil
}

// SignOut undoes SignIn.
func (p *Presence) SignOut(ctx context.Context, app, userID, socketID string) (bool, error) {
	p.change.RLock()
	defer p.change.RUnlock()
	e := entry{app: app, socket: socketID, user: userID}
	slast, _ := p.shadow.SignOut(ctx, app, userID, socketID)
	p.forget(e)
	if p.n.degraded() {
		return slast, nil
	}
	_, last, err := p.signRedis(ctx, signOutScript, p.nodeKey, e)
	if err != nil {
		return slast, nil
	}
	return last, nil
}

func (p *Presence) signRedis(ctx context.Context, s *redis.Script, nodeKey string, e entry) (changed, edge bool, err error) {
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	v, err := s.Run(ctx, p.n.rdb, []string{p.usersKey(e.app), nodeKey}, e.user, e.encode()).Int64Slice()
	if err != nil {
		return false, false, p.n.observe("presence signin", err)
	}
	if len(v) != 2 {
		return false, false, fmt.Errorf("cluster: signin answered %d values", len(v))
	}
	return v[0] == 1, v[1] == 1, nil
}

// Online reports which users have a signed-in socket on any node.
func (p *Presence) Online(ctx context.Context, app string, userIDs []string) ([]bool, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	if p.n.degraded() {
		return p.shadow.Online(ctx, app, userIDs)
	}
	ctx, cancel := p.n.opContext(ctx)
	defer cancel()
	v, err := p.n.rdb.HMGet(ctx, p.usersKey(app), userIDs...).Result()
	if err != nil {
		_ = p.n.observe("presence online", err)
		return p.shadow.Online(ctx, app, userIDs)
	}
	out := make([]bool, len(userIDs))
	for i, x := range v {
		out[i] = x != nil && x != "0"
	}
	return out, nil
}

func (p *Presence) remember(e entry) {
	p.mu.Lock()
	p.entries[e.encode()] = e
	p.mu.Unlock()
}

func (p *Presence) forget(e entry) {
	p.mu.Lock()
	delete(p.entries, e.encode())
	p.mu.Unlock()
}

// Run stamps this node's heartbeat and reaps dead nodes every Heartbeat
// until ctx ends; then it hands this node's leftovers to the others. Its
// caller owns it.
func (p *Presence) Run(ctx context.Context) {
	t := time.NewTicker(p.n.cfg.Heartbeat)
	defer t.Stop()
	for {
		p.tick(ctx)
		select {
		case <-ctx.Done():
			p.depart()
			return
		case <-t.C:
		}
	}
}

// tick is one heartbeat and, when this node has been in contact with
// Redis for a whole NodeTimeout, one reap.
func (p *Presence) tick(ctx context.Context) {
	cctx, cancel := p.n.opContext(ctx)
	added, err := heartbeatScript.Run(cctx, p.n.rdb, []string{p.n.key("nodes")}, p.n.id).Int64()
	cancel()
	if err != nil {
		_ = p.n.observe("heartbeat", err)
		p.healthySince.Store(0)
		return
	}
	now := time.Now().UnixNano()
	p.healthySince.CompareAndSwap(0, now)
	if p.beats.Add(1) > 1 && added == 1 {
		// Our heartbeat was gone: another node reaped us while we could
		// not reach Redis, or Redis lost its data. Write our entries back.
		p.n.log.Warn("this node was missing from Redis: resynchronising its presence")
		p.resync(ctx)
	}
	// Every node's heartbeat is stale after an outage: reap only once this
	// node has been back for a whole timeout, so the others have stamped.
	if time.Duration(now-p.healthySince.Load()) >= p.n.cfg.NodeTimeout {
		p.reap(ctx)
	}
}

// reap claims the nodes silent for longer than NodeTimeout and removes
// their entries, reporting each transition.
func (p *Presence) reap(ctx context.Context) {
	cctx, cancel := p.n.opContext(ctx)
	ids, err := claimScript.Run(cctx, p.n.rdb, []string{p.n.key("nodes"), p.n.key("reaping")},
		p.n.cfg.NodeTimeout.Milliseconds(), p.n.id).StringSlice()
	cancel()
	if err != nil {
		_ = p.n.observe("reap claim", err)
		return
	}
	for _, id := range ids {
		n := p.reapNode(ctx, id)
		p.n.log.Info("removed a dead node's presence", "node", id, "entries", n)
	}
}

// reapNode removes a dead node's entries in batches; each batch renews
// the claim, and the reap stops if the node stamps again.
func (p *Presence) reapNode(ctx context.Context, id string) int {
	nodeKey := p.n.key("node", id)
	keys := []string{p.n.key("nodes"), p.n.key("reaping"), nodeKey}
	removed := 0
	for ctx.Err() == nil {
		cctx, cancel := p.n.opContext(ctx)
		state, err := reapingScript.Run(cctx, p.n.rdb, keys, id).Int64()
		var batch []string
		if err == nil && state == 1 {
			batch, err = p.n.rdb.SRandMemberN(cctx, nodeKey, 128).Result()
		}
		cancel()
		if err != nil {
			_ = p.n.observe("reap", err)
			return removed
		}
		if state != 1 {
			return removed
		}
		for _, raw := range batch {
			e, ok := decodeEntry(raw)
			if !ok {
				_ = p.n.rdb.SRem(ctx, nodeKey, raw).Err()
				continue
			}
			if report, ok := p.undo(ctx, id, nodeKey, e); ok {
				removed++
				if report != nil {
					report()
				}
			}
		}
	}
	return removed
}

// undo removes one entry of node from Redis. It returns the transition to
// report (nil when there is none, or when the entry was already gone:
// another reaper had it) and whether the entry was still there.
func (p *Presence) undo(ctx context.Context, node, nodeKey string, e entry) (report func(), ok bool) {
	hb := p.h.Load()
	if e.join {
		res, removed, err := p.leaveRedis(ctx, node, nodeKey, e)
		if err != nil || !removed {
			return nil, false
		}
		if hb == nil {
			return nil, true
		}
		return func() { hb.h.HandleLeave(e.app, e.channel, e.user, res) }, true
	}
	changed, last, err := p.signRedis(ctx, signOutScript, nodeKey, e)
	if err != nil || !changed {
		return nil, false
	}
	if !last || hb == nil {
		return nil, true
	}
	return func() { hb.h.HandleSignOut(e.app, e.user) }, true
}

// resync makes Redis hold exactly this node's entries: the ones missing
// (written while Redis was down, or lost with its data) are added, and the
// ones that left meanwhile are removed and reported, so that the other
// nodes' clients hear member_removed.
func (p *Presence) resync(ctx context.Context) {
	// The server holds a channel's lock while it calls Join or Leave (which
	// wait for change), and a report takes that lock: reports are made
	// after change is released.
	var reports []func()
	defer func() {
		for _, r := range reports {
			r()
		}
	}()
	p.change.Lock()
	defer p.change.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 10*p.n.cfg.OpTimeout)
	stored, err := p.n.rdb.SMembers(cctx, p.nodeKey).Result()
	cancel()
	if err != nil {
		_ = p.n.observe("resync", err)
		return
	}
	p.mu.Lock()
	local := make(map[string]entry, len(p.entries))
	for k, e := range p.entries {
		local[k] = e
	}
	p.mu.Unlock()
	added, removed := 0, 0
	for _, raw := range stored {
		if _, ok := local[raw]; ok {
			delete(local, raw)
			continue
		}
		e, ok := decodeEntry(raw)
		if !ok {
			_ = p.n.rdb.SRem(ctx, p.nodeKey, raw).Err()
			continue
		}
		if report, ok := p.undo(ctx, p.n.id, p.nodeKey, e); ok {
			removed++
			if report != nil {
				reports = append(reports, report)
			}
		}
	}
	for _, e := range local {
		var err error
		if e.join {
			_, err = p.joinRedis(ctx, p.n.id, p.nodeKey, e, 0, true)
		} else {
			_, _, err = p.signRedis(ctx, signInScript, p.nodeKey, e)
		}
		if err != nil {
			return // Redis failed again; the next recovery resyncs
		}
		added++
	}
	if added+removed > 0 {
		p.n.log.Info("resynchronised this node's presence with Redis", "added", added, "removed", removed)
	}
}

// depart ends this node's membership on shutdown: with no entries left
// it disappears; otherwise its heartbeat is zeroed so the others reap the
// rest at once.
func (p *Presence) depart() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*p.n.cfg.OpTimeout)
	defer cancel()
	nodes := p.n.key("nodes")
	if n, err := p.n.rdb.SCard(ctx, p.nodeKey).Result(); err == nil && n == 0 {
		_ = p.n.rdb.ZRem(ctx, nodes, p.n.id).Err()
		return
	}
	_ = p.n.rdb.ZAdd(ctx, nodes, redis.Z{Score: 0, Member: p.n.id}).Err()
}

// member converts a Redis user id and info into a protocol.Member.
func member(id, info string) protocol.Member {
	m := protocol.Member{UserID: id}
	if info != "" {
		m.Info = []byte(info)
	}
	return m
}

// str reads a string reply.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads an integer reply.
func num(v any) int64 {
	n, _ := v.(int64)
	return n
}
