package push

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// Audit trail tuning.
const (
	// trailQueue bounds the entries waiting for Run; Record blocks beyond.
	trailQueue = 4096
	// trailBatch is the most entries one transaction appends.
	trailBatch = 256
	// trailFlushEvery is the longest a recorded entry waits in memory.
	trailFlushEvery = 100 * time.Millisecond
	// trailRetryEvery is the wait after a failed append before the next try.
	trailRetryEvery = time.Second
	// trailPurgeEvery is how often retention runs.
	trailPurgeEvery = time.Hour
)

// AuditTrail appends push audit entries (shared/spec/push-api.md §4.7) in
// batches from one goroutine (owned by whoever calls Run), so a burst of
// entries costs one transaction per batch, not one fsync each. It never
// drops an entry: Record blocks while the queue is full, because an audit
// trail with holes is worth little, and backpressure on the recorder is the
// honest answer to a database that cannot keep up. It is safe for
// concurrent use.
type AuditTrail struct {
	db        *storage.DB
	retention time.Duration
	log       *slog.Logger

	// ch holds pointers: trailQueue trailItem values would be 832 KiB that
	// the GC scans and so keeps resident on an idle server; pointers are
	// 32 KiB.
	ch chan *trailItem
	// stopping is closed when Run's ctx ends: a Record blocked on a full
	// queue then gives up on it and appends itself once Run is done.
	stopping chan struct{}
	// done is closed when Run has stored what was queued and returned.
	done chan struct{}

	// mu guards stopped; Record holds it shared while it queues, so Run
	// (exclusive) knows that once stopped is set nothing more is queued.
	mu      sync.RWMutex
	stopped bool
	// runOnce makes a second Run return at once.
	runOnce sync.Once
}

// trailItem is a queued entry, or, with flushed set, a Flush waiting for
// what was queued before it.
type trailItem struct {
	e       storage.PushAuditEntry
	flushed chan struct{}
}

// NewAuditTrail returns a trail over db that keeps entries for retention
// (0 keeps them forever); log receives failed writes (nil: discarded). It
// starts nothing: Run does, and until Run runs, Record queues and then
// blocks.
func NewAuditTrail(db *storage.DB, retention time.Duration, log *slog.Logger) *AuditTrail {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AuditTrail{db: db, retention: max(retention, 0), log: log, ch: make(chan *trailItem, trailQueue),
		stopping: make(chan struct{}), done: make(chan struct{})}
}

// Record queues e for the trail, stamping a zero Time with now; it blocks
// while the queue is full. After Run returned it appends e synchronously.
// Entries the database refuses as invalid (no app, actor or action;
// details not a JSON object) are logged and not stored: that is a bug of
// the recorder, and retrying cannot fix it.
func (t *AuditTrail) Record(e storage.PushAuditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now() // when it happened, not when its batch is written
	}
	if !t.enqueue(&trailItem{e: e}) {
		<-t.done                             // what was queued first is stored first
		t.store([]storage.PushAuditEntry{e}) // a failure is logged
	}
}

// Flush waits until everything Recorded before the call is stored (or,
// when the database fails, given up on at shutdown). It needs Run running,
// or returned.
func (t *AuditTrail) Flush() {
	it := &trailItem{flushed: make(chan struct{})}
	if !t.enqueue(it) {
		<-t.done
		return
	}
	select {
	case <-it.flushed:
	case <-t.done: // Run drained the queue, this marker included
	}
}

// enqueue queues it, blocking while the queue is full; false means Run is
// stopping or stopped and it was not queued.
func (t *AuditTrail) enqueue(it *trailItem) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		return false
	}
	select {
	case t.ch <- it:
		return true
	case <-t.stopping:
		return false
	}
}

// Run appends queued entries, a batch every trailFlushEvery or every
// trailBatch entries, and applies retention at start and every hour, until
// ctx ends; it then stores what is queued and returns. Call it once.
func (t *AuditTrail) Run(ctx context.Context) {
	t.runOnce.Do(func() { t.run(ctx) })
}

