package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/server"
)

func TestClientSettings(t *testing.T) {
	tcs := []struct {
		name     string
		env      map[string]string
		proxies  []netip.Prefix
		prefix   int
		replay   bool
		warns    bool
		problems []string
	}{
		{name: "defaults", prefix: 64},
		{name: "proxies", env: map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,fd00::/8,::ffff:172.16.0.0/108"},
			proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
				netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("172.16.0.0/12")}, prefix: 64},
		{name: "hops without proxies warn", env: map[string]string{"RATE_LIMITER_WS_TRUST_HOPS": "1"}, prefix: 64, warns: true},
		{name: "hops with proxies", env: map[string]string{"RATE_LIMITER_WS_TRUST_HOPS": "1", "TRUSTED_PROXIES": "10.0.0.1"},
			proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, prefix: 64},
		{name: "prefix and replay", env: map[string]string{"RATE_LIMITER_IPV6_PREFIX_LENGTH": "56", "HTTP_API_REPLAY_CACHE_ENABLED": "true"},
			prefix: 56, replay: true},
		{name: "bad values", env: map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal", "RATE_LIMITER_IPV6_PREFIX_LENGTH": "129",
			"HTTP_API_REPLAY_CACHE_ENABLED": "true", "HTTP_API_REPLAY_CACHE_MAX_ENTRIES": "0"},
			problems: []string{"TRUSTED_PROXIES", "RATE_LIMITER_IPV6_PREFIX_LENGTH", "HTTP_API_REPLAY_CACHE_MAX_ENTRIES"}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if len(tc.problems) > 0 {
				for _, v := range tc.problems {
					if err == nil || !strings.Contains(err.Error(), v+":") {
						t.Errorf("error does not name %s: %v", v, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			var sc server.Config
			c.clientSettings(&sc, slog.New(slog.NewTextHandler(&logs, nil)))
			if !reflect.DeepEqual(sc.TrustedProxies, tc.proxies) || sc.IPv6PrefixLen != tc.prefix || (sc.Replay != nil) != tc.replay {
				t.Fatalf("got proxies %v prefix %d replay %v", sc.TrustedProxies, sc.IPv6PrefixLen, sc.Replay != nil)
			}
			if warned := strings.Contains(logs.String(), "TRUSTED_PROXIES"); warned != tc.warns {
				t.Fatalf("warned %v, want %v: %s", warned, tc.warns, logs.String())
			}
		})
	}
}
