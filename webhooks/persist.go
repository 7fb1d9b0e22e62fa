package webhooks

import (
	"time"

	"github.com/sockudo/sockudo/storage"
)

// pendingEntry is an event for one target waiting for the write-behind.
type pendingEntry struct {
	t       *target
	event   []byte // shared by the event's targets; read-only
	created time.Time
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
	now := d.clock.Now()
	entries := make([]storage.WebhookEntry, len(batch))
	for i, p := range batch {
		entries[i] = storage.WebhookEntry{App: p.t.q.app, URL: p.t.q.url, Event: p.event, CreatedAt: p.created,
			EnqueuedAt: now}
	}
	if err := d.db.EnqueueWebhooks(entries); err != nil {
		d.mu.Lock()
		d.buf = append(batch, d.buf...)
		d.mu.Unlock()
		return err
	}
	d.queued.Add(uint64(len(batch)))
	d.commits.Add(1)
	var last *queue
	for _, p := range batch {
		p.t.q.depth.Add(1)
		if p.t.q != last {
			p.t.q.notify()
			last = p.t.q
		}
	}
	return nil
}
