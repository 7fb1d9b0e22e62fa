// Package server is everything live: WebSocket connections (a gws event
// handler), the hub (channel subscribers and the fan-out), the user index
// (signin, server-to-user, watchlist) and the Pusher HTTP API, all on one
// port.
//
// It imports server/protocol for the wire format and storage only for the
// App type. Cluster state goes through two interfaces it defines: Broker
// (messages, node-to-node commands, cache channels) and Presence (counts,
// members, signed-in users). The local implementations are the default;
// Redis mode passes its own with WithBroker and WithPresence, and server
// never imports them. Push notifications on API events go to a
// PushFallback (WithPushFallback), which package push implements.
//
// # Files
//
//	server.go            Server, New and options, Serve, Shutdown, readiness, routes
//	handler_websocket.go upgrade, admission, the gws adapter
//	frame_guard.go       the net.Conn gws reads through: message deadline, inbound rate
//	ip_conns.go          open sockets per client IP
//	client.go            socket commands: subscribe, unsubscribe, signin, client events
//	client_auth.go       channel signatures, presence members, signin checks
//	conn.go              one socket: outbound queue, timer, subscriptions, teardown
//	flusher.go           the flushers: a few goroutines writing the queues of plain TCP sockets
//	writev_*.go          their non-blocking writev (Linux)
//	hibernate*.go        idle sockets without a goroutine: sleep, the epoll poller, wake
//	publish.go           the one publish path (HTTP API, client and server-to-user events)
//	hub.go               this node's channel subscribers and the fan-out
//	users.go             this node's signed-in sockets and watchers
//	broker*.go           Broker, its handler and the local broker (with the cache)
//	presence*.go         Presence and the local presence
//	subscription_count.go throttled pusher_internal:subscription_count
//	api.go, api_signed.go the Pusher HTTP API and its signing middleware
//	push_fallback.go     PushFallback: the push object of API events (push-api.md §4.4)
//	events.go            lifecycle events (webhooks) and audit records
//	observer.go          the console's view: Observer (one atomic load when unset), AppStats, Channel, Trigger
//
// # Concurrency
//
// A socket has a read goroutine (gws) only while it has something to read
// or a message is being handled: an idle socket sleeps in the server's epoll
// set with no goroutine at all and gets a fresh gws connection and read
// goroutine when it becomes readable (hibernate.go). Queued frames of plain
// TCP sockets on Linux are written by a few flusher goroutines that the
// Server owns (flusher.go), one non-blocking writev per socket; a socket
// whose send buffer is full gets a writer goroutine of its own until its
// queue is empty, as every socket on TLS or other systems does whenever it
// has bytes queued. One timer serves ping/pong. Messages of
// one socket are handled one at a time, in order, across sleeps (a socket
// sleeps only when none is being handled); only teardown runs beside them.
// Every path that closes a socket wakes it (conn.wakeToClose): teardown
// needs a reader.
//
// Lock order, outermost first; never hold two locks of the same level:
//
//	channelLocks stripe → conn.mu
//	channelLocks stripe → hub shard → channel → conn.wmu
//	conn.wio → conn.wmu (the socket's writer)
//	… → flushList.mu (innermost like conn.wmu: send takes it after
//	  releasing conn.wmu, under whatever its caller holds)
//	channelLocks stripe → presence shard, count shard
//	user index shard → conn.wmu
//	ipConns shard (alone)
//	hibShard → poller.mu (sleep arms the epoll set; nothing else under them)
//
// A channelLocks stripe serialises the joins and leaves of one channel on
// this node and is held across Presence and Broker calls, which may do
// network I/O; the fan-out never takes it. conn.wio is held across that
// socket's own write, and only its writer and gws's writes take it. Under
// every other lock nothing does I/O: the fan-out only appends a shared frame to each socket's queue
// under the channel read lock, and a socket that overflows its queue is
// closed asynchronously. Authorisation runs before any lock. A function
// whose name ends in Locked expects the lock named in its comment to be
// held.
//
// # Encoding
//
// An event is encoded to a WebSocket frame once (protocol.EventFrame) and
// the same bytes are queued on every receiving socket; the fan-out does not
// allocate per subscriber (BenchmarkFanOut).
package server
