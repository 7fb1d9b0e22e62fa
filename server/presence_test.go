package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

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
