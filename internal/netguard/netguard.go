// Package netguard keeps outbound requests to URLs chosen by tenants (webhook
// targets, later push endpoints) away from the server's own network: its
// HTTP client refuses loopback, private, link-local, cloud-metadata and other
// non-public addresses after DNS resolution, ignores proxies from the
// environment and follows no redirects. It imports nothing of ours.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
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
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // shared address space (CGNAT; also cloud metadata such as 100.100.100.200)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"240.0.0.0/4",     // reserved, and the broadcast address
		"::/96",           // IPv4-compatible (deprecated)
		"64:ff9b::/96",    // NAT64
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001::/32",       // Teredo
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4
		"fec0::/10",       // site-local (deprecated)
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Allowed reports whether ip is a public address an outbound request may
// reach. Loopback, private (RFC 1918, fc00::/7 — which
// holds the EC2 metadata address fd00:ec2::254), link-local (169.254.0.0/16
// with the metadata address 169.254.169.254, fe80::/10), unspecified and
// multicast addresses are refused, with forbiddenPrefixes.
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

// Config is how NewHTTPClient's client connects. The zero value refuses
// non-public addresses and has no timeout of its own.
type Config struct {
	// Timeout bounds connecting, the TLS handshake, the wait for response
	// headers and the whole request. Zero means none.
	Timeout time.Duration
	// AllowPrivate lifts the address check: for development and tests only,
	// since whoever chooses the URL could then make us call internal
	// services.
	AllowPrivate bool
	// Refused is the error a refused dial wraps, so that callers keep their
	// own error text (webhooks dead letters quote it); nil means
	// ErrForbidden. Either way errors.Is(err, ErrForbidden) holds.
	Refused error
}

// control returns the net.Dialer Control function that refuses non-public
// addresses. It runs after DNS resolution, on the address actually being
// connected to, so a name that resolves (or rebinds) to a private address is
// refused too.
func (c Config) control() func(network, address string, _ syscall.RawConn) error {
	refused := c.Refused
	if refused == nil {
		refused = ErrForbidden
	}
	if !errors.Is(refused, ErrForbidden) {
		refused = forbidden{refused}
	}
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", refused, address)
		}
		if !Allowed(ap.Addr()) {
			return fmt.Errorf("%w: %s", refused, ap.Addr())
		}
		return nil
	}
}

// forbidden makes a caller's Refused error match ErrForbidden too, keeping
// its text.
type forbidden struct{ error }

func (f forbidden) Unwrap() []error { return []error{f.error, ErrForbidden} }

// NewHTTPClient returns a client for requests to URLs that someone else
// chose (webhook targets, push endpoints). It never follows redirects (a 3xx
// comes back as the response, so a redirect cannot lead to an address the
// dialer would refuse), never uses a proxy from the environment (the proxy
// would do the connecting and bypass the address check), and refuses
// non-public addresses unless c.AllowPrivate.
func NewHTTPClient(c Config) *http.Client {
	timeout := c.Timeout
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !c.AllowPrivate {
		d.Control = c.control()
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
