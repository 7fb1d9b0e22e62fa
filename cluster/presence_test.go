package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/server/servertest"
)

// transitions records what a Presence reports of dead nodes.
type transitions struct {
	mu       sync.Mutex
	leaves   []string // app/channel/user vacated? last?
	signouts []string
}

func (r *transitions) HandleLeave(app, channel, userID string, res server.LeaveResult) {
	r.mu.Lock()
	r.leaves = append(r.leaves, fmt.Sprintf("%s/%s/%s vacated=%v last=%v", app, channel, userID, res.Vacated, res.LastForUser))
	r.mu.Unlock()
}

func (r *transitions) HandleSignOut(app, userID string) {
	r.mu.Lock()
	r.signouts = append(r.signouts, app+"/"+userID)
	r.mu.Unlock()
}

func (r *transitions) snapshot() (leaves, signouts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.leaves), slices.Clone(r.signouts)
}

func mem(id string) *protocol.Member {
	return &protocol.Member{UserID: id, Info: []byte(`{"name":"` + id + `"}`)}
}

func TestPresenceContract(t *testing.T) {
	requireRedis(t)
	servertest.Presence(t, func(t *testing.T) server.Presence {
		return NewPresence(testNode(t, testRedis, testPrefix(t)))
	})
}

func TestPresenceIsClusterWide(t *testing.T) {
	requireRedis(t)
	ctx := context.Background()
	prefix := testPrefix(t)
	a, b := NewPresence(testNode(t, testRedis, prefix)), NewPresence(testNode(t, testRedis, prefix))

	ja, err := a.Join(ctx, "app", "presence-room", "1.1", mem("u1"), 100)
	if err != nil || !ja.Occupied || !ja.FirstForUser {
		t.Fatalf("first join on a: %+v %v", ja, err)
	}
	// The same socket id on another node is another socket.
	jb, _ := b.Join(ctx, "app", "presence-room", "1.1", mem("u2"), 100)
	if jb.Occupied || !jb.FirstForUser || jb.Count != 2 || len(jb.Members) != 2 {
		t.Fatalf("join on b sees only its node: %+v", jb)
	}
	if jb2, _ := b.Join(ctx, "app", "presence-room", "2.2", mem("u1"), 100); jb2.FirstForUser {
		t.Fatalf("u1's second socket (on another node) reported first: %+v", jb2)
	}
	if _, err := b.Join(ctx, "app", "presence-room", "3.3", mem("u3"), 2); err != server.ErrPresenceFull {
		t.Fatalf("the member limit counts every node's members: %v", err)
	}
	for _, p := range []*Presence{a, b} {
		c, _ := p.Channel(ctx, "app", "presence-room")
		if c.Subscriptions != 3 || c.Users != 2 {
			t.Fatalf("counts %+v", c)
		}
		ms, _ := p.Members(ctx, "app", "presence-room")
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.UserID+string(m.Info))
		}
		sort.Strings(ids)
		if !slices.Equal(ids, []string{`u1{"name":"u1"}`, `u2{"name":"u2"}`}) {
			t.Fatalf("members %v", ids)
		}
	}
	if l, _ := a.Leave(ctx, "app", "presence-room", "1.1", "u1"); l.LastForUser || l.Vacated {
		t.Fatalf("u1 still has a socket on b: %+v", l)
	}
	_, _ = b.Leave(ctx, "app", "presence-room", "2.2", "u1")
	if l, _ := b.Leave(ctx, "app", "presence-room", "1.1", "u2"); !l.Vacated || !l.LastForUser {
		t.Fatalf("last leave %+v", l)
	}
	if list, _ := a.Channels(ctx, "app", ""); len(list) != 0 {
		t.Fatalf("a vacated channel is listed: %+v", list)
	}

	if first, _ := a.SignIn(ctx, "app", "u9", "1.1"); !first {
		t.Fatal("first sign-in")
	}
	if first, _ := b.SignIn(ctx, "app", "u9", "1.1"); first {
		t.Fatal("a second node's socket reported the user's first")
	}
	if on, _ := b.Online(ctx, "app", []string{"u9", "u8"}); !slices.Equal(on, []bool{true, false}) {
		t.Fatalf("online %v", on)
	}
	if last, _ := a.SignOut(ctx, "app", "u9", "1.1"); last {
		t.Fatal("u9 still has b's socket")
	}
	if last, _ := b.SignOut(ctx, "app", "u9", "1.1"); !last {
		t.Fatal("last sign-out")
	}
}

