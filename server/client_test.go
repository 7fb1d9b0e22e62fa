package server

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// gatedPresence holds every Join until the test releases it.
type gatedPresence struct {
	localPresence
	entered chan struct{}
	release chan struct{}
}

func (p *gatedPresence) Join(ctx context.Context, app, channel, socketID string, m *protocol.Member, max int) (JoinResult, error) {
	p.entered <- struct{}{}
	<-p.release
	return p.localPresence.Join(ctx, app, channel, socketID, m, max)
}

// A socket that goes away while its subscribe waits on Presence must not
// leave a subscriber behind (a ghost count or presence member): the join
// finds the socket closed and leaves again, with events in pairs.
func TestJoinRacingTeardownLeavesNothingBehind(t *testing.T) {
	store := &memStore{apps: []storage.App{testApp()}}
	p := &gatedPresence{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := New(Config{}, store, nil, WithPresence(p))
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{ch: make(chan struct{}, 1)}
	s.SetEventSink(sink)
	ts := serveTest(t, s, store)

	c := ts.dial(t)
	c.sendJSON(`{"event":"pusher:subscribe","data":{"channel":"pub"}}`)
	<-p.entered
	_ = c.ws.NetConn().Close()
	waitFor(t, "the socket's teardown", func() bool { return s.conns.Load() == 0 })
	close(p.release)

	waitFor(t, "the join to undo itself", func() bool {
		cc, _ := p.localPresence.Channel(context.Background(), "app-id", "pub")
		return cc.Subscriptions == 0 && s.hub.publish("app-id", "pub", []byte("x"), "") == 0
	})
	waitFor(t, "channel_vacated", func() bool {
		return slices.Equal(sink.summary(), []string{"channel_occupied pub", "subscription_count pub 1", "channel_vacated pub"})
	})
}

// Sockets joining and leaving one presence channel at once: every socket
// still subscribed ends with the true member list, built the way pusher-js
// builds it (the subscription_succeeded snapshot, then member_added and
// member_removed). Snapshots and member events must not interleave
// (channelLocks).
func TestPresenceViewsAgreeUnderConcurrentJoins(t *testing.T) {
	ts := newTestServer(t, Config{})
	const n = 12
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.dial(t)
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.subscribeAuth("presence-race", `{"user_id":"u`+strconv.Itoa(i)+`"}`, "app-secret")
		}()
	}
	wg.Wait()
	var want []string
	for i, c := range clients {
		if i%2 == 1 { // the odd ones leave again while the others read
			c.sendJSON(`{"event":"pusher:unsubscribe","data":{"channel":"presence-race"}}`)
		} else {
			want = append(want, "u"+strconv.Itoa(i))
		}
	}
	sort.Strings(want)
	for i := 0; i < n; i += 2 {
		c, members := clients[i], map[string]bool{}
		waitFor(t, "client u"+strconv.Itoa(i)+"'s view of the members", func() bool {
			for len(c.frames) > 0 {
				applyPresenceFrame(t, members, <-c.frames)
			}
			got := slices.Sorted(maps.Keys(members))
			return slices.Equal(got, want)
		})
	}
}

// applyPresenceFrame updates a member view the way pusher-js does.
func applyPresenceFrame(t *testing.T, members map[string]bool, f frame) {
	switch f.Event {
	case "pusher_internal:subscription_succeeded":
		var d struct{ Presence struct{ IDs []string } }
		if err := json.Unmarshal([]byte(f.dataString(t)), &d); err != nil {
			t.Fatal(err)
		}
		clear(members)
		for _, id := range d.Presence.IDs {
			members[id] = true
		}
	case "pusher_internal:member_added", "pusher_internal:member_removed":
		var d struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal([]byte(f.dataString(t)), &d); err != nil {
			t.Fatal(err)
		}
		if f.Event == "pusher_internal:member_added" {
			members[d.UserID] = true
		} else {
			delete(members, d.UserID)
		}
	}
}
