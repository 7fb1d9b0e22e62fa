package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// defaultIPv6PrefixLen is the IPv6 prefix that keys per-client budgets when
// Config.IPv6PrefixLen is zero: a /64 is the smallest block a provider
// hands out, so one subscriber holds billions of addresses inside it.
const defaultIPv6PrefixLen = 64

// clientIP is the address of the client behind r: the peer, or an address
// from X-Forwarded-For when the server is configured to believe it
// (Config.TrustedProxies, Config.TrustHops). Logs and audit entries use it
// as is; budgets are keyed by limitKey(clientIP).
func (s *Server) clientIP(r *http.Request) string {
	return clientAddr(r, s.cfg.TrustHops, s.cfg.TrustedProxies)
}

// ClientKey is the key of r's per-client budgets: its client address (see
// ClientIP), or for IPv6 the address's prefix of Config.IPv6PrefixLen bits
// (a /64 by default) in CIDR form. Push and other routes mounted with Handle
// key their per-client limits with it, as the server's own limits do.
func (s *Server) ClientKey(r *http.Request) string { return s.limitKey(s.clientIP(r)) }

// ForwardedHTTPS reports whether r reached a trusted proxy over HTTPS: the
// peer is in Config.TrustedProxies and the last X-Forwarded-Proto value
// (the one that proxy set) is https. Cookies set behind a TLS-terminating
// proxy use it for their Secure flag; from any other peer the header is
// the client's own writing and is ignored.
func (s *Server) ForwardedHTTPS(r *http.Request) bool {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok || !isTrusted(peer, s.cfg.TrustedProxies) {
		return false
	}
	vals := r.Header.Values("X-Forwarded-Proto")
	if len(vals) == 0 {
		return false
	}
	last := vals[len(vals)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(last), "https")
}

// limitKey turns a client address into the key of its per-client budgets
// (WebSocket connects, auth and signature failures). IPv4 addresses stay
// whole; IPv6 ones become their prefix, since a client owning a /64 could
// otherwise open a fresh budget per address. It is idempotent (a key given
// back is returned as is), and a string that is no address is returned
// unchanged.
func (s *Server) limitKey(ip string) string { return clientKey(ip, s.cfg.IPv6PrefixLen) }

func clientKey(ip string, bits int) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	if bits <= 0 || bits > 128 {
		bits = defaultIPv6PrefixLen
	}
	if bits == 128 {
		return a.String()
	}
	p, _ := a.Prefix(bits) // cannot fail: bits is in range and a has no zone
	return p.String()
}

// clientAddr picks the client address of r.
//
// With trusted proxies, X-Forwarded-For is read from the right, starting at
// the peer: while the address at hand is a trusted proxy, the entry that
// proxy appended (the one to the left) is the next address. The first
// address that is not a trusted proxy is the client. trustHops > 0 caps how
// many entries are read. When the entries run out the leftmost one, which a
// trusted proxy appended, is the client: an entry is never used unless a
// trusted proxy wrote it. A peer outside trusted gets no header believed.
//
// Without trusted proxies and with trustHops > 0 (the older setting, which
// believes the header from any peer), the client is the entry trustHops
// from the right. If there are fewer entries than hops the request did not
// come through every proxy, so the leftmost entries may be the client's own
// writing: the peer is used instead.
//
// Entries may carry a port ("203.0.113.7:443", "[2001:db8::1]:443");
// IPv4-mapped IPv6 addresses are reported as IPv4. A malformed entry ends
// the walk at the last address believed.
func clientAddr(r *http.Request, trustHops int, trusted []netip.Prefix) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	if len(trusted) == 0 && trustHops <= 0 {
		return peer.String()
	}
	hops := forwardedFor(r)
	if len(trusted) == 0 {
		if len(hops) < trustHops {
			return peer.String()
		}
		if a, ok := parseHop(hops[len(hops)-trustHops]); ok {
			return a.String()
		}
		return peer.String()
	}
	addr := peer
	for i, read := len(hops)-1, 0; i >= 0 && isTrusted(addr, trusted); i, read = i-1, read+1 {
		if trustHops > 0 && read == trustHops {
			break
		}
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		addr = a
	}
	return addr.String()
}

// forwardedFor is the entries of r's X-Forwarded-For headers, left to right.
func forwardedFor(r *http.Request) []string {
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				hops = append(hops, p)
			}
		}
	}
	return hops
}

// parseHop reads an address with or without a port, unmapped and without
// a zone.
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
