package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/server/protocol"
)

func TestPublicPublishAndExclusion(t *testing.T) {
	ts := newTestServer(t, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.subscribe("news")
	b.subscribe("news")
	ts.trigger(t, "news", "hello", `{"x":1}`)
	for _, c := range []*testClient{a, b} {
		f := c.expect("hello")
		if f.Channel != "news" || f.dataString(t) != `{"x":1}` {
			t.Fatalf("event %s", f.raw)
		}
	}
	// socket_id exclusion: a gets only the marker.
	body := `{"name":"skip","channels":["news"],"data":"1","socket_id":"` + a.socketID + `"}`
	if code, resp := ts.api(t, "POST", "/apps/app-id/events", nil, body); code != 200 || resp != "{}" {
		t.Fatalf("trigger: %d %s", code, resp)
	}
	b.expect("skip")
	ts.trigger(t, "news", "marker", "2")
	a.expect("marker")
}

func TestPrivateAuth(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dial(t)
	c.subscribeAuth("private-a", "", "wrong-secret")
	f := c.expect("pusher:subscription_error")
	var d struct {
		Type   string `json:"type"`
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil || f.Channel != "private-a" || d.Status != 401 || d.Type != "AuthError" {
		t.Fatalf("subscription_error %s", f.raw)
	}
	if strings.Contains(f.raw, c.socketID+":private-a") {
		t.Fatalf("string to sign leaked without debug: %s", f.raw)
	}
	c.subscribeAuth("private-a", "", "app-secret")
	c.expect("pusher_internal:subscription_succeeded")
	c.subscribeAuth("private-encrypted-a", "", "app-secret")
	c.expect("pusher_internal:subscription_succeeded")
	c.subscribe("still-works")
}

func TestDuplicateSubscribe(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dial(t)
	c.subscribe("x")
	c.sendJSON(`{"event":"pusher:subscribe","data":{"channel":"x"}}`)
	f := c.expect("pusher:error")
	if !strings.Contains(f.raw, "Existing subscription to channel x") {
		t.Fatalf("got %s", f.raw)
	}
	c.sendJSON(`{"event":"pusher:subscribe","data":{"channel":"bad name!"}}`)
	if f := c.expect("pusher:subscription_error"); !strings.Contains(f.raw, `"status":400`) {
		t.Fatalf("got %s", f.raw)
	}
}

func TestPresence(t *testing.T) {
	app := testApp()
	app.MaxPresenceMembersPerChannel = 2
	ts := newTestServer(t, Config{}, app)
	a := ts.dial(t)
	a.subscribeAuth("presence-room", `{"user_id":10,"user_info":{"name":"A"}}`, "app-secret")
	f := a.expect("pusher_internal:subscription_succeeded")
	var d struct {
		Presence struct {
			IDs   []string                   `json:"ids"`
			Hash  map[string]json.RawMessage `json:"hash"`
			Count int                        `json:"count"`
		} `json:"presence"`
	}
	if err := json.Unmarshal([]byte(f.dataString(t)), &d); err != nil || d.Presence.Count != 1 || d.Presence.IDs[0] != "10" ||
		string(d.Presence.Hash["10"]) != `{"name":"A"}` {
		t.Fatalf("presence data %s", f.raw)
	}
	b := ts.dial(t)
	b.subscribeAuth("presence-room", `{"user_id":"u2"}`, "app-secret")
	f = b.expect("pusher_internal:subscription_succeeded")
	if !strings.Contains(f.raw, `\"u2\":null`) || !strings.Contains(f.raw, `\"count\":2`) {
		t.Fatalf("presence data %s", f.raw)
	}
	if f := a.expect("pusher_internal:member_added"); f.dataString(t) != `{"user_id":"u2"}` {
		t.Fatalf("member_added %s", f.raw)
	}
	// Same user on a second socket: no member_added, count unchanged.
	b2 := ts.dial(t)
	b2.subscribeAuth("presence-room", `{"user_id":"u2"}`, "app-secret")
	b2.expect("pusher_internal:subscription_succeeded")
	// A third user is over the limit of 2.
	c := ts.dial(t)
	c.subscribeAuth("presence-room", `{"user_id":"u3"}`, "app-secret")
	if f := c.expect("pusher:subscription_error"); !strings.Contains(f.raw, `"status":4100`) {
		t.Fatalf("limit %s", f.raw)
	}
	code, body := ts.api(t, "GET", "/apps/app-id/channels/presence-room/users", nil, "")
	if code != 200 || body != `{"users":[{"id":"10"},{"id":"u2"}]}` {
		t.Fatalf("users %d %s", code, body)
	}
	// Leaving with one of two sockets: no member_removed; the last one: removed.
	_ = b.ws.NetConn().Close()
	b2.sendJSON(`{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	if f := a.expect("pusher_internal:member_removed"); f.dataString(t) != `{"user_id":"u2"}` {
		t.Fatalf("member_removed %s", f.raw)
	}
	ts.trigger(t, "presence-room", "marker", "1")
	a.expect("marker")
}

func TestPresenceMemberTooLarge(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dial(t)
	c.subscribeAuth("presence-x", `{"user_id":"1","user_info":{"n":"`+strings.Repeat("x", 1100)+`"}}`, "app-secret")
	if f := c.expect("pusher:subscription_error"); !strings.Contains(f.raw, `"status":413`) {
		t.Fatalf("got %s", f.raw)
	}
	if code, body := ts.api(t, "GET", "/apps/app-id/channels", nil, ""); body != `{"channels":{}}` {
		t.Fatalf("refused subscriber left a channel behind: %d %s", code, body)
	}
}

func TestClientEvents(t *testing.T) {
	ts := newTestServer(t, Config{})
	a, b := ts.dial(t), ts.dial(t)
	for _, c := range []*testClient{a, b} {
		c.subscribeAuth("private-chat", "", "app-secret")
		c.expect("pusher_internal:subscription_succeeded")
	}
	a.sendJSON(`{"event":"client-typing","channel":"private-chat","data":{"who":"a"}}`)
	f := b.expect("client-typing")
	if f.dataString(t) != `{"who":"a"}` || f.UserID != "" {
		t.Fatalf("relayed %s", f.raw)
	}
	a.ping() // a got nothing before its pong: no echo

	tcs := []struct{ name, msg, want string }{
		{"public channel", `{"event":"client-x","channel":"public","data":{}}`, "only supported on private and presence"},
		{"encrypted channel", `{"event":"client-x","channel":"private-encrypted-x","data":{}}`, "only supported on private and presence"},
		{"not subscribed", `{"event":"client-x","channel":"private-other","data":{}}`, "not subscribed to channel private-other"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			a.sendJSON(tc.msg)
			if f := a.expect("pusher:error"); !strings.Contains(f.raw, tc.want) {
				t.Fatalf("got %s", f.raw)
			}
		})
	}
	// Rate limit: 10/s; the burst beyond gets 4301 and the socket stays open.
	limited := 0
	for i := 0; i < 15; i++ {
		a.sendJSON(`{"event":"client-burst","channel":"private-chat","data":{}}`)
	}
	a.sendJSON(`{"event":"pusher:ping","data":{}}`)
	for f := a.next(); f.Event != "pusher:pong"; f = a.next() {
		if f.Event == "pusher:error" && strings.Contains(f.raw, `"code":4301`) {
			limited++
		}
	}
	if limited < 4 {
		t.Fatalf("only %d of 15 client events were rate limited", limited)
	}
}

func TestClientEventsDisabledAndPresenceUserID(t *testing.T) {
	off := testApp()
	off.EnableClientMessages = false
	ts := newTestServer(t, Config{}, off)
	a := ts.dial(t)
	a.subscribeAuth("private-x", "", "app-secret")
	a.expect("pusher_internal:subscription_succeeded")
	a.sendJSON(`{"event":"client-x","channel":"private-x","data":{}}`)
	if f := a.expect("pusher:error"); !strings.Contains(f.raw, "enable this feature") {
		t.Fatalf("got %s", f.raw)
	}

	ts2 := newTestServer(t, Config{})
	p, q := ts2.dial(t), ts2.dial(t)
	p.subscribeAuth("presence-p", `{"user_id":"7"}`, "app-secret")
	p.expect("pusher_internal:subscription_succeeded")
	q.subscribeAuth("presence-p", `{"user_id":"8"}`, "app-secret")
	q.expect("pusher_internal:subscription_succeeded")
	p.expect("pusher_internal:member_added")
	p.sendJSON(`{"event":"client-hi","channel":"presence-p","data":"plain"}`)
	if f := q.expect("client-hi"); f.UserID != "7" || f.dataString(t) != "plain" {
		t.Fatalf("relayed %s", f.raw)
	}
}

func TestSigninServerToUserAndTerminate(t *testing.T) {
	ts := newTestServer(t, Config{})
	signin := func(c *testClient, userData string) {
		t.Helper()
		auth := "app-key:" + protocol.Sign("app-secret", protocol.UserString(c.socketID, userData))
		b, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": auth, "user_data": userData}})
		c.sendJSON(string(b))
	}
	watcher := ts.dial(t)
	signin(watcher, `{"id":"w","watchlist":["u1"]}`)
	watcher.expect("pusher:signin_success")
	if f := watcher.expect("pusher_internal:watchlist_events"); f.raw != `{"event":"pusher_internal:watchlist_events","data":{"events":[{"name":"offline","user_ids":["u1"]}]}}` {
		t.Fatalf("watchlist %s", f.raw)
	}

	a, b := ts.dial(t), ts.dial(t)
	signin(a, `{"id":"u1","user_info":{"n":1}}`)
	if f := a.expect("pusher:signin_success"); !strings.Contains(f.raw, `"user_data":"{\"id\":\"u1\"`) {
		t.Fatalf("signin_success %s", f.raw)
	}
	if f := watcher.expect("pusher_internal:watchlist_events"); !strings.Contains(f.raw, `"name":"online","user_ids":["u1"]`) {
		t.Fatalf("online %s", f.raw)
	}
	signin(b, `{"id":"u1"}`)
	b.expect("pusher:signin_success")

	// Only the signed-in user may subscribe to its own channel.
	a.sendJSON(`{"event":"pusher:subscribe","data":{"auth":"","channel":"#server-to-user-u1"}}`)
	a.expect("pusher_internal:subscription_succeeded")
	a.sendJSON(`{"event":"pusher:subscribe","data":{"auth":"","channel":"#server-to-user-u2"}}`)
	a.expect("pusher:subscription_error")

	ts.trigger(t, "#server-to-user-u1", "direct", "hi")
	a.expect("direct")
	b.expect("direct")

	// Presence without channel_data by a signed-in socket.
	a.subscribeAuth("presence-s", "", "app-secret")
	if f := a.expect("pusher_internal:subscription_succeeded"); !strings.Contains(f.raw, `\"u1\":{\"n\":1}`) {
		t.Fatalf("presence from signin %s", f.raw)
	}

	if code, body := ts.api(t, "POST", "/apps/app-id/users/u1/terminate_connections", nil, "{}"); code != 200 || body != "{}" {
		t.Fatalf("terminate %d %s", code, body)
	}
	for _, c := range []*testClient{a, b} {
		for f := c.next(); f.Event != "pusher:error"; f = c.next() {
		}
		if code := c.expectClose(); code != 4009 {
			t.Fatalf("terminate close %d", code)
		}
	}
	if f := watcher.expect("pusher_internal:watchlist_events"); !strings.Contains(f.raw, `"name":"offline","user_ids":["u1"]`) {
		t.Fatalf("offline %s", f.raw)
	}

	bad := ts.dial(t)
	bad.sendJSON(`{"event":"pusher:signin","data":{"auth":"app-key:00","user_data":"{\"id\":\"x\"}"}}`)
	bad.expect("pusher:error")
	if code := bad.expectClose(); code != 4009 {
		t.Fatalf("bad signin close %d", code)
	}
}

func TestCacheChannel(t *testing.T) {
	ts := newTestServer(t, Config{})
	a := ts.dial(t)
	a.subscribe("cache-x")
	a.expect("pusher:cache_miss")
	ts.trigger(t, "cache-x", "ev", "v1")
	a.expect("ev")
	b := ts.dial(t)
	b.subscribe("cache-x")
	if f := b.expect("ev"); f.dataString(t) != "v1" {
		t.Fatalf("replay %s", f.raw)
	}
	code, body := ts.api(t, "GET", "/apps/app-id/channels/cache-x", map[string][]string{"info": {"cache"}}, "")
	if code != 200 || !strings.Contains(body, `"cache":{"event":"ev","data":"v1","ttl":1800}`) {
		t.Fatalf("info=cache %d %s", code, body)
	}
}

func TestSubscriptionCount(t *testing.T) {
	app := testApp()
	app.EnableSubscriptionCount = true
	ts := newTestServer(t, Config{}, app)
	a := ts.dial(t)
	a.subscribe("counted")
	if f := a.expect("pusher_internal:subscription_count"); f.dataString(t) != `{"subscription_count":1}` {
		t.Fatalf("count %s", f.raw)
	}
	b := ts.dial(t)
	b.subscribe("counted")
	if f := a.expect("pusher_internal:subscription_count"); f.dataString(t) != `{"subscription_count":2}` {
		t.Fatalf("count %s", f.raw)
	}
}

func TestDebugAuthErrorsShowStringToSign(t *testing.T) {
	ts := newTestServer(t, Config{DebugAuthErrors: true})
	c := ts.dial(t)
	c.subscribeAuth("private-dbg", "", "wrong")
	f := c.expect("pusher:subscription_error")
	if !strings.Contains(f.raw, "Expected HMAC SHA256 hex digest of "+c.socketID+":private-dbg") {
		t.Fatalf("debug message lacks the string to sign: %s", f.raw)
	}
}
