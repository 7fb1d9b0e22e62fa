package protocol

import "testing"

func TestClassify(t *testing.T) {
	tcs := []struct {
		name      string
		channel   string
		want      Channel
		needsAuth bool
	}{
		{name: "public", channel: "my-channel", want: Channel{Type: Public}},
		{name: "public cache", channel: "cache-news", want: Channel{Type: Public, Cache: true}},
		{name: "private", channel: "private-chat", want: Channel{Type: Private}, needsAuth: true},
		{name: "private cache", channel: "private-cache-chat", want: Channel{Type: Private, Cache: true}, needsAuth: true},
		{name: "encrypted", channel: "private-encrypted-test", want: Channel{Type: Encrypted}, needsAuth: true},
		{name: "encrypted cache", channel: "private-encrypted-cache-test", want: Channel{Type: Encrypted, Cache: true}, needsAuth: true},
		{name: "presence", channel: "presence-room", want: Channel{Type: Presence}, needsAuth: true},
		{name: "presence cache", channel: "presence-cache-room", want: Channel{Type: Presence, Cache: true}, needsAuth: true},
		{name: "server to user", channel: "#server-to-user-42", want: Channel{Type: ServerToUser}},
		{name: "server to user prefix only", channel: "#server-to-user-", want: Channel{Type: ServerToUser}},
		{name: "bare private prefix", channel: "private-", want: Channel{Type: Private}, needsAuth: true},
		{name: "bare presence prefix", channel: "presence-", want: Channel{Type: Presence}, needsAuth: true},
		{name: "bare cache prefix", channel: "cache-", want: Channel{Type: Public, Cache: true}},
		{name: "private in the middle", channel: "foo-private-x", want: Channel{Type: Public}},
		{name: "presence in the middle", channel: "foo-presence-x", want: Channel{Type: Public}},
		{name: "encrypted in the middle", channel: "foo-private-encrypted-x", want: Channel{Type: Public}},
		{name: "cache in the middle", channel: "foo-cache-x", want: Channel{Type: Public}},
		{name: "cache in the middle of private", channel: "private-foo-cache-x", want: Channel{Type: Private}, needsAuth: true},
		{name: "cache in the middle of presence", channel: "presence-foo-cache-x", want: Channel{Type: Presence}, needsAuth: true},
		{name: "server to user in the middle", channel: "x#server-to-user-1", want: Channel{Type: Public}},
		{name: "private without dash", channel: "privatechat", want: Channel{Type: Public}},
		{name: "encrypted without dash", channel: "private-encryptedx", want: Channel{Type: Private}, needsAuth: true},
		{name: "cache without dash", channel: "cachex", want: Channel{Type: Public}},
		{name: "private cache without dash", channel: "private-cachex", want: Channel{Type: Private}, needsAuth: true},
		{name: "prefixes are case sensitive", channel: "Private-chat", want: Channel{Type: Public}},
		{name: "server to user is case sensitive", channel: "#Server-to-user-1", want: Channel{Type: Public}},
		{name: "empty", channel: "", want: Channel{Type: Public}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.channel)
			if got != tc.want {
				t.Fatalf("Classify(%q) = %+v, want %+v", tc.channel, got, tc.want)
			}
			if got.NeedsAuth() != tc.needsAuth {
				t.Fatalf("Classify(%q).NeedsAuth() = %v, want %v", tc.channel, got.NeedsAuth(), tc.needsAuth)
			}
		})
	}
}

