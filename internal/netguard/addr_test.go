package netguard

import (
	"net/netip"
	"testing"
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
		{"168.63.129.16", false},   // Azure WireServer
		{"::ffff:168.63.129.16", false},
		{"168.63.129.17", true}, // only the one address is special
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
