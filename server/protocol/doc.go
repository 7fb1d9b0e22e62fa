// Package protocol is the Pusher Channels wire format with no I/O: decoding
// client frames, encoding server events once, channel and event name rules,
// HMAC signatures (channel auth, user signin, REST requests) and the table of
// Pusher error and close codes.
//
// It imports neither gws nor net/http so it can be fuzzed and reused by the
// socket path and the HTTP API alike. The reference is
// shared/spec/pusher-protocol.md; sections are cited as §n.
package protocol
