package webhooks

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
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
			if got := allowedAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Fatalf("allowedAddr(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

// TestSSRFRefused: with private targets not allowed, a receiver on
// 127.0.0.1 (by address or by a name resolving to it) is never contacted,
// and the events become dead letters without retries.
func TestSSRFRefused(t *testing.T) {
	rcv := newReceiver(t)
	byName := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL + "/ip"}, storage.Webhook{URL: byName + "/name"}))
	d := startDispatcher(t, Config{Batching: Batching{Disabled: true}}, db, testOpts{})
	d.Emit(clientEvent("private-c", "x"))
	waitFor(t, "two dead letters", func() bool { return d.Stats().DeadLettered == 2 })
	dead, _ := d.DeadLetters(testApp, 0)
	for _, dl := range dead {
		if !strings.Contains(dl.Reason, "target address not allowed") {
			t.Errorf("dead letter reason %q", dl.Reason)
		}
		if strings.Contains(dl.Reason, "/ip") || strings.Contains(dl.Reason, "/name") {
			t.Errorf("reason quotes the URL: %q", dl.Reason)
		}
	}
	if s := d.Stats(); s.Retried != 0 {
		t.Errorf("refused address retried: %+v", s)
	}
	if n := len(rcv.reqs); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
}

// TestRedirectNotFollowed: a 3xx is a failure; the Location is not visited.
func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t)
	rcv := newReceiver(t)
	rcv.respond(http.StatusFound, http.Header{"Location": {target.URL + "/elsewhere"}})
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL}))
	d := startDispatcher(t, testConfig(), db, testOpts{})
	d.Emit(clientEvent("private-c", "x"))
	rcv.next(t)
	waitFor(t, "the dead letter", func() bool { return d.Stats().DeadLettered == 1 })
	dead, _ := d.DeadLetters(testApp, 0)
	if len(dead) != 1 || !strings.Contains(dead[0].Reason, "redirects are not followed") {
		t.Fatalf("dead letters = %+v", dead)
	}
	if n := len(target.reqs); n != 0 {
		t.Fatal("the redirect was followed")
	}
}
