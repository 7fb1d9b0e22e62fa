package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAllowedAddr(t *testing.T) {
	tcs := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"169.254.1.1", false},
		{"fe80::1", false},
		{"fd00:ec2::254", false}, // EC2 metadata over IPv6
		{"fc00::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		{"100.64.0.1", false},
		{"100.100.100.200", false}, // Alibaba metadata
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::127.0.0.1", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"2002:7f00:1::", false},   // 6to4 of 127.0.0.1
		{"198.18.0.1", false},
		{"192.0.2.1", false},
		{"240.0.0.1", false},
	}
	for _, tc := range tcs {
		t.Run(tc.addr, func(t *testing.T) {
			if got := Allowed(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Fatalf("Allowed(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

// TestClientRefusesLoopback: the client never reaches a loopback listener,
// and the error matches both ErrForbidden and the caller's Refused error,
// whose text it keeps.
func TestClientRefusesLoopback(t *testing.T) {
	var hit atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit.Store(true) }))
	defer ts.Close()

	mine := errors.New("mine: refused")
	for _, tc := range []struct {
		name    string
		refused error
		text    string
	}{
		{"default error", nil, "netguard: address not allowed: 127.0.0.1"},
		{"caller's error", mine, "mine: refused: 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewHTTPClient(Config{Timeout: 5 * time.Second, Refused: tc.refused})
			_, err := c.Get(ts.URL)
			if !errors.Is(err, ErrForbidden) || tc.refused != nil && !errors.Is(err, tc.refused) {
				t.Fatalf("err = %v, want ErrForbidden (and %v)", err, tc.refused)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.text)
			}
		})
	}
	if hit.Load() {
		t.Fatal("the loopback server was reached")
	}

	// AllowPrivate lifts the check; a redirect is returned, not followed.
	ts2 := httptest.NewServer(http.RedirectHandler(ts.URL, http.StatusFound))
	defer ts2.Close()
	resp, err := NewHTTPClient(Config{Timeout: 5 * time.Second, AllowPrivate: true}).Get(ts2.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hit.Load() {
		t.Fatalf("status %d, followed %v", resp.StatusCode, hit.Load())
	}
}
