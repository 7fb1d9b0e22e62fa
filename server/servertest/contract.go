// Package servertest holds the contracts every server.Broker and
// server.Presence must pass: the local ones (server's tests) and Redis
// mode's (package cluster). Delivery may be asynchronous, so results are
// polled.
package servertest

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
)

// waitFor polls cond until it holds or 5 s have passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recordingHandler collects what a broker delivers.
type recordingHandler struct {
	mu       sync.Mutex
	messages []server.Message
	commands []server.Command
}

func (h *recordingHandler) HandleMessage(m server.Message) {
	h.mu.Lock()
	h.messages = append(h.messages, m)
	h.mu.Unlock()
}

func (h *recordingHandler) HandleCommand(c server.Command) {
	h.mu.Lock()
	h.commands = append(h.commands, c)
	h.mu.Unlock()
}

// Broker is the Broker contract: every implementation must pass it.
// Delivery may be asynchronous (Redis), so results are polled.
func Broker(t *testing.T, newBroker func(t *testing.T) server.Broker) {
	ctx := context.Background()
	t.Run("messages and commands reach the registered handler", func(t *testing.T) {
		b := newBroker(t)
		h := &recordingHandler{}
		if err := b.Register(h); err != nil {
			t.Fatal(err)
		}
		sent := []server.Message{
			{App: "a", Channel: "pub", Frame: []byte("f1"), Except: "1.1"},
			{App: "a", Channel: "#server-to-user-u1", User: "u1", Frame: []byte("f2")},
		}
		for _, m := range sent {
			if err := b.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		cmd := server.Command{Kind: server.CommandTerminate, App: "a", User: "u1"}
		if err := b.Command(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.messages) == len(sent) && len(h.commands) == 1
		})
		for i, m := range h.messages {
			if m.App != sent[i].App || m.Channel != sent[i].Channel || m.User != sent[i].User ||
				string(m.Frame) != string(sent[i].Frame) || m.Except != sent[i].Except {
				t.Fatalf("message %d arrived as %+v, sent %+v", i, m, sent[i])
			}
		}
		if h.commands[0] != cmd {
			t.Fatalf("command %+v, sent %+v", h.commands[0], cmd)
		}
	})
	t.Run("a cache channel keeps its last unexpired event", func(t *testing.T) {
		b := newBroker(t)
		if err := b.Register(&recordingHandler{}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := b.Cache(ctx, "a", "cache-x"); ok || err != nil {
			t.Fatalf("empty cache: ok %v, err %v", ok, err)
		}
		for _, ev := range []string{"first", "second"} {
			e := server.CacheEntry{Event: ev, Data: "d", Frame: []byte(ev), Expires: time.Now().Add(time.Minute)}
			if err := b.SetCache(ctx, "a", "cache-x", e); err != nil {
				t.Fatal(err)
			}
		}
		if e, ok, _ := b.Cache(ctx, "a", "cache-x"); !ok || e.Event != "second" || string(e.Frame) != "second" {
			t.Fatalf("cache %+v %v", e, ok)
		}
		if _, ok, _ := b.Cache(ctx, "b", "cache-x"); ok {
			t.Fatal("the cache is per app")
		}
		_ = b.SetCache(ctx, "a", "cache-old", server.CacheEntry{Event: "e", Expires: time.Now().Add(-time.Second)})
		if _, ok, _ := b.Cache(ctx, "a", "cache-old"); ok {
			t.Fatal("an expired entry was returned")
		}
	})
}

// Presence is the Presence contract: every implementation (local, and
// Redis in Redis mode) must pass it. newPresence returns an empty one.
func Presence(t *testing.T, newPresence func(t *testing.T) server.Presence) {
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
		if _, err := p.Join(ctx, "a", "presence-x", "3.1", member("u3"), 2); !errors.Is(err, server.ErrPresenceFull) {
			t.Fatalf("third user: %v, want server.ErrPresenceFull", err)
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
		for _, k := range []struct{ app, name string }{{"a", "pub-1"}, {"a", "pub-2"}, {"a", "other"}, {"b", "pub-3"}} {
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
