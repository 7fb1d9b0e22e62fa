package webhooks

import (
	"time"
)

// Stats are the dispatcher's counters since New, for metrics.
type Stats struct {
	// Queued counts events committed to the durable queue, one per target.
	Queued uint64
	// Commits counts the write-behind's transactions (one fsync each).
	Commits uint64
	// Sent counts events delivered: their request got a 2xx.
	Sent uint64
	// Failed counts failed requests: network errors and other statuses.
	Failed uint64
	// Retried counts events scheduled for another attempt.
	Retried uint64
	// DeadLettered counts events given up on.
	DeadLettered uint64
	// Dropped counts events lost before reaching the queue: the buffer was
	// full, the dispatcher was closed, the final commit failed, or a push
	// event's Fields did not encode as JSON.
	Dropped uint64
	// QueueFull counts events moved from a full queue (Config.MaxQueueDepth)
	// to the dead letters, oldest first; they are in DeadLettered too.
	QueueFull uint64
	// Coalesced counts events never sent because a later event made them
	// moot before the receiver got them: a channel_occupied and its
	// channel_vacated cancelling out (both counted, with the
	// subscription_count between them), or a subscription_count replaced by
	// a newer one.
	Coalesced uint64
	// QueueDepth is the number of events in the durable queue.
	QueueDepth int64
	// Buffered is the number of events waiting for the write-behind commit.
	Buffered int
}

// Stats returns the current counters.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	buffered := len(d.buf)
	d.mu.Unlock()
	return Stats{
		Queued: d.queued.Load(), Commits: d.commits.Load(), Sent: d.sent.Load(), Failed: d.failed.Load(), Retried: d.retried.Load(),
		DeadLettered: d.deadLettered.Load(), Dropped: d.dropped.Load(), QueueFull: d.queueFull.Load(), Coalesced: d.coalesced.Load(),
		QueueDepth: d.queueDepth(),
		Buffered:   buffered,
	}
}

func (d *Dispatcher) queueDepth() int64 {
	var n int64
	for _, t := range d.state.Load().targets {
		n += t.q.depth.Load()
	}
	return n
}

// TargetStatus describes one target's queue.
type TargetStatus struct {
	URL string `json:"url"`
	// Pending is the number of events in the durable queue.
	Pending int64 `json:"pending"`
	// Failures counts the consecutive failed requests.
	Failures int64 `json:"failures"`
	// NextAttempt is when the next request may go, zero if now.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Queues returns the status of app's targets, in configuration order.
func (d *Dispatcher) Queues(app string) []TargetStatus {
	out := []TargetStatus{}
	as := d.state.Load().apps[app]
	if as == nil {
		return out
	}
	for _, t := range as.targets {
		s := TargetStatus{URL: t.url, Pending: t.q.depth.Load(), Failures: t.q.failures.Load()}
		if ms := t.q.retryAt.Load(); ms != 0 {
			s.NextAttempt = time.UnixMilli(ms).UTC()
		}
		out = append(out, s)
	}
	return out
}
