package server

import (
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	tcs := []struct {
		name string
		xff  []string
		hops int
		want string
	}{
		{"no trust ignores the header", []string{"1.2.3.4"}, 0, "10.0.0.1"},
		{"one proxy", []string{"1.2.3.4"}, 1, "1.2.3.4"},
		{"forged entries left of the trusted hop", []string{"6.6.6.6, 1.2.3.4"}, 1, "1.2.3.4"},
		{"two proxies", []string{"1.2.3.4, 10.9.9.9"}, 2, "1.2.3.4"},
		{"several headers", []string{"1.2.3.4", "10.9.9.9"}, 2, "1.2.3.4"},
		{"fewer hops than trusted", []string{"1.2.3.4"}, 3, "1.2.3.4"},
		{"no header", nil, 1, "10.0.0.1"},
		{"garbage", []string{"not-an-ip"}, 1, "10.0.0.1"},
		{"ipv6", []string{"2001:db8::1"}, 1, "2001:db8::1"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = "10.0.0.1:5555"
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, tc.hops); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
