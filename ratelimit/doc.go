// Package ratelimit holds the rate limiting primitives that server, webhooks
// and push call: per-key token buckets kept in memory ([Memory]), long-window
// counters that survive a restart ([Window]), and a [Disabled] limiter for
// RATE_LIMITER_ENABLED=false. All of them implement [Limiter], whose
// [Decision] carries what a 429 response needs (Retry-After and the
// RateLimit-* headers) or what a pusher:error needs. The rules they enforce
// are in shared/spec/security.md ("Rate limits").
//
// It owns no policy: which key to use (client IP, app id, socket id, webhook
// target), which limits apply and what a refusal looks like on the wire are
// the caller's business.
//
// # Imports
//
// ratelimit imports nothing of ours, so any package may use it. Persistence
// comes in through the small [CounterStore] interface, which storage.DB
// implements from outside. The Redis-backed [Limiter] that shares budgets
// across nodes is the sub-package redislimit, so ratelimit imports no Redis
// client.
//
// # Goroutines
//
// Constructors start no goroutines. [Memory.Run] evicts idle keys and
// [Window.Run] flushes counts to the store; the caller starts them (with its
// tracked helper) and stops them by cancelling ctx or calling Close. Tests
// drive the same work by hand with [Memory.Sweep] and [Window.Flush], and
// every type takes an injected clock.
//
// # Caveats
//
//   - Memory is bounded by MemoryConfig.MaxKeys. When a shard is full, a new
//     key evicts that shard's least recently used key, whose next request then
//     starts from a full bucket. A flood of distinct keys therefore can reset
//     the bucket of a key that has been quiet for longer than the flood took
//     to fill its shard; it cannot grow memory, and it cannot starve new,
//     legitimate keys (refusing new keys when full would do exactly that).
//   - Memory is meant for windows up to about an hour; use Window for daily
//     quotas. A token bucket spreads its budget over the window instead of
//     resetting it at a boundary.
//   - Window counts in memory and writes to its store every FlushInterval, so
//     a crash (kill -9) forgets at most the last interval's requests; Close
//     flushes everything. It keeps one entry per key seen in the current
//     window, so its keys must have a bounded cardinality (apps, workflows),
//     never client IPs.
package ratelimit
