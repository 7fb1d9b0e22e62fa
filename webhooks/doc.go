// Package webhooks delivers Pusher webhooks (shared/spec/pusher-protocol.md
// §5) at least once, across restarts, crashes and receiver outages, with no
// service besides the bbolt file.
//
// # Flow
//
// The realtime server reports raw channel transitions to [Dispatcher.Emit]
// (main adapts server.Event to [Event]). The gate applies Pusher's rules: a
// 3 s grace period for channel_vacated and member_removed (cancelled by a
// return), one cache_miss per channel per window, and subscription_count
// throttled to once per 5 s above 100 subscribers. Each surviving event is
// encoded once, matched against the app's targets (event types and a channel
// prefix, suffix or regular expression) and buffered.
//
// The push service reports push events (push_publish_finished,
// push_device_invalidated, push_credential_unhealthy) to the same Emit, with
// their content in Event.Fields. They skip the gate and the channel filters
// (they have no channel), and go only to targets whose event_types list
// them: a target without event_types takes the realtime events only, as it
// did before push existed. From the buffer on they are ordinary entries:
// same queue, retries, dead letters and signature. A single persister
// commits the buffer to the durable queue in storage, at most one bbolt
// transaction per Config.CommitInterval (10 ms), so a burst costs one fsync
// per interval, not one per event. One
// delivery loop per target reads the head of its queue, batches up to
// Batching.Size events for up to Batching.Duration, POSTs them signed with
// the app's secret, and deletes them only after a 2xx.
//
// # Bounds and coalescing
//
// Each target's queue holds at most Config.MaxQueueDepth events: a commit
// that would exceed it moves the oldest to the dead letters in the same
// transaction (Stats.QueueFull), so a receiver that is down cannot let
// anonymous traffic grow the file. Events waiting unsent are coalesced per
// target and channel (Stats.Coalesced): channel_occupied and its
// channel_vacated cancel out with the subscription_counts between them, and
// only the latest waiting subscription_count is kept. Entries the delivery
// loop has read (queue.claimed) are never touched, so a receiver never sees
// a vacated without its occupied.
//
// # Durability
//
// An event is durable once the persister's commit returns: within about
// CommitInterval plus one commit of Emit (measured: under 15 ms at 50,000
// events/s). A kill -9 or power loss inside that window loses the events of
// the window; events still in their grace
// period (channel_vacated, member_removed) or throttle window
// (subscription_count) are not decided yet and are not persisted. Everything
// committed is delivered at least once: delivery loops resume the queue
// after a restart, and a request interrupted by a crash or shutdown is sent
// again (receivers must tolerate duplicates). Close decides what waits in
// the gate and commits the buffer before the database closes.
//
// # Retries
//
// Network errors, 408, 425, 429 and 5xx are retried per target with
// exponential backoff (1 s doubling to 60 s, each wait shortened by up to a
// fifth at random), or after Retry-After when the receiver sends one, with a
// last attempt at the end of the retry window (5 minutes after the event was
// queued). Then the event becomes a dead letter, as does an event answered
// with any other status (a 4xx, or a 3xx: redirects are not followed) or
// whose target resolves to a refused address. While a target recovers, its
// requests are paced (Config.RecoveryRate). Each target has its own loop and
// at most one request in flight, and requests across targets are bounded by
// Config.MaxConcurrency, so a failing target delays no other.
//
// # Safety
//
// Target URLs must be http or https. Unless Config.AllowPrivateTargets is
// set, the dialer (internal/netguard) refuses loopback, private, link-local (cloud metadata),
// unspecified, multicast and other non-public addresses after DNS
// resolution, so a name that resolves to such an address is refused too. No
// proxy from the environment is used. Logs never carry the app secret, the
// signature, payloads or a URL's userinfo and query; warnings are rate
// limited per target.
//
// # Imports
//
// webhooks imports storage and, for its HTTP client and retry waits, the
// internal/netguard and internal/backoff helpers it shares with push; nothing
// else of ours, in particular not server, which reaches it through main's
// adapter.
package webhooks
