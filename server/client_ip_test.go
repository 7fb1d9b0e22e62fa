package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestClientAddr(t *testing.T) {
	proxies := prefixes("10.0.0.0/8", "fd00::/8")
	tcs := []struct {
		name    string
		peer    string
		xff     []string
		hops    int
		trusted []netip.Prefix
		want    string
	}{
		{name: "no trust ignores the header", xff: []string{"1.2.3.4"}, want: "10.0.0.1"},
		{name: "one proxy", xff: []string{"1.2.3.4"}, hops: 1, want: "1.2.3.4"},
		{name: "forged entries left of the trusted hop", xff: []string{"6.6.6.6, 1.2.3.4"}, hops: 1, want: "1.2.3.4"},
		{name: "two proxies", xff: []string{"1.2.3.4, 10.9.9.9"}, hops: 2, want: "1.2.3.4"},
		{name: "several headers", xff: []string{"1.2.3.4", "10.9.9.9"}, hops: 2, want: "1.2.3.4"},
		// The request skipped a proxy: the lone entry may be the client's
		// own writing, so the peer is all that is known.
		{name: "fewer entries than hops", xff: []string{"1.2.3.4"}, hops: 3, want: "10.0.0.1"},
		{name: "no header", hops: 1, want: "10.0.0.1"},
		{name: "garbage", xff: []string{"not-an-ip"}, hops: 1, want: "10.0.0.1"},
		{name: "ipv6", xff: []string{"2001:db8::1"}, hops: 1, want: "2001:db8::1"},
		{name: "mapped ipv4 peer", peer: "[::ffff:10.0.0.1]:5555", want: "10.0.0.1"},

		{name: "trusted peer", xff: []string{"1.2.3.4"}, trusted: proxies, want: "1.2.3.4"},
		{name: "untrusted peer is the client", peer: "192.0.2.9:5555", xff: []string{"1.2.3.4"}, trusted: proxies, want: "192.0.2.9"},
		{name: "untrusted peer with hops", peer: "192.0.2.9:5555", xff: []string{"1.2.3.4"}, hops: 1, trusted: proxies, want: "192.0.2.9"},
		{name: "walks through trusted proxies", xff: []string{"6.6.6.6, 1.2.3.4, 10.2.2.2, 10.3.3.3"}, trusted: proxies, want: "1.2.3.4"},
		{name: "hops cap the walk", xff: []string{"6.6.6.6, 1.2.3.4, 10.2.2.2, 10.3.3.3"}, hops: 1, trusted: proxies, want: "10.3.3.3"},
		{name: "forged trusted-looking entry left of the client", xff: []string{"10.6.6.6, 1.2.3.4"}, trusted: proxies, want: "1.2.3.4"},
		// Entries ran out while every address was a trusted proxy: the
		// leftmost entry, which a trusted proxy appended, is the client.
		{name: "fewer entries than hops, trusted", xff: []string{"10.2.2.2"}, hops: 3, trusted: proxies, want: "10.2.2.2"},
		{name: "trusted peer without header", hops: 2, trusted: proxies, want: "10.0.0.1"},
		{name: "malformed entry stops at the last believed", xff: []string{"1.2.3.4, bogus"}, trusted: proxies, want: "10.0.0.1"},
		{name: "entries with ports", xff: []string{"[2001:db8::7]:443, 10.2.2.2:80"}, trusted: proxies, want: "2001:db8::7"},
		{name: "ipv6 proxy", peer: "[fd00::1]:5555", xff: []string{"2001:db8::7"}, trusted: proxies, want: "2001:db8::7"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "10.0.0.1:5555"
			if tc.peer != "" {
				r.RemoteAddr = tc.peer
			}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tc.hops, tc.trusted); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	tcs := []struct {
		ip   string
		bits int
		want string
	}{
		{"203.0.113.7", 0, "203.0.113.7"},
		{"::ffff:203.0.113.7", 0, "203.0.113.7"},
		{"2001:db8:1:2:aaaa::1", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::2", 0, "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", 0, "2001:db8:1:3::/64"},
		{"2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1"},
		{"fe80::1%eth0", 0, "fe80::/64"},
		{"2001:db8:1:2::/64", 0, "2001:db8:1:2::/64"}, // idempotent
		{"not-an-ip", 0, "not-an-ip"},
	}
	for _, tc := range tcs {
		t.Run(tc.ip, func(t *testing.T) {
			if got := clientKey(tc.ip, tc.bits); got != tc.want {
				t.Fatalf("clientKey(%s, %d) = %s, want %s", tc.ip, tc.bits, got, tc.want)
			}
		})
	}
}

// TestWSConnectBudgetPerClientKey: through a trusted proxy (the loopback
// peer), two addresses of one IPv6 /64 share a connect budget and another
// /64 has its own; from a peer that is not a trusted proxy the header is
// ignored and every request counts against the peer.
func TestWSConnectBudgetPerClientKey(t *testing.T) {
	refused := func(ts *testServer, xff string) bool {
		t.Helper()
		c := ts.dialRaw(t, "", http.Header{"X-Forwarded-For": {xff}})
		f := c.next()
		switch {
		case f.Event == "pusher:connection_established":
			return false
		case f.Event == "pusher:error" && strings.Contains(f.raw, `"code":4100`):
			return true
		}
		t.Fatalf("unexpected frame %s", f.raw)
		return false
	}
	t.Run("trusted proxy", func(t *testing.T) {
		ts := newTestServer(t, Config{TrustedProxies: prefixes("127.0.0.0/8"), Limits: Limits{WSConnect: limiter(2)}})
		for i, tc := range []struct {
			xff     string
			refused bool
		}{
			{"2001:db8:1:2::1", false},
			{"2001:db8:1:2:ffff::2", false},
			{"2001:db8:1:2::3", true}, // third address of the same /64
			{"2001:db8:1:3::1", false},
			{"203.0.113.1", false},
			{"203.0.113.2", false},
		} {
			if got := refused(ts, tc.xff); got != tc.refused {
				t.Fatalf("connect %d from %s: refused %v, want %v", i, tc.xff, got, tc.refused)
			}
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		ts := newTestServer(t, Config{TrustedProxies: prefixes("10.0.0.0/8"), TrustHops: 1, Limits: Limits{WSConnect: limiter(2)}})
		got := []bool{refused(ts, "203.0.113.1"), refused(ts, "203.0.113.2"), refused(ts, "203.0.113.3")}
		if got[0] || got[1] || !got[2] {
			t.Fatalf("refused %v, want the third refused: the header of an untrusted peer is ignored", got)
		}
	})
}

// X-Forwarded-Proto is believed only from a trusted proxy, and only the
// value that proxy set (the last one).
func TestForwardedHTTPS(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tcs := []struct {
		name    string
		peer    string
		trusted []netip.Prefix
		proto   []string
		want    bool
	}{
		{"trusted proxy says https", "127.0.0.1:5000", loopback, []string{"https"}, true},
		{"case and spaces", "127.0.0.1:5000", loopback, []string{" HTTPS "}, true},
		{"trusted proxy says http", "127.0.0.1:5000", loopback, []string{"http"}, false},
		{"client wrote https, proxy appended http", "127.0.0.1:5000", loopback, []string{"https, http"}, false},
		{"two headers, last one counts", "127.0.0.1:5000", loopback, []string{"http", "https"}, true},
		{"no header", "127.0.0.1:5000", loopback, nil, false},
		{"peer not trusted", "203.0.113.7:5000", loopback, []string{"https"}, false},
		{"no trusted proxies", "127.0.0.1:5000", nil, []string{"https"}, false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: Config{TrustedProxies: tc.trusted}}
			r := httptest.NewRequest("GET", "/console/api/login", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			if got := s.ForwardedHTTPS(r); got != tc.want {
				t.Fatalf("ForwardedHTTPS = %v, want %v", got, tc.want)
			}
		})
	}
}
