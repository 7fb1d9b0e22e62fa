package server

import (
	"net/netip"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
)

// Config is the server's runtime configuration. main fills it from the
// environment; tests build it literally. Zero values mean the documented
// default (see withDefaults).
type Config struct {
	// ActivityTimeout is sent in connection_established and is the silence
	// after which the server sends pusher:ping. Zero means 120s.
	ActivityTimeout time.Duration
	// PongTimeout is how long the server waits for any frame after its
	// pusher:ping before closing with 4201. Zero means 30s.
	PongTimeout time.Duration
	// MaxConnections caps sockets on this node (close 4100 beyond); 0 = no cap.
	MaxConnections int
	// MaxPayloadBytes is the largest client message answered normally;
	// slightly larger ones (frameSlack) get a pusher:error, and beyond that
	// the socket is closed with 1009 before the payload is read. Zero means
	// 64 KiB.
	MaxPayloadBytes int
	// MaxPendingBytes bounds each socket's outbound queue; a socket over it is
	// closed with 4100. Zero means 1 MiB.
	MaxPendingBytes int
	// WriteTimeout bounds one flush to a socket. Zero means 10s.
	WriteTimeout time.Duration
	// MessageTimeout bounds how long one inbound message may take to
	// arrive, from its first byte to its last (every frame of a fragmented
	// one). A socket over it is closed with 4100: gws holds memory for the
	// declared length meanwhile, and pings inside an unfinished message do
	// not count as activity. Zero means 10s.
	MessageTimeout time.Duration
	// MaxConnectionsPerIP caps the open sockets of one client IP (as
	// TrustHops resolves it); beyond it a new socket is closed with 4100.
	// 0 = no cap: behind a proxy that is not trusted, every client has the
	// proxy's address.
	MaxConnectionsPerIP int
	// MaxChannelsPerConnection caps the channels one socket may be
	// subscribed to; a subscribe beyond it gets pusher:subscription_error
	// with status 4100. Zero means 100.
	MaxChannelsPerConnection int
	// MaxMessagesPerSecond is the average rate of inbound frames (every
	// kind, pings included) one socket may send; bursts of this plus
	// MaxChannelsPerConnection are allowed, so a reconnecting client can
	// resubscribe everything at once. Over it the socket is closed with
	// 4100. Zero means 100.
	MaxMessagesPerSecond int
	// DebugAuthErrors includes the string-to-sign in auth error messages.
	DebugAuthErrors bool
	// TrustHops is how many reverse proxies in front of the server append
	// to X-Forwarded-For. Without TrustedProxies the client IP (rate limits,
	// audit) is the entry TrustHops from the right, read whatever the peer
	// is, or the peer when there are fewer entries; with TrustedProxies it
	// caps how many entries are read. 0 with no TrustedProxies trusts no
	// header: the peer address is the client. See clientAddr.
	TrustHops int
	// Limits are the rate limiters; a nil limiter means unlimited.
	Limits Limits

	// TrustedProxies are the addresses of the reverse proxies in front of
	// the server. X-Forwarded-For is believed only from a peer in them,
	// read right to left while the address at hand is in them (see
	// clientAddr). Empty means TrustHops alone decides.
	TrustedProxies []netip.Prefix
	// IPv6PrefixLen is how many leading bits of an IPv6 client address key
	// its per-client budgets (WSConnect, AuthFailures): the whole prefix
	// shares one budget. IPv4 addresses are keyed whole. Zero means 64;
	// 128 keys each address. Logs and audit entries keep the full address.
	IPv6PrefixLen int
	// Replay, if set, refuses a signed HTTP API write (any method but GET)
	// whose signed content was accepted before, within the timestamp window
	// (protocol.MaxClockSkew). Nil accepts replays, as Pusher does: any
	// copy of a signed request then works for 10 minutes.
	Replay *ReplayCache
}

// Limits are the server's rate limiters (shared/spec/security.md). Each is
// called once per request it counts; nil means unlimited.
type Limits struct {
	// WSConnect is keyed by client key (limitKey) and counts WebSocket
	// connection attempts. Over it the socket gets pusher:error and close
	// 4100, so pusher-js backs off.
	WSConnect ratelimit.Limiter
	// AuthFailures is keyed by client key (limitKey: the IP, an IPv6 /64)
	// and counts failed channel authorisations and signins, and HTTP API
	// requests refused for their signature, an unknown app or a replay.
	// Over it further socket failures are answered with status 429 instead
	// of 401 and audited; API ones get 429 and are not audited, so that a
	// flood cannot flood the audit log.
	AuthFailures ratelimit.Limiter
	// Signin is keyed by app and user id and counts signin attempts.
	Signin ratelimit.Limiter
	// APIPublish is keyed by app id and counts HTTP API writes (events,
	// batch_events, terminate_connections); APIRead counts GETs.
	APIPublish, APIRead ratelimit.Limiter
}
