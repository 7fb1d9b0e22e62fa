// Package console is the operator console served at /console when
// CONSOLE_ENABLED is true: one embedded HTML page with plain JS and CSS (no
// build step) that shows an app's live counts, a live event stream over
// server-sent events, a channel inspector, a test-event form, the webhook
// dead letters with replay, and charts of the last 15 minutes.
//
// # Security
//
// Nothing is reachable without a session. A session is made by logging in
// with the operator token (every app) or with an app's key and secret
// (that app only); both are compared in constant time. Logins are
// rate-limited per client through a ratelimit.Limiter, and every login,
// refused login, logout and action is audited. The session id is random,
// lives in an HttpOnly, SameSite=Strict cookie (Secure when the request
// came over TLS or Config.Secure) and maps to a server-side session with an
// expiry; the number of sessions is capped, the oldest going first. Every
// POST but the login carries the session's CSRF token in a header and must
// be JSON. Responses never carry an app secret, the token, a device token
// or credential material (console_test.go scans them all).
//
// # Live data
//
// The console watches the server through server.Observer only while at
// least one event stream is open (Deps.Watch), so an unwatched server pays
// one atomic load per observation point. Each stream has a bounded buffer;
// a console that reads too slowly loses events (counted and shown), never
// slows the server. Samples of every app's counters are taken every 10 s
// into a 15-minute ring by Run. In Redis mode Deps.Nodes lists the
// cluster's nodes for the operator, read at most once a second.
//
// It imports server (for its types), webhooks (delivery reports, URL
// redaction), storage (dead letters) and ratelimit; main wires it.
package console
