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
