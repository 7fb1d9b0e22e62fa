package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// tapBroker is the local broker with a record of what went through it.
type tapBroker struct {
	localBroker
	mu       sync.Mutex
	messages []string // "channel event" or "user:<id> event"
	commands []Command
}

func (b *tapBroker) Publish(ctx context.Context, m Message) error {
	var f struct{ Event string }
	_ = json.Unmarshal(framePayload(m.Frame), &f)
	to := m.Channel
	if m.User != "" {
		to = "user:" + m.User
	}
	b.mu.Lock()
	b.messages = append(b.messages, to+" "+f.Event)
	b.mu.Unlock()
	return b.localBroker.Publish(ctx, m)
}

func (b *tapBroker) Command(ctx context.Context, c Command) error {
	b.mu.Lock()
	b.commands = append(b.commands, c)
	b.mu.Unlock()
	return b.localBroker.Command(ctx, c)
}

func (b *tapBroker) seen() ([]string, []Command) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.messages), slices.Clone(b.commands)
}

// Everything that reaches sockets of other connections goes through the
// Broker (so Redis mode sees it): API events, client events,
// server-to-user events, presence and count events, terminate and
// watchlist changes.
func TestEverythingGoesThroughTheBroker(t *testing.T) {
	app := testApp()
	app.EnableSubscriptionCount = true
	store := &memStore{apps: []storage.App{app}}
	tap := &tapBroker{}
	s, err := New(Config{}, store, nil, WithBroker(tap))
	if err != nil {
		t.Fatal(err)
	}
	ts := serveTest(t, s, store)

	a, b := ts.dial(t), ts.dial(t)
	a.signin(`{"id":"u1","watchlist":["u2"]}`)
	a.expect("pusher_internal:watchlist_events")
	a.subscribeAuth("presence-p", `{"user_id":"u1"}`, "app-secret")
	a.expect("pusher_internal:subscription_succeeded")
	b.signin(`{"id":"u2"}`)
	a.expect("pusher_internal:watchlist_events") // u2 online
	b.subscribeAuth("presence-p", `{"user_id":"u2"}`, "app-secret")
	b.expect("pusher_internal:subscription_succeeded")
	a.expect("pusher_internal:member_added")
	b.sendJSON(`{"event":"client-x","channel":"presence-p","data":{}}`)
	a.expect("client-x")
	b.subscribe("pub")
	b.expect("pusher_internal:subscription_count")
	ts.trigger(t, "pub", "api-event", "x")
	b.expect("api-event")
	ts.trigger(t, "#server-to-user-u1", "to-user", "x")
	a.expect("to-user")
	if code, body := ts.api(t, "POST", "/apps/app-id/users/u2/terminate_connections", nil, "{}"); code != 200 {
		t.Fatalf("terminate: %d %s", code, body)
	}
	b.expect("pusher:error")
	a.expect("pusher_internal:member_removed")
	a.expect("pusher_internal:watchlist_events") // u2 offline

	messages, commands := tap.seen()
	want := []string{
		"presence-p pusher_internal:member_added",
		"presence-p client-x",
		"pub pusher_internal:subscription_count",
		"pub api-event",
		"user:u1 to-user",
		"presence-p pusher_internal:member_removed",
	}
	for _, w := range want {
		if !slices.Contains(messages, w) {
			t.Errorf("no %q through the broker; saw %q", w, messages)
		}
	}
	var kinds []CommandKind
	for _, c := range commands {
		kinds = append(kinds, c.Kind)
	}
	for _, k := range []CommandKind{CommandOnline, CommandTerminate, CommandOffline} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no command %d through the broker; saw %v", k, kinds)
		}
	}
}

// clusterPresence is the local presence plus a user "remote" that another
// node has subscribed to every presence channel and signed in.
type clusterPresence struct{ localPresence }

var remoteMember = protocol.Member{UserID: "remote", Info: []byte(`{"node":2}`)}

func (p *clusterPresence) Join(ctx context.Context, app, channel, socketID string, m *protocol.Member, max int) (JoinResult, error) {
	res, err := p.localPresence.Join(ctx, app, channel, socketID, m, max)
	if m != nil {
		res.Members = append(res.Members, remoteMember)
	}
	return res, err
}

func (p *clusterPresence) Channel(ctx context.Context, app, channel string) (ChannelCounts, error) {
	c, err := p.localPresence.Channel(ctx, app, channel)
	if strings.HasPrefix(channel, "presence-") {
		c.Subscriptions++
		c.Users++
	}
	return c, err
}

func (p *clusterPresence) Online(ctx context.Context, app string, ids []string) ([]bool, error) {
	on, err := p.localPresence.Online(ctx, app, ids)
	for i, id := range ids {
		on[i] = on[i] || id == remoteMember.UserID
	}
	return on, err
}

// What sockets and the API are told about the cluster comes from Presence,
// not from this node's sockets.
func TestClusterStateComesFromPresence(t *testing.T) {
	store := &memStore{apps: []storage.App{testApp()}}
	s, err := New(Config{}, store, nil, WithPresence(&clusterPresence{}))
	if err != nil {
		t.Fatal(err)
	}
	ts := serveTest(t, s, store)
	a := ts.dial(t)
	a.subscribeAuth("presence-p", `{"user_id":"u1"}`, "app-secret")
	var d struct {
		Presence struct {
			Count int
			Hash  map[string]any
		}
	}
	if err := json.Unmarshal([]byte(a.expect("pusher_internal:subscription_succeeded").dataString(t)), &d); err != nil {
		t.Fatal(err)
	}
	if d.Presence.Count != 2 || d.Presence.Hash["remote"] == nil {
		t.Fatalf("subscription_succeeded presence %+v, want u1 and remote", d.Presence)
	}
	if code, body := ts.api(t, "GET", "/apps/app-id/channels/presence-p", map[string][]string{"info": {"user_count"}}, ""); code != 200 || body != `{"occupied":true,"user_count":2}` {
		t.Fatalf("channel info %d %s", code, body)
	}
	a.signin(`{"id":"u1","watchlist":["remote","nobody"]}`)
	if f := a.expect("pusher_internal:watchlist_events"); !strings.Contains(f.raw, `{"name":"online","user_ids":["remote"]}`) {
		t.Fatalf("watchlist %s", f.raw)
	}
}

// Routes that carry their own authentication are mounted as they are.
func TestHandleMountsOwnAuthRoutes(t *testing.T) {
	store := &memStore{apps: []storage.App{testApp()}}
	s, err := New(Config{}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("POST /apps/{app_id}/push/devices", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusCreated, []byte(`{"app":"`+r.PathValue("app_id")+`","ip":"`+s.ClientIP(r)+`"}`))
	}))
	ts := serveTest(t, s, store)
	resp, err := http.Post("http://"+ts.addr+"/apps/app-id/push/devices", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ App, IP string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusCreated || got.App != "app-id" || got.IP != "127.0.0.1" {
		t.Fatalf("status %d, body %+v, err %v", resp.StatusCode, got, err)
	}
	// The signed API next to it still wants its signature.
	resp2, err := http.Post("http://"+ts.addr+"/apps/app-id/events", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned trigger: %d, want 401", resp2.StatusCode)
	}
}

// framePayload returns the payload of an unmasked server frame.
func framePayload(f []byte) []byte {
	switch n := f[1] & 0x7f; n {
	case 126:
		return f[4 : 4+binary.BigEndian.Uint16(f[2:])]
	case 127:
		return f[10:]
	default:
		return f[2 : 2+n]
	}
}
