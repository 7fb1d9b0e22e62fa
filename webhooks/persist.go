package webhooks

import (
	"cmp"
	"slices"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// pendingEntry is an event for one target waiting for the write-behind.
type pendingEntry struct {
	t       *target
	event   []byte // shared by the event's targets; read-only
	created time.Time
	// name and channel drive the coalescing (coalesceBatch, annulQueued).
	name, channel string
}

// persistRetry is the pause after a failed commit before trying again.
const persistRetry = 500 * time.Millisecond

// runPersister commits buffered events to storage, one transaction per
// round and at most one round per CommitInterval: the events emitted
// meanwhile share the commit, so a burst costs one fsync per interval, not
// one per event. It exits after a final commit once Close closes
// stopPersist. It runs on the real clock: it is about the disk, not about
// the schedules tests fake.
func (d *Dispatcher) runPersister() {
	defer close(d.persistDone)
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	defer tm.Stop()
	var lastCommit time.Time
	for {
		stopping := false
		select {
		case <-d.persistNow:
		case <-d.stopPersist:
			stopping = true
		}
		if wait := time.Until(lastCommit.Add(d.cfg.CommitInterval)); wait > 0 && !stopping {
			tm.Reset(wait)
			select {
			case <-tm.C:
			case <-d.stopPersist:
				stopping = true
			}
		}
		lastCommit = time.Now()
		if err := d.persist(); err != nil {
			if stopping {
				d.mu.Lock()
				lost := len(d.buf)
				d.buf = nil
				d.mu.Unlock()
				d.dropped.Add(uint64(lost))
				d.log.Error("webhook events lost: the final write to the database failed", "events", lost, "err", err)
				return
			}
			d.warn.warn("persist", "cannot write webhook events to the database; retrying", "err", err)
			tm.Reset(persistRetry)
			select {
			case <-tm.C:
			case <-d.stopPersist:
			}
			d.kickPersist()
			continue
		}
		if stopping {
			return
		}
	}
}

func (d *Dispatcher) kickPersist() {
	select {
	case d.persistNow <- struct{}{}:
	default:
	}
}

// persist commits everything buffered. On failure the events go back to
// the front of the buffer.
func (d *Dispatcher) persist() error {
	d.mu.Lock()
	batch, occ := d.buf, d.occ
	d.buf, d.occ = nil, nil
	d.mu.Unlock()
	if err := d.db.ApplyOccupancy(occ); err != nil {
		d.mu.Lock()
		d.buf = append(batch, d.buf...)
		d.occ = append(occ, d.occ...)
		d.mu.Unlock()
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	// Hold the claim of every queue touched, in a fixed order, so that no
	// delivery loop reads (and sends) an entry this commit annuls.
	var queues []*queue
	for _, p := range batch {
		if !slices.Contains(queues, p.t.q) {
			queues = append(queues, p.t.q)
		}
	}
	slices.SortFunc(queues, func(a, b *queue) int { return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.url, b.url)) })
	for _, q := range queues {
		q.claimMu.Lock()
	}
	kept := coalesceBatch(batch, func(q *queue, channel string) bool {
		return q.churn[channel].occupied > q.claimed
	})
	now := d.clock.Now()
	entries := make([]storage.WebhookEntry, len(kept))
	for i, p := range kept {
		entries[i] = storage.WebhookEntry{App: p.t.q.app, URL: p.t.q.url, Event: p.event, CreatedAt: p.created,
			EnqueuedAt: now}
		annulQueued(p, &entries[i])
	}
	// A burst is committed in transactions of at most maxCommitEntries:
	// bbolt reuses a transaction's freed pages only in the next one, so one
	// huge transaction that also pushes a full queue's oldest entries out
	// (a flood of vacated decided together) would grow the file by its
	// whole size.
	bounds := storage.QueueBounds{MaxQueued: d.cfg.MaxQueueDepth, MaxDeadLetters: d.cfg.MaxDeadLetters, At: now}
	var (
		res  storage.Enqueued
		err  error
		done int // entries of kept committed
		txs  uint64
	)
	for done < len(kept) {
		end := min(done+maxCommitEntries, len(kept))
		var r storage.Enqueued
		if r, err = d.db.EnqueueWebhooksBounded(entries[done:end], bounds); err != nil {
			break
		}
		for i, p := range kept[done:end] {
			indexChurn(p, r.IDs[i], d.cfg.MaxQueueDepth)
		}
		res.IDs = append(res.IDs, r.IDs...)
		res.Queues = append(res.Queues, r.Queues...)
		done, txs = end, txs+1
	}
	for _, q := range queues {
		q.claimMu.Unlock()
	}
	if err != nil {
		// What was not committed goes back, to be coalesced and
		// committed again (the churn index holds only what committed).
		d.mu.Lock()
		d.buf = append(slices.Clip(kept[done:]), d.buf...)
		d.mu.Unlock()
	}

	stored := 0
	for _, id := range res.IDs {
		if id != 0 {
			stored++
		}
	}
	// Coalesced: the events of batch dropped within it, the committed ones
	// not stored (a vacated that annulled a queued occupied), and the queued
	// entries annulled or superseded, which are stored − Σ(Delta+Overflow).
	coalesced := len(batch) - len(kept) + done
	for _, qc := range res.Queues {
		t := targetOf(kept, qc.App, qc.URL)
		q := t.q
		coalesced -= qc.Delta + qc.Overflow
		q.depth.Add(int64(qc.Delta))
		if qc.Delta > 0 || qc.Overflow > 0 {
			q.notify()
		}
		if qc.Overflow > 0 {
			d.queueFull.Add(uint64(qc.Overflow))
			d.deadLettered.Add(uint64(qc.Overflow))
			d.warn.warn("full "+qc.App+" "+qc.URL, "webhook queue full: the oldest events moved to the dead letters",
				"app_id", qc.App, "url", t.logURL, "events", qc.Overflow, "max", d.cfg.MaxQueueDepth)
		}
	}
	d.coalesced.Add(uint64(coalesced))
	// Last, so that a reader who sees Queued move sees the rest too.
	d.commits.Add(txs)
	d.queued.Add(uint64(stored))
	return err
}

