// Package backoff computes how long a sender waits before trying a failed
// request again: exponential backoff with jitter, and the receiver's
// Retry-After header when it sends one. It holds no state and imports
// nothing of ours; the caller counts the failures and owns the timer.
package backoff