// A node that dies (stops stamping) has its entries removed by the others
// within the timeout, each transition reported once although two reapers
// race, and the keys it held are gone.
func TestDeadNodeIsReapedOnce(t *testing.T) {
	requireRedis(t)
	ctx := context.Background()
	prefix := testPrefix(t)
	// 1 s, not 300 ms: a live node starved past the timeout would be
	// reaped too, and its leave counted here as a duplicate.
	const timeout = time.Second
	dead := NewPresence(testNodeTimeout(t, testRedis, prefix, timeout))
	dead.tick(ctx) // one heartbeat, then silence
	for i := 0; i < 40; i++ {
		sock := fmt.Sprintf("9.%d", i)
		if _, err := dead.Join(ctx, "app", "presence-room", sock, mem(fmt.Sprintf("u%d", i%10)), 100); err != nil {
			t.Fatal(err)
		}
		if _, err := dead.Join(ctx, "app", fmt.Sprintf("public-%d", i%4), sock, nil, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := dead.SignIn(ctx, "app", fmt.Sprintf("u%d", i%10), sock); err != nil {
			t.Fatal(err)
		}
	}
	alive := NewPresence(testNodeTimeout(t, testRedis, prefix, timeout))
	if _, err := alive.Join(ctx, "app", "public-0", "1.1", nil, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := alive.SignIn(ctx, "app", "u0", "1.1"); err != nil {
		t.Fatal(err)
	}
	recs := []*transitions{{}, {}}
	for i, r := range recs {
		p := alive
		if i == 1 {
			p = NewPresence(testNodeTimeout(t, testRedis, prefix, timeout))
		}
		_ = p.RegisterHandler(r)
		run(t, p.Run)
	}
	start := time.Now()
	waitFor(t, "the dead node's entries to go", func() bool {
		c, _ := alive.Channel(ctx, "app", "presence-room")
		return c.Subscriptions == 0
	})
	t.Logf("reaped %v after the last heartbeat (timeout 1 s, heartbeat 50 ms)", time.Since(start))
	// Both reapers have finished once the dead node's set is gone.
	waitFor(t, "the dead node's set to go", func() bool {
		n, _ := alive.n.rdb.Exists(ctx, dead.nodeKey, alive.n.key("reaping")).Result()
		return n == 0
	})

	var leaves, signouts []string
	for _, r := range recs {
		l, s := r.snapshot()
		leaves, signouts = append(leaves, l...), append(signouts, s...)
	}
	// 40 presence sockets of 10 users: 10 last-for-user, 1 vacated; 40 in
	// 4 public channels, all but public-0 vacated; sign-outs of 10 users
	// but u0, who is still signed in on the live node.
	want := map[string]int{}
	for _, l := range leaves {
		want[l]++
	}
	if len(leaves) != 80 {
		t.Fatalf("%d leaves reported, want 80 (each once): %v", len(leaves), leaves)
	}
	countMatching := func(sub func(string) bool) int {
		n := 0
		for _, l := range leaves {
			if sub(l) {
				n++
			}
		}
		return n
	}
	if n := countMatching(func(l string) bool { return len(l) > 0 && contains(l, "presence-room") && contains(l, "last=true") }); n != 10 {
		t.Fatalf("%d member_removed transitions, want 10: %v", n, leaves)
	}
	if n := countMatching(func(l string) bool { return contains(l, "vacated=true") }); n != 4 {
		t.Fatalf("%d vacated transitions, want 4 (presence-room, public-1..3): %v", n, leaves)
	}
	sort.Strings(signouts)
	if len(signouts) != 9 || slices.Contains(signouts, "app/u0") {
		t.Fatalf("sign-outs %v, want u1..u9 once each", signouts)
	}
	if c, _ := alive.Channel(ctx, "app", "public-0"); c.Subscriptions != 1 {
		t.Fatalf("the live node's socket was removed: %+v", c)
	}
	if on, _ := alive.Online(ctx, "app", []string{"u0", "u1"}); !slices.Equal(on, []bool{true, false}) {
		t.Fatalf("online %v", on)
	}
}

// While Redis is down a node keeps answering from its own sockets, and
// when Redis comes back (empty, as after a restart) it writes them back.
func TestPresenceSurvivesARedisOutage(t *testing.T) {
	url, start, stop := ownRedis(t)
	start()
	ctx := context.Background()
	prefix := testPrefix(t)
	n := testNode(t, url, prefix)
	p := NewPresence(n)
	run(t, n.Run)
	run(t, p.Run)
	if _, err := p.Join(ctx, "app", "presence-room", "1.1", mem("u1"), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Join(ctx, "app", "presence-room", "1.2", mem("u2"), 100); err != nil {
		t.Fatal(err)
	}
	stop()
	waitFor(t, "the node to notice", func() bool { return n.Healthy() != nil })

	// Degraded: joins, leaves and reads answer from this node, quickly.
	began := time.Now()
	j, err := p.Join(ctx, "app", "presence-room", "1.3", mem("u3"), 100)
	if err != nil || !j.FirstForUser || len(j.Members) != 3 {
		t.Fatalf("join during the outage: %+v %v", j, err)
	}
	if l, err := p.Leave(ctx, "app", "presence-room", "1.1", "u1"); err != nil || !l.LastForUser {
		t.Fatalf("leave during the outage: %+v %v", l, err)
	}
	if first, err := p.SignIn(ctx, "app", "u3", "1.3"); err != nil || !first {
		t.Fatalf("sign-in during the outage: %v %v", first, err)
	}
	if c, err := p.Channel(ctx, "app", "presence-room"); err != nil || c.Subscriptions != 2 {
		t.Fatalf("counts during the outage: %+v %v", c, err)
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("degraded calls took %v", d)
	}

	start() // an empty Redis, as after a restart without persistence
	waitFor(t, "the node to resync", func() bool {
		if n.Healthy() != nil {
			return false
		}
		c, err := p.counts(ctx, "app", []string{"presence-room"})
		return err == nil && c[0].Subscriptions == 2 && c[0].Users == 2
	})
	if on, _ := p.Online(ctx, "app", []string{"u3"}); !on[0] {
		t.Fatal("the sign-in made during the outage was not written back")
	}
	other := NewPresence(testNode(t, url, prefix))
	ms, _ := other.Members(ctx, "app", "presence-room")
	if len(ms) != 2 {
		t.Fatalf("another node sees %+v", ms)
	}
}

// lockingHandler takes a channel lock in HandleLeave, as the server does.
type lockingHandler struct {
	transitions
	chanMu  *sync.Mutex
	entered chan struct{}
}

func (h *lockingHandler) HandleLeave(app, channel, userID string, res server.LeaveResult) {
	close(h.entered)
	h.chanMu.Lock()
	defer h.chanMu.Unlock()
	h.transitions.HandleLeave(app, channel, userID, res)
}

// A leave made while Redis was unreachable is removed from Redis and
// reported at the resync, outside the lock that Join waits for: the
// server calls Join holding the channel lock that the report takes.
func TestResyncReportsLeavesWithoutDeadlock(t *testing.T) {
	requireRedis(t)
	ctx := context.Background()
	prefix := testPrefix(t)
	n := testNode(t, testRedis, prefix)
	p := NewPresence(n)
	h := &lockingHandler{chanMu: &sync.Mutex{}, entered: make(chan struct{})}
	_ = p.RegisterHandler(h)
	if _, err := p.Join(ctx, "app", "presence-room", "1.1", mem("u1"), 100); err != nil {
		t.Fatal(err)
	}
	_ = n.observe("test outage", errors.New("simulated"))
	if l, _ := p.Leave(ctx, "app", "presence-room", "1.1", "u1"); !l.LastForUser {
		t.Fatalf("degraded leave %+v", l)
	}
	if c, _ := p.counts(ctx, "app", []string{"presence-room"}); c[0].Subscriptions != 1 {
		t.Fatalf("the degraded leave reached Redis: %+v", c)
	}
	n.down.Store(false)

	h.chanMu.Lock() // the server joins another socket of this channel meanwhile
	done := make(chan struct{})
	go func() { p.resync(ctx); close(done) }()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the resync reported nothing")
	}
	joined := make(chan error, 1)
	go func() {
		_, err := p.Join(ctx, "app", "presence-room", "1.2", mem("u2"), 100)
		joined <- err
	}()
	select {
	case err := <-joined:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join waited for a resync that waits for the channel lock: deadlock")
	}
	h.chanMu.Unlock()
	<-done
	leaves, _ := h.snapshot()
	if len(leaves) != 1 || leaves[0] != "app/presence-room/u1 vacated=true last=true" {
		t.Fatalf("reported %v", leaves)
	}
	if c, _ := p.counts(ctx, "app", []string{"presence-room"}); c[0].Subscriptions != 1 || c[0].Users != 1 {
		t.Fatalf("after the resync Redis holds %+v, want u2's socket only", c)
	}
}