func TestValidChannelName(t *testing.T) {
	tcs := []struct {
		name    string
		channel string
		maxLen  int
		want    bool
	}{
		{name: "single char", channel: "a", maxLen: 200, want: true},
		{name: "whole charset", channel: "AZaz09_-=@,.;", maxLen: 200, want: true},
		{name: "laravel style", channel: "private-App.Models.User.1", maxLen: 200, want: true},
		{name: "pusher capture", channel: "chatrooms.5432132", maxLen: 200, want: true},
		{name: "at the limit", channel: long("a", 200), maxLen: 200, want: true},
		{name: "over the limit", channel: long("a", 201), maxLen: 200, want: false},
		{name: "docs limit 164", channel: long("a", 164), maxLen: 164, want: true},
		{name: "over docs limit 164", channel: long("a", 165), maxLen: 164, want: false},
		{name: "prefix counts toward length", channel: "private-" + long("a", 193), maxLen: 200, want: false},
		{name: "empty", channel: "", maxLen: 200, want: false},
		{name: "zero limit", channel: "a", maxLen: 0, want: false},
		{name: "space", channel: "my channel", maxLen: 200, want: false},
		{name: "colon", channel: "pusher:x", maxLen: 200, want: false},
		{name: "slash", channel: "a/b", maxLen: 200, want: false},
		{name: "backslash", channel: `a\b`, maxLen: 200, want: false},
		{name: "star", channel: "a*", maxLen: 200, want: false},
		{name: "quote", channel: `a"`, maxLen: 200, want: false},
		{name: "newline", channel: "a\n", maxLen: 200, want: false},
		{name: "nul", channel: "a\x00", maxLen: 200, want: false},
		{name: "non-ascii", channel: "caf\u00e9", maxLen: 200, want: false},
		{name: "invalid utf8", channel: "a\xff", maxLen: 200, want: false},
		{name: "hash alone", channel: "#", maxLen: 200, want: false},
		{name: "hash prefix other than server-to-user", channel: "#foo", maxLen: 200, want: false},
		{name: "hash in the middle", channel: "foo#bar", maxLen: 200, want: false},
		{name: "server to user", channel: "#server-to-user-42", maxLen: 200, want: true},
		{name: "server to user with charset id", channel: "#server-to-user-a_b=c@d,e.f;g-1", maxLen: 200, want: true},
		{name: "server to user without id", channel: "#server-to-user-", maxLen: 200, want: false},
		{name: "server to user with hash in id", channel: "#server-to-user-a#b", maxLen: 200, want: false},
		{name: "server to user twice", channel: "#server-to-user-#server-to-user-1", maxLen: 200, want: false},
		{name: "server to user with space in id", channel: "#server-to-user-a b", maxLen: 200, want: false},
		{name: "server to user prefix counts toward length", channel: "#server-to-user-" + long("1", 185), maxLen: 200, want: false},
		{name: "server to user at the limit", channel: "#server-to-user-" + long("1", 184), maxLen: 200, want: true},
		{name: "server to user prefix truncated", channel: "#server-to-user", maxLen: 200, want: false},
		{name: "server to user wrong case", channel: "#Server-to-user-1", maxLen: 200, want: false},
		{name: "server to user prefix in the middle", channel: "x#server-to-user-1", maxLen: 200, want: false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidChannelName(tc.channel, tc.maxLen); got != tc.want {
				t.Fatalf("ValidChannelName(%q, %d) = %v, want %v", tc.channel, tc.maxLen, got, tc.want)
			}
		})
	}
}

// Every byte outside [A-Za-z0-9_\-=@,.;] is refused, alone and inside a name.
func TestValidChannelNameCharset(t *testing.T) {
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;"
	ok := map[byte]bool{}
	for i := 0; i < len(allowed); i++ {
		ok[allowed[i]] = true
	}
	for c := 0; c < 256; c++ {
		b := byte(c)
		for _, name := range []string{string([]byte{b}), "private-" + string([]byte{b}) + "x", "#server-to-user-" + string([]byte{b})} {
			if got := ValidChannelName(name, 200); got != ok[b] {
				t.Errorf("ValidChannelName(%q) = %v, want %v", name, got, ok[b])
			}
		}
	}
}

func TestValidEventName(t *testing.T) {
	tcs := []struct {
		name   string
		event  string
		maxLen int
		want   bool
	}{
		{name: "plain", event: "my-event", maxLen: 200, want: true},
		{name: "laravel backslashes", event: `App\Events\OrderShipped`, maxLen: 200, want: true},
		{name: "dots and spaces", event: "order.shipped now", maxLen: 200, want: true},
		{name: "non-ascii", event: "événement", maxLen: 200, want: true},
		{name: "client prefix", event: "client-typing", maxLen: 200, want: true},
		{name: "pusher in the middle", event: "my-pusher:event", maxLen: 200, want: true},
		{name: "pusher without colon", event: "pusher-event", maxLen: 200, want: true},
		{name: "at the limit", event: long("e", 200), maxLen: 200, want: true},
		{name: "over the limit", event: long("e", 201), maxLen: 200, want: false},
		{name: "empty", event: "", maxLen: 200, want: false},
		{name: "pusher prefix", event: "pusher:subscribe", maxLen: 200, want: false},
		{name: "pusher prefix alone", event: "pusher:", maxLen: 200, want: false},
		{name: "pusher_internal prefix", event: "pusher_internal:member_added", maxLen: 200, want: false},
		{name: "pusher_internal prefix alone", event: "pusher_internal:", maxLen: 200, want: false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidEventName(tc.event, tc.maxLen); got != tc.want {
				t.Fatalf("ValidEventName(%q, %d) = %v, want %v", tc.event, tc.maxLen, got, tc.want)
			}
		})
	}
}