func (t *AuditTrail) run(ctx context.Context) {
	defer close(t.done)
	t.purge()
	purge := time.NewTicker(trailPurgeEvery)
	defer purge.Stop()
	// flushT is armed when a batch starts (or a write failed), so an idle
	// trail does not wake up ten times a second.
	flushT := time.NewTimer(trailFlushEvery)
	flushT.Stop()
	defer flushT.Stop()

	var (
		batch   []storage.PushAuditEntry
		waiters []chan struct{}
		failing bool
	)
	release := func() {
		for _, w := range waiters {
			close(w)
		}
		waiters = waiters[:0]
	}
	flush := func() {
		n := t.store(batch)
		batch = batch[:copy(batch, batch[n:])]
		if failing = len(batch) > 0; failing {
			// Kept and retried; meanwhile the queue fills and Record
			// blocks.
			flushT.Reset(trailRetryEvery)
			return
		}
		release()
	}
	for {
		in := t.ch
		if failing {
			in = nil // hold back until the database takes the batch
		}
		select {
		case it := <-in:
			switch {
			case it.flushed != nil:
				waiters = append(waiters, it.flushed)
				flush()
			case len(batch)+1 >= trailBatch:
				batch = append(batch, it.e)
				flush()
			default:
				if len(batch) == 0 {
					flushT.Reset(trailFlushEvery)
				}
				batch = append(batch, it.e)
			}
		case <-flushT.C:
			flush()
		case <-purge.C:
			t.purge()
		case <-ctx.Done():
			close(t.stopping)
			t.mu.Lock() // waits out every Record between its check and its send
			t.stopped = true
			t.mu.Unlock()
			batch, waiters = t.drain(batch, waiters)
			if n := t.store(batch); n < len(batch) {
				t.log.Error("push audit trail: entries lost at shutdown", "entries", len(batch)-n)
			}
			release()
			return
		}
	}
}

// drain adds what is queued to batch and waiters; nothing is queued after
// stopped is set.
func (t *AuditTrail) drain(batch []storage.PushAuditEntry, waiters []chan struct{}) ([]storage.PushAuditEntry, []chan struct{}) {
	for {
		select {
		case it := <-t.ch:
			if it.flushed != nil {
				waiters = append(waiters, it.flushed)
			} else {
				batch = append(batch, it.e)
			}
		default:
			return batch, waiters
		}
	}
}

// store appends entries, at most trailBatch per transaction, and returns
// how many of them, from the first, are settled: stored, or refused as
// invalid (logged and skipped, since no retry can fix them). Fewer than
// all means the database failed (logged).
func (t *AuditTrail) store(entries []storage.PushAuditEntry) int {
	done := 0
	for done < len(entries) {
		chunk := entries[done:min(len(entries), done+trailBatch)]
		_, err := t.db.AppendPushAudit(chunk)
		switch {
		case err == nil:
			done += len(chunk)
		case errors.Is(err, storage.ErrInvalid) && len(chunk) == 1:
			t.log.Error("push audit trail: entry refused", "app_id", chunk[0].App, "action", chunk[0].Action,
				"err", err)
			done++
		case errors.Is(err, storage.ErrInvalid):
			// One by one, so one bad entry does not hold back the others.
			for i := range chunk {
				if t.store(chunk[i:i+1]) == 0 {
					return done
				}
				done++
			}
		default:
			t.log.Error("push audit trail: append failed", "entries", len(entries)-done, "err", err)
			return done
		}
	}
	return done
}

// purge applies retention to every app.
func (t *AuditTrail) purge() {
	if t.retention == 0 {
		return
	}
	n, err := t.db.PurgePushAudit("", time.Now().Add(-t.retention))
	if err != nil {
		t.log.Error("push audit trail: retention failed", "err", err)
		return
	}
	if n > 0 {
		t.log.Info("push audit trail: retention", "purged", n)
	}
}