// maxCommitEntries bounds the entries of one write-behind transaction.
const maxCommitEntries = 1000

// targetOf finds the target of app and url among those of batch.
func targetOf(batch []pendingEntry, app, url string) *target {
	for _, p := range batch {
		if p.t.q.app == app && p.t.q.url == url {
			return p.t
		}
	}
	panic("webhooks: storage reported a queue the batch did not touch")
}

// coalesceBatch drops the churn of one write-behind batch, per target and
// channel: a channel_occupied followed by its channel_vacated cancel out
// (with the subscription_count between them), and of several
// subscription_counts only the last is kept. queued reports whether a
// channel's target has a channel_occupied queued that the channel_vacated
// will annul (annulQueued); the counts of the batch before that vacated go
// with it. The receiver sees the same end state: a channel it was never
// told about, or the latest count. Order is otherwise kept; batch is not
// modified. The claimMu of the batch's queues must be held.
func coalesceBatch(batch []pendingEntry, queued func(q *queue, channel string) bool) []pendingEntry {
	type key struct {
		q       *queue
		channel string
	}
	// occupied and count index batch (-1: none); durable is whether the
	// period began with an occupied still queued from an earlier commit.
	type period struct {
		occupied, count int
		durable         bool
	}
	seen := map[key]period{}
	drop := make([]bool, len(batch))
	for i, p := range batch {
		if p.name != ChannelOccupied && p.name != ChannelVacated && p.name != SubscriptionCount {
			continue
		}
		k := key{p.t.q, p.channel}
		at, ok := seen[k]
		if !ok {
			at = period{occupied: -1, count: -1, durable: queued(p.t.q, p.channel)}
		}
		switch p.name {
		case ChannelOccupied:
			at.occupied = i
		case SubscriptionCount:
			if at.count >= 0 {
				drop[at.count] = true
			}
			at.count = i
		case ChannelVacated:
			switch {
			case at.occupied >= 0:
				drop[at.occupied], drop[i] = true, true
				if at.count > at.occupied {
					drop[at.count] = true
				}
			case at.durable && at.count >= 0:
				drop[at.count] = true
			}
			at = period{occupied: -1, count: -1}
		}
		seen[k] = at
	}
	kept := make([]pendingEntry, 0, len(batch))
	for i, p := range batch {
		if !drop[i] {
			kept = append(kept, p)
		}
	}
	return kept
}

// annulQueued asks storage to coalesce p with what its target has queued
// from earlier commits: a channel_vacated annuls the channel_occupied (and
// the subscription_count after it) still waiting, so a receiver that is
// down does not get a queue of channels that came and went; a
// subscription_count supersedes the one still waiting. Entries the delivery
// loop may have sent (up to claimed) are left alone. p.t.q.claimMu must be
// held.
func annulQueued(p pendingEntry, e *storage.WebhookEntry) {
	q := p.t.q
	ids, ok := q.churn[p.channel]
	if !ok {
		return
	}
	switch p.name {
	case ChannelVacated:
		if ids.occupied > q.claimed {
			e.Annuls = []uint64{ids.occupied}
			if ids.count > q.claimed {
				e.Annuls = append(e.Annuls, ids.count)
			}
		}
	case SubscriptionCount:
		if ids.count > q.claimed {
			e.Supersedes = ids.count
		}
	}
}

// indexChurn records, after a commit, which of p's target's entries a later
// event may coalesce; id is p's entry id (0: not stored). Only channels
// whose target also takes the event that would coalesce them are indexed,
// and the index is dropped when it outgrows bound, so it costs at most
// about one entry per queued event.
func indexChurn(p pendingEntry, id uint64, bound int) {
	q := p.t.q
	switch p.name {
	case ChannelVacated:
		delete(q.churn, p.channel)
	case ChannelOccupied:
		if id != 0 && p.t.types&bit(ChannelVacated) != 0 {
			q.churn[p.channel] = churnIDs{occupied: id}
		}
	case SubscriptionCount:
		if id != 0 {
			ids := q.churn[p.channel]
			ids.count = id
			q.churn[p.channel] = ids
		}
	}
	if len(q.churn) > bound {
		clear(q.churn)
	}
}
