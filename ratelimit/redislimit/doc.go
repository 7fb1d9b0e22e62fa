// Package redislimit is a [ratelimit.Limiter] whose budgets live in Redis,
// so that several sockudo nodes sharing one Redis share each limit: a
// client that spreads its connection attempts over the nodes still gets
// RATE_LIMITER_WS_MAX_REQUESTS in total, not that many per node.
//
// It enforces the same token bucket as [ratelimit.Memory] (a budget of
// Limit per Window, Burst at once, refilling continuously; a refused
// request costs nothing) and fills the same [ratelimit.Decision] fields, so
// 429 headers do not change with the driver. Each check is one EVALSHA of a
// GCRA script (gcra.lua): one key per bucket, read and written atomically,
// timed by Redis's TIME so that nodes whose clocks differ agree.
//
// # Keys
//
// A bucket is the string key <prefix>:rl:<name>:<key> (about 150 bytes of
// Redis memory with its value and expiry), with a PEXPIRE at the moment
// the bucket is full again: an idle
// key vanishes when forgetting it changes nothing, so a flood of distinct
// keys (spoofed IPs) holds memory only for as long as one token takes to
// refill. Keys of up to 64 printable ASCII bytes (IPs, app ids) are used
// as they are; longer ones, or ones with spaces or control bytes (signin
// keys hold a user id), are replaced by # and 24 characters of their
// SHA-256, so a client cannot make Redis keys long.
//
// # When Redis fails
//
// Each check waits at most Options.Timeout (250 ms by default). A check
// that fails (timeout, refused connection, any error) is answered by the
// fallback limiter, normally the [ratelimit.Memory] this limiter replaced,
// and marks Redis down for the limiter's whole [Group]: for
// Options.RetryInterval (1 s by default) every check of the group goes
// straight to its fallback, then one check tries Redis again while the
// others keep using theirs. The outage is reported once per group
// (Options.Log, Options.OnError) and so is the recovery. So an outage
// neither opens the floodgates nor refuses everyone, and costs at most one
// timeout per interval rather than one per request. While it lasts each
// node counts on its own, as with RATE_LIMITER_DRIVER=memory: a cluster of
// N nodes lets up to N times the limit through, and a node's fallback
// buckets start from what they held the last time they were used (full,
// for keys they have not seen).
//
// # Imports
//
// redislimit imports ratelimit and go-redis; ratelimit imports neither, so
// nodes without Redis never link it. main builds these limiters
// (limits_shared.go) around the memory ones when RATE_LIMITER_DRIVER is
// redis.
package redislimit
