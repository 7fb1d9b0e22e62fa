package server

import (
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
	// to X-Forwarded-For. The client IP (rate limits, audit) is the address
	// the outermost trusted proxy saw. 0 trusts no header: the peer address
	// is the client.
	TrustHops int
	// Limits are the rate limiters; a nil limiter means unlimited.
	Limits Limits
}

// Limits are the server's rate limiters (shared/spec/security.md). Each is
// called once per request it counts; nil means unlimited.
type Limits struct {
	// WSConnect is keyed by client IP and counts WebSocket connection
	// attempts. Over it the socket gets pusher:error and close 4100, so
	// pusher-js backs off.
	WSConnect ratelimit.Limiter
	// AuthFailures is keyed by client IP and counts failed channel
	// authorisations and signins. Over it further failures are answered
	// with status 429 instead of 401 and audited.
	AuthFailures ratelimit.Limiter
	// Signin is keyed by app and user id and counts signin attempts.
	Signin ratelimit.Limiter
	// APIPublish is keyed by app id and counts HTTP API writes (events,
	// batch_events, terminate_connections); APIRead counts GETs.
	APIPublish, APIRead ratelimit.Limiter
}
