// Package server is everything live: WebSocket connections (a gws event
// handler), the hub (apps → channels → subscribers, presence members, cache
// channels), the user index (signin, server-to-user, watchlist) and the
// Pusher HTTP API, all on one port.
//
// It imports server/protocol for the wire format and storage only for the
// App type; it never imports a Broker implementation (main wires those).
//
// # Concurrency
//
// Every socket has one read goroutine (gws), a writer goroutine only while
// bytes are queued, and one timer for ping/pong. Messages of one socket are
// handled one at a time, in order.
//
// Lock order, outermost first; never hold two locks of the same level:
//
//	conn.mu (subscription state) → hub shard → channel → conn.wmu (outbound queue)
//	user index shard → conn.wmu
//
// Nothing does I/O under these locks: the fan-out only appends a shared
// frame to each socket's queue under the channel read lock, and a socket
// that overflows its queue is closed asynchronously. A function whose name
// ends in Locked expects the lock named in its comment to be held.
//
// # Encoding
//
// An event is encoded to a WebSocket frame once (textFrame) and the same
// bytes are queued on every receiving socket; the fan-out does not allocate
// per subscriber (BenchmarkFanOut).
package server
