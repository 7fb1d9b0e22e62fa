package server

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	pusher "github.com/pusher/pusher-http-go/v5"
)

// TestPusherHTTPGo drives the HTTP API and channel/user auth with the
// official Go server SDK (pusher-http-go v5), as a backend written in Go
// would.
func TestPusherHTTPGo(t *testing.T) {
	ts := newTestServer(t, Config{})
	client := pusher.Client{AppID: "app-id", Key: "app-key", Secret: "app-secret", Host: ts.addr}

	a, b := ts.dial(t), ts.dial(t)
	// Private and presence auth signed by the SDK are accepted.
	subscribeWith := func(c *testClient, channel string, member *pusher.MemberData) {
		t.Helper()
		params := []byte(url.Values{"socket_id": {c.socketID}, "channel_name": {channel}}.Encode())
		var resp []byte
		var err error
		if member == nil {
			resp, err = client.AuthorizePrivateChannel(params)
		} else {
			resp, err = client.AuthorizePresenceChannel(params, *member)
		}
		if err != nil {
			t.Fatal(err)
		}
		var auth struct {
			Auth        string `json:"auth"`
			ChannelData string `json:"channel_data"`
		}
		if err := json.Unmarshal(resp, &auth); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{
			"channel": channel, "auth": auth.Auth, "channel_data": auth.ChannelData}})
		c.sendJSON(string(b))
		c.expect("pusher_internal:subscription_succeeded")
	}
	subscribeWith(a, "private-go", nil)
	subscribeWith(b, "private-go", nil)
	subscribeWith(a, "presence-go", &pusher.MemberData{UserID: "1", UserInfo: map[string]string{"name": "A"}})

	if err := client.Trigger("private-go", "hello", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testClient{a, b} {
		if f := c.expect("hello"); f.dataString(t) != `{"n":1}` {
			t.Fatalf("event %s", f.raw)
		}
	}
	if _, err := client.TriggerWithParams("private-go", "skip", "x", pusher.TriggerParams{SocketID: &a.socketID}); err != nil {
		t.Fatal(err)
	}
	b.expect("skip")
	info := "subscription_count,user_count"
	res, err := client.TriggerMultiWithParams([]string{"private-go", "presence-go"}, "multi", "y", pusher.TriggerParams{Info: &info})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Channels["private-go"].SubscriptionCount; n == nil || *n != 2 {
		t.Fatalf("trigger info %+v", res.Channels)
	}
	if n := res.Channels["presence-go"].UserCount; n == nil || *n != 1 {
		t.Fatalf("trigger info %+v", res.Channels)
	}
	if _, err := client.TriggerBatch([]pusher.Event{{Channel: "private-go", Name: "b1", Data: "1"}, {Channel: "private-go", Name: "b2", Data: "2"}}); err != nil {
		t.Fatal(err)
	}

	prefix, userCount := "presence-", "user_count"
	channels, err := client.Channels(pusher.ChannelsParams{FilterByPrefix: &prefix, Info: &userCount})
	if err != nil || channels.Channels["presence-go"].UserCount != 1 || len(channels.Channels) != 1 {
		t.Fatalf("channels %+v %v", channels, err)
	}
	subs := "subscription_count"
	ch, err := client.Channel("private-go", pusher.ChannelParams{Info: &subs})
	if err != nil || !ch.Occupied || ch.SubscriptionCount != 2 {
		t.Fatalf("channel %+v %v", ch, err)
	}
	users, err := client.GetChannelUsers("presence-go")
	if err != nil || len(users.List) != 1 || users.List[0].ID != "1" {
		t.Fatalf("users %+v %v", users, err)
	}
	empty, err := client.Channels(pusher.ChannelsParams{FilterByPrefix: strPtr("nothing-")})
	if err != nil || len(empty.Channels) != 0 {
		t.Fatalf("empty channels %+v %v", empty, err)
	}

	// Signin with the SDK's user authentication, then a server-to-user event.
	params := []byte(url.Values{"socket_id": {b.socketID}}.Encode())
	resp, err := client.AuthenticateUser(params, map[string]any{"id": "u7"})
	if err != nil {
		t.Fatal(err)
	}
	var ua struct {
		Auth     string `json:"auth"`
		UserData string `json:"user_data"`
	}
	_ = json.Unmarshal(resp, &ua)
	sb, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": ua.Auth, "user_data": ua.UserData}})
	b.sendJSON(string(sb))
	for f := b.next(); f.Event != "pusher:signin_success"; f = b.next() {
	}
	if err := client.SendToUser("u7", "direct", "hi"); err != nil {
		t.Fatal(err)
	}
	b.expect("direct")

	// A wrong secret is refused with a status the SDK reports as an error.
	bad := client
	bad.Secret = "wrong"
	if err := bad.Trigger("private-go", "x", "y"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func strPtr(s string) *string { return &s }
