package webpush

import (
	"net/http"
	"time"

	"github.com/sockudo/sockudo/internal/netguard"
)

// Defaults of HTTPConfig.
const (
	// DefaultTimeout bounds one request: connecting, TLS, the answer's
	// headers and its body (spec §3.2: 10-15 s).
	DefaultTimeout = 15 * time.Second
	// DefaultMaxConnsPerHost bounds connections to one push service host.
	// Over HTTP/2 one connection carries many requests.
	DefaultMaxConnsPerHost = 16
)

// HTTPConfig is how NewHTTPClient's client connects.
type HTTPConfig struct {
	// Timeout bounds a whole request; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxConnsPerHost bounds connections (and idle connections kept) per
	// push service host; zero means DefaultMaxConnsPerHost.
	MaxConnsPerHost int
	// AllowLocal lifts the dial-time address check, so that loopback and
	// private addresses can be reached: tests and development only
	// (PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS). Senders using this client
	// should set Config.AllowLocal alike.
	AllowLocal bool
}

// NewHTTPClient returns the client Web Push requests go through, to be
// shared by every Sender of the process (one per VAPID key): one transport,
// HTTP/2 where the push service speaks it, per-host connection limits, a
// hard timeout, no redirects, no proxy, and no connection to a non-public
// address after DNS resolution unless c.AllowLocal (internal/netguard).
func NewHTTPClient(c HTTPConfig) *http.Client {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	perHost := c.MaxConnsPerHost
	if perHost <= 0 {
		perHost = DefaultMaxConnsPerHost
	}
	hc := netguard.NewHTTPClient(netguard.Config{Timeout: timeout, AllowPrivate: c.AllowLocal})
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr.MaxConnsPerHost = perHost
		tr.MaxIdleConnsPerHost = perHost
	}
	return hc
}
