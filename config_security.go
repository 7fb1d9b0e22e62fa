package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
)

// rateLimitConfig is the rate limiters (Sockudo's names where it has them)
// and what decides who a client is (proxies, the IPv6 prefix), plus the
// replay cache of the signed HTTP API. A max of 0 disables that limiter.
type rateLimitConfig struct {
	// Enabled false turns every limiter off.
	Enabled bool `env:"RATE_LIMITER_ENABLED" envDefault:"true"`
	// WSMaxRequests connection attempts per client IP per WSWindow; over
	// it a socket gets close 4100.
	WSMaxRequests int           `env:"RATE_LIMITER_WS_MAX_REQUESTS" envDefault:"120"`
	WSWindow      time.Duration `env:"RATE_LIMITER_WS_WINDOW_SECONDS" envDefault:"60"`
	// TrustHops is how many proxies append to X-Forwarded-For; the client
	// IP for limits and audit is read that many entries from the right.
	// With TrustedProxies it only caps how many entries are read.
	TrustHops int `env:"RATE_LIMITER_WS_TRUST_HOPS" envDefault:"0"`
	// TrustedProxies lists the proxies (CIDR ranges or addresses) whose
	// X-Forwarded-For is believed; see server.Config.TrustedProxies.
	TrustedProxies []string `env:"TRUSTED_PROXIES"`
	// IPv6PrefixLength is how many leading bits of an IPv6 client address
	// share one per-client budget (connects, auth failures); 128 keys each
	// address.
	IPv6PrefixLength int `env:"RATE_LIMITER_IPV6_PREFIX_LENGTH" envDefault:"64"`
	// APIMaxRequests HTTP API writes (events, batch_events, terminate) per
	// app per APIWindow; APIReadMaxRequests GETs per app per APIWindow.
	APIMaxRequests     int           `env:"RATE_LIMITER_API_MAX_REQUESTS" envDefault:"6000"`
	APIReadMaxRequests int           `env:"RATE_LIMITER_API_READ_MAX_REQUESTS" envDefault:"6000"`
	APIWindow          time.Duration `env:"RATE_LIMITER_API_WINDOW_SECONDS" envDefault:"60"`
	// AuthMaxFailures failed channel auths and signins per client IP per
	// AuthWindow; beyond it further failures are answered with 429.
	AuthMaxFailures int           `env:"RATE_LIMITER_AUTH_MAX_FAILURES" envDefault:"30"`
	AuthWindow      time.Duration `env:"RATE_LIMITER_AUTH_WINDOW_SECONDS" envDefault:"60"`
	// SigninMaxAttempts signins per app user per SigninWindow.
	SigninMaxAttempts int           `env:"RATE_LIMITER_SIGNIN_MAX_ATTEMPTS" envDefault:"60"`
	SigninWindow      time.Duration `env:"RATE_LIMITER_SIGNIN_WINDOW_SECONDS" envDefault:"60"`
	// ReplayCache refuses (409) a copy of a signed HTTP API write accepted
	// within the 600 s timestamp window, remembering at most
	// ReplayCacheMaxEntries of them. Off by default: Pusher accepts copies,
	// and identical writes signed in the same second look like copies.
	ReplayCache           bool `env:"HTTP_API_REPLAY_CACHE_ENABLED" envDefault:"false"`
	ReplayCacheMaxEntries int  `env:"HTTP_API_REPLAY_CACHE_MAX_ENTRIES" envDefault:"100000"`
}

// tlsConfig serves wss:// and https:// directly.
type tlsConfig struct {
	// Enabled serves TLS on PORT with the pair below, reloaded when the
	// files change.
	Enabled  bool   `env:"SSL_ENABLED" envDefault:"false"`
	CertPath string `env:"SSL_CERT_PATH"`
	KeyPath  string `env:"SSL_KEY_PATH"`
}

// metricsConfig is the Prometheus listener, separate from the public port.
type metricsConfig struct {
	Enabled bool   `env:"METRICS_ENABLED" envDefault:"true"`
	Host    string `env:"METRICS_HOST" envDefault:"127.0.0.1"`
	Port    int    `env:"METRICS_PORT" envDefault:"9601"`
}

// adminConfig is the local control socket the CLI uses while the server
// holds the database.
type adminConfig struct {
	// Socket is the unix socket path; empty means SOCKUDO_DB_PATH + ".sock".
	Socket string `env:"SOCKUDO_ADMIN_SOCKET"`
	// Enabled false serves no admin socket (apps change only while stopped).
	Enabled bool `env:"SOCKUDO_ADMIN_SOCKET_ENABLED" envDefault:"true"`
}

