package netguard

import (
	"errors"
	"net/netip"
)

// ErrForbidden is wrapped by the error of a dial to an address that
// [Allowed] refuses.
var ErrForbidden = errors.New("netguard: address not allowed")

// forbiddenPrefixes are ranges refused on top of what netip classifies as
// non-global or private: shared, reserved, documentation and benchmark
// space, and IPv6 ranges that embed or translate to IPv4 addresses.
var forbiddenPrefixes = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",        // "this network"
		"100.64.0.0/10",    // shared address space (CGNAT; also cloud metadata such as 100.100.100.200)
		"168.63.129.16/32", // Azure WireServer (DNS, DHCP, health probes, guest agent): looks public, reaches the host
		"192.0.0.0/24",     // IETF protocol assignments
		"192.0.2.0/24",     // TEST-NET-1
		"198.18.0.0/15",    // benchmarking
		"198.51.100.0/24",  // TEST-NET-2
		"203.0.113.0/24",   // TEST-NET-3
		"240.0.0.0/4",      // reserved, and the broadcast address
		"::/96",            // IPv4-compatible (deprecated)
		"64:ff9b::/96",     // NAT64
		"64:ff9b:1::/48",   // local NAT64
		"100::/64",         // discard
		"2001::/32",        // Teredo
		"2001:db8::/32",    // documentation
		"2002::/16",        // 6to4
		"fec0::/10",        // site-local (deprecated)
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Allowed reports whether ip is a public address an outbound request may
// reach. Loopback, private (RFC 1918, fc00::/7 — which
// holds the EC2 metadata address fd00:ec2::254), link-local (169.254.0.0/16
// with the metadata address 169.254.169.254, fe80::/10), unspecified and
// multicast addresses are refused, with forbiddenPrefixes (which hold the
// metadata-like addresses that look public, such as Azure's 168.63.129.16).
func Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
