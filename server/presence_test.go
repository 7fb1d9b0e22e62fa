package server

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// testPresence is the Presence contract: every implementation (local, and
// Redis in Redis mode) must pass it. newPresence returns an empty one.
func testPresence(t *testing.T, newPresence func(t *testing.T) Presence) {
	ctx := context.Background()
	member := func(id string) *protocol.Member {
		return &protocol.Member{UserID: id, Info: []byte(`{"n":"` + id + `"}`)}
	}

	t.Run("occupied on the first subscriber, vacated after the last", func(t *testing.T) {
		p := newPresence(t)
		j1, err := p.Join(ctx, "a", "pub", "1.1", nil, 100)
		if err != nil || !j1.Occupied || j1.Count != 1 || j1.Members != nil {
			t.Fatalf("first join %+v %v", j1, err)
		}
		j2, _ := p.Join(ctx, "a", "pub", "1.2", nil, 100)
		if j2.Occupied || j2.Count != 2 {
			t.Fatalf("second join %+v", j2)
		}
		if c, _ := p.Channel(ctx, "a", "pub"); c.Subscriptions != 2 || c.Name != "pub" {
			t.Fatalf("counts %+v", c)
		}
		if l, _ := p.Leave(ctx, "a", "pub", "1.1", ""); l.Vacated || l.Count != 1 {
			t.Fatalf("first leave %+v", l)
		}
		if l, _ := p.Leave(ctx, "a", "pub", "1.2", ""); !l.Vacated || l.Count != 0 {
			t.Fatalf("last leave %+v", l)
		}
		if c, _ := p.Channel(ctx, "a", "pub"); c.Subscriptions != 0 {
			t.Fatalf("vacated channel still counts %+v", c)
		}
	})

	t.Run("a member is added once per user and removed with its last socket", func(t *testing.T) {
		p := newPresence(t)
		j, _ := p.Join(ctx, "a", "presence-x", "1.1", member("u1"), 100)
		if !j.FirstForUser || len(j.Members) != 1 || j.Members[0].UserID != "u1" || string(j.Members[0].Info) != `{"n":"u1"}` {
			t.Fatalf("first socket of u1 %+v", j)
		}
		if j, _ = p.Join(ctx, "a", "presence-x", "1.2", member("u1"), 100); j.FirstForUser || len(j.Members) != 1 || j.Count != 2 {
			t.Fatalf("second socket of u1 %+v", j)
		}
		if j, _ = p.Join(ctx, "a", "presence-x", "1.3", member("u2"), 100); !j.FirstForUser || len(j.Members) != 2 {
			t.Fatalf("u2 %+v", j)
		}
		if c, _ := p.Channel(ctx, "a", "presence-x"); c.Subscriptions != 3 || c.Users != 2 {
			t.Fatalf("counts %+v", c)
		}
		if l, _ := p.Leave(ctx, "a", "presence-x", "1.1", "u1"); l.LastForUser {
			t.Fatalf("u1 still has a socket: %+v", l)
		}
		if l, _ := p.Leave(ctx, "a", "presence-x", "1.2", "u1"); !l.LastForUser || l.Vacated {
			t.Fatalf("u1's last socket %+v", l)
		}
		ms, _ := p.Members(ctx, "a", "presence-x")
		if len(ms) != 1 || ms[0].UserID != "u2" {
			t.Fatalf("members %+v", ms)
		}
	})

	t.Run("a full channel refuses new users, not more sockets of its members", func(t *testing.T) {
		p := newPresence(t)
		for _, id := range []string{"u1", "u2"} {
			if _, err := p.Join(ctx, "a", "presence-x", id+".1", member(id), 2); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.Join(ctx, "a", "presence-x", "3.1", member("u3"), 2); !errors.Is(err, ErrPresenceFull) {
			t.Fatalf("third user: %v, want ErrPresenceFull", err)
		}
		if _, err := p.Join(ctx, "a", "presence-x", "u1.2", member("u1"), 2); err != nil {
			t.Fatalf("second socket of a member: %v", err)
		}
		if c, _ := p.Channel(ctx, "a", "presence-x"); c.Subscriptions != 3 || c.Users != 2 {
			t.Fatalf("a refused join changed the counts: %+v", c)
		}
	})

	t.Run("channels are listed per app and prefix", func(t *testing.T) {
		p := newPresence(t)
		for _, k := range []chanKey{{"a", "pub-1"}, {"a", "pub-2"}, {"a", "other"}, {"b", "pub-3"}} {
			if _, err := p.Join(ctx, k.app, k.name, "1.1", nil, 100); err != nil {
				t.Fatal(err)
			}
		}
		list, _ := p.Channels(ctx, "a", "pub-")
		var names []string
		for _, c := range list {
			names = append(names, c.Name)
		}
		sort.Strings(names)
		if !slices.Equal(names, []string{"pub-1", "pub-2"}) {
			t.Fatalf("channels %v", names)
		}
	})

	t.Run("signed-in users: first, last and online", func(t *testing.T) {
		p := newPresence(t)
		if first, _ := p.SignIn(ctx, "a", "u1", "1.1"); !first {
			t.Fatal("first socket of u1 not reported first")
		}
		if first, _ := p.SignIn(ctx, "a", "u1", "1.2"); first {
			t.Fatal("second socket of u1 reported first")
		}
		if on, _ := p.Online(ctx, "a", []string{"u1", "u2"}); !slices.Equal(on, []bool{true, false}) {
			t.Fatalf("online %v", on)
		}
		if on, _ := p.Online(ctx, "b", []string{"u1"}); on[0] {
			t.Fatal("users are per app")
		}
		if last, _ := p.SignOut(ctx, "a", "u1", "1.1"); last {
			t.Fatal("u1 still has a socket")
		}
		if last, _ := p.SignOut(ctx, "a", "u1", "1.2"); !last {
			t.Fatal("u1's last socket not reported last")
		}
		if on, _ := p.Online(ctx, "a", []string{"u1"}); on[0] {
			t.Fatal("u1 still online")
		}
	})
}

func TestLocalPresence(t *testing.T) {
	testPresence(t, func(*testing.T) Presence { return &localPresence{} })
}

// reportingPresence is the local presence that can report a dead node's
// transitions, as a Redis presence does when a node's entries expire.
type reportingPresence struct {
	localPresence
	h PresenceHandler
}

func (p *reportingPresence) RegisterHandler(h PresenceHandler) error {
	p.h = h
	return nil
}

// A dead node's sockets leave like local ones: member_removed reaches the
// channel, watchers learn the user is offline, webhooks get the
// transitions.
func TestDeadNodeTransitionsAreAnswered(t *testing.T) {
	store := &memStore{apps: []storage.App{testApp()}}
	p := &reportingPresence{}
	s, err := New(Config{}, store, nil, WithPresence(p))
	if err != nil {
		t.Fatal(err)
	}
	if p.h == nil {
		t.Fatal("New did not register a PresenceHandler")
	}
	sink := &recordingSink{ch: make(chan struct{}, 1)}
	s.SetEventSink(sink)
	ts := serveTest(t, s, store)
	a := ts.dial(t)
	a.signin(`{"id":"u1","watchlist":["ghost"]}`)
	a.expect("pusher_internal:watchlist_events")
	a.subscribeAuth("presence-p", `{"user_id":"u1"}`, "app-secret")
	a.expect("pusher_internal:subscription_succeeded")

	p.h.HandleLeave("app-id", "presence-p", "ghost", LeaveResult{LastForUser: true, Count: 1})
	if f := a.expect("pusher_internal:member_removed"); f.dataString(t) != `{"user_id":"ghost"}` {
		t.Fatalf("member_removed %s", f.raw)
	}
	p.h.HandleSignOut("app-id", "ghost")
	if f := a.expect("pusher_internal:watchlist_events"); !strings.Contains(f.raw, `{"name":"offline","user_ids":["ghost"]}`) {
		t.Fatalf("watchlist %s", f.raw)
	}
	p.h.HandleLeave("app-id", "other", "", LeaveResult{Vacated: true})
	p.h.HandleLeave("no-such-app", "other", "", LeaveResult{Vacated: true}) // ignored
	waitFor(t, "webhook events", func() bool {
		got := sink.summary()
		return slices.Contains(got, "member_removed presence-p ghost") && slices.Contains(got, "channel_vacated other")
	})
}