// securityProblems checks the sections above.
func (c Config) securityProblems(ch *checks) {
	r := c.RateLimit
	for _, v := range []struct {
		name string
		n    int
	}{
		{"RATE_LIMITER_WS_MAX_REQUESTS", r.WSMaxRequests},
		{"RATE_LIMITER_WS_TRUST_HOPS", r.TrustHops},
		{"RATE_LIMITER_API_MAX_REQUESTS", r.APIMaxRequests},
		{"RATE_LIMITER_API_READ_MAX_REQUESTS", r.APIReadMaxRequests},
		{"RATE_LIMITER_AUTH_MAX_FAILURES", r.AuthMaxFailures},
		{"RATE_LIMITER_SIGNIN_MAX_ATTEMPTS", r.SigninMaxAttempts},
	} {
		if v.n < 0 {
			ch.bad(v.name, "must not be negative, got %d", v.n)
		}
	}
	ch.secondsIn("RATE_LIMITER_WS_WINDOW_SECONDS", r.WSWindow, 1, 86_400)
	ch.secondsIn("RATE_LIMITER_API_WINDOW_SECONDS", r.APIWindow, 1, 86_400)
	ch.secondsIn("RATE_LIMITER_AUTH_WINDOW_SECONDS", r.AuthWindow, 1, 86_400)
	ch.secondsIn("RATE_LIMITER_SIGNIN_WINDOW_SECONDS", r.SigninWindow, 1, 86_400)
	if _, err := parseProxies(r.TrustedProxies); err != nil {
		ch.bad("TRUSTED_PROXIES", "%v", err)
	}
	ch.intIn("RATE_LIMITER_IPV6_PREFIX_LENGTH", r.IPv6PrefixLength, 16, 128)
	if r.ReplayCache {
		ch.intIn("HTTP_API_REPLAY_CACHE_MAX_ENTRIES", r.ReplayCacheMaxEntries, 16, 100_000_000)
	}
	if c.TLS.Enabled {
		if c.TLS.CertPath == "" {
			ch.bad("SSL_CERT_PATH", "is required when SSL_ENABLED=true")
		}
		if c.TLS.KeyPath == "" {
			ch.bad("SSL_KEY_PATH", "is required when SSL_ENABLED=true")
		}
	}
	if c.Metrics.Enabled {
		ch.intIn("METRICS_PORT", c.Metrics.Port, 1, 65535)
		if c.Metrics.Port == c.Listen.Port {
			ch.bad("METRICS_PORT", "must differ from PORT (%d)", c.Listen.Port)
		}
	}
}

// limiters are the rate limiters built from the configuration, with the
// memory ones to sweep while the server runs.
type limiters struct {
	server.Limits
	memory []*ratelimit.Memory
}

// buildLimiters turns rateLimitConfig into limiters; a disabled or zero
// limit leaves the server's limiter nil (unlimited).
func (c Config) buildLimiters() limiters {
	var l limiters
	r := c.RateLimit
	if !r.Enabled {
		return l
	}
	mk := func(n int, window time.Duration) ratelimit.Limiter {
		if n <= 0 {
			return nil
		}
		m := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: n, Window: window})
		l.memory = append(l.memory, m)
		return m
	}
	l.WSConnect = mk(r.WSMaxRequests, r.WSWindow)
	l.APIPublish = mk(r.APIMaxRequests, r.APIWindow)
	l.APIRead = mk(r.APIReadMaxRequests, r.APIWindow)
	l.AuthFailures = mk(r.AuthMaxFailures, r.AuthWindow)
	l.Signin = mk(r.SigninMaxAttempts, r.SigninWindow)
	return l
}

// clientSettings fills the parts of sc that decide who a client is and
// which signed requests are copies: trusted proxies, the IPv6 prefix of
// per-client budgets and the replay cache. It warns when X-Forwarded-For
// is believed from any peer.
func (c Config) clientSettings(sc *server.Config, log *slog.Logger) {
	r := c.RateLimit
	sc.TrustedProxies, _ = parseProxies(r.TrustedProxies) // validated
	sc.IPv6PrefixLen = r.IPv6PrefixLength
	if r.ReplayCache {
		sc.Replay = server.NewReplayCache(r.ReplayCacheMaxEntries)
	}
	if r.TrustHops > 0 && len(sc.TrustedProxies) == 0 {
		log.Warn("RATE_LIMITER_WS_TRUST_HOPS is set without TRUSTED_PROXIES: X-Forwarded-For is believed from any "+
			"peer, so a client that reaches this port directly chooses its own IP for rate limits and audit. "+
			"Set TRUSTED_PROXIES to the proxies' addresses.", "trust_hops", r.TrustHops)
	}
}

// parseProxies reads TRUSTED_PROXIES: CIDR ranges or single addresses.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither a CIDR range nor an address", s)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// adminSocket is the admin socket path.
func (c Config) adminSocket() string {
	if c.Admin.Socket != "" {
		return c.Admin.Socket
	}
	return c.Storage.DBPath + ".sock"
}

// auditConfig is the audit log's record of refusals (our names: Sockudo has
// no audit log). Changes (apps, secrets, replays, credentials) are kept
// apart, the newest storage.MaxAuditEntries, and refusals never evict them.
type auditConfig struct {
	// AggregationWindow: refusals of the same app, action, client IP and
	// reason within this many seconds of the first are one entry with a
	// count and first and last seen (0-3600; 0 writes one entry each).
	AggregationWindow time.Duration `env:"AUDIT_AGGREGATION_WINDOW_SECONDS" envDefault:"60"`
	// MaxRefusals is how many refusal entries are kept (1000-10000000),
	// oldest dropped first.
	MaxRefusals int `env:"AUDIT_MAX_REFUSALS" envDefault:"100000"`
}

// auditProblems checks auditConfig.
func (c Config) auditProblems(ch *checks) {
	ch.secondsIn("AUDIT_AGGREGATION_WINDOW_SECONDS", c.Audit.AggregationWindow, 0,
		int(storage.MaxAuditWindow/time.Second))
	ch.intIn("AUDIT_MAX_REFUSALS", c.Audit.MaxRefusals, 1000, 10_000_000)
}

// AuditWriterConfig is the part of c the audit writer takes.
func (c Config) AuditWriterConfig() storage.AuditWriterConfig {
	window := c.Audit.AggregationWindow
	if window == 0 {
		window = -1 // storage: zero is the default, negative is none
	}
	return storage.AuditWriterConfig{Window: window, MaxEntries: c.Audit.MaxRefusals}
}
