package storage

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// bucketWebhookQueue holds one sub-bucket per target, named
	// targetKey(app, url), mapping an 8-byte big-endian entry id to an
	// encoded entry. Ids come from this bucket's sequence, so a target's
	// entries iterate in the order they were queued. Each sub-bucket's
	// sequence is its entry count.
	bucketWebhookQueue = []byte("webhook_queue")
	// bucketWebhookDead holds one sub-bucket per app id, mapping an 8-byte
	// dead-letter id to the JSON of a DeadLetter. Ids come from this
	// bucket's sequence; each sub-bucket's sequence is its entry count.
	bucketWebhookDead = []byte("webhook_dead")
)

// DefaultMaxDeadLetters is how many dead letters an app keeps when the
// caller passes a non-positive bound.
const DefaultMaxDeadLetters = 10_000

// maxLastError bounds the error text stored with an entry.
const maxLastError = 512

// WebhookEntry is one event waiting to be delivered to one webhook target.
// Times are stored with millisecond precision.
type WebhookEntry struct {
	// ID is assigned by EnqueueWebhooks; it orders a target's entries.
	ID uint64
	// App and URL name the target.
	App, URL string
	// Event is the JSON event object (shared/spec/pusher-protocol.md §5.2).
	Event []byte
	// CreatedAt is when the event happened.
	CreatedAt time.Time
	// EnqueuedAt is when the entry was queued (or replayed); retries give up
	// relative to it.
	EnqueuedAt time.Time
	// Attempts counts failed deliveries so far.
	Attempts int
	// NextAttempt is when the dispatcher planned the next try; zero before
	// the first failure. Informational: the dispatcher schedules per target.
	NextAttempt time.Time
	// LastError says why the last attempt failed.
	LastError string

	// Annuls and Supersedes coalesce churn (EnqueueWebhooksBounded only;
	// never stored). Annuls lists entries of the same target that this one
	// cancels out: if the first is still queued, every one still queued is
	// deleted and this entry is not stored (a channel_vacated whose
	// channel_occupied was never sent). Supersedes is an entry of the same
	// target this one makes stale: it is deleted if still queued and this
	// entry is stored (a newer subscription_count).
	Annuls     []uint64
	Supersedes uint64
}

// WebhookQueue is the size of one target's queue.
type WebhookQueue struct {
	App, URL string
	// Len is the number of entries waiting.
	Len int
}

// DeadLetter is an entry the dispatcher gave up on. It can be replayed into
// the queue with ReplayDeadLetters.
type DeadLetter struct {
	// ID identifies the dead letter (a different number space from queue
	// entry ids).
	ID        uint64          `json:"id"`
	App       string          `json:"app_id"`
	URL       string          `json:"url"`
	Event     json.RawMessage `json:"event"`
	CreatedAt time.Time       `json:"created_at"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	// Reason says why the dispatcher gave up (a status, the retry window,
	// a removed target).
	Reason string    `json:"reason"`
	DeadAt time.Time `json:"dead_at"`
}

// appendEntry stores e at the end of its target's bucket b in the queue q:
// a fresh id from the queue-wide sequence, and b's sequence counting its
// entries (see doc.go).
func appendEntry(q, b *bolt.Bucket, e *WebhookEntry) error {
	id, err := q.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(id), encodeEntry(e)); err != nil {
		return err
	}
	return b.SetSequence(b.Sequence() + 1)
}

// EnqueueWebhooks stores entries in one transaction, assigning each an ID
// (the IDs in entries are ignored and the slice is not modified), with no
// bound on a target's queue. The entries are durable when it returns nil.
// One call is one fsync: callers group a burst into one call (the webhook
// dispatcher writes behind, through EnqueueWebhooksBounded).
func (db *DB) EnqueueWebhooks(entries []WebhookEntry) error {
	_, err := db.EnqueueWebhooksBounded(entries, QueueBounds{})
	return err
}

// QueueBounds bounds what EnqueueWebhooksBounded leaves queued.
type QueueBounds struct {
	// MaxQueued is the most entries one target keeps queued: beyond it the
	// oldest move to the dead letters, in the same transaction. Zero or
	// negative means no bound.
	MaxQueued int
	// MaxDeadLetters bounds each app's dead letters as in
	// DeadLetterWebhooks (non-positive means DefaultMaxDeadLetters).
	MaxDeadLetters int
	// At stamps the dead letters made room for.
	At time.Time
}

// QueueChange is what one EnqueueWebhooksBounded call did to one target's
// queue.
type QueueChange struct {
	App, URL string
	// Delta is the net change in the number of queued entries: entries
	// stored, minus entries annulled or superseded, minus Overflow.
	Delta int
	// Overflow is how many of the oldest entries moved to the dead letters
	// because the queue was over QueueBounds.MaxQueued.
	Overflow int
}

// Enqueued is the outcome of EnqueueWebhooksBounded.
type Enqueued struct {
	// IDs holds the id assigned to each entry, in argument order; 0 for an
	// entry not stored because it annulled a queued one.
	IDs []uint64
	// Queues lists the targets the call changed, in first-seen order.
	Queues []QueueChange
}

// ReasonQueueFull starts the reason of the dead letters a full queue made.
const ReasonQueueFull = "queue full"

// EnqueueWebhooksBounded is EnqueueWebhooks with each target's queue
// bounded (see QueueBounds) and with the coalescing an entry asks for
// through Annuls and Supersedes, all in one transaction: a target never has
// more than MaxQueued entries on disk, so a receiver that is down cannot let
// anonymous traffic grow the file without bound.
func (db *DB) EnqueueWebhooksBounded(entries []WebhookEntry, bounds QueueBounds) (Enqueued, error) {
	var out Enqueued
	if len(entries) == 0 {
		return out, nil
	}
	err := db.update(func(tx *bolt.Tx) error {
		out = Enqueued{IDs: make([]uint64, len(entries))}
		q := tx.Bucket(bucketWebhookQueue)
		var b *bolt.Bucket
		var bkey string
		changes := map[string]int{} // target key -> index in out.Queues
		for i := range entries {
			e := &entries[i]
			if e.App == "" || e.URL == "" {
				return fmt.Errorf("%w: webhook entry without app or url", ErrInvalid)
			}
			if k := targetKey(e.App, e.URL); b == nil || k != bkey {
				var err error
				if b, err = q.CreateBucketIfNotExists([]byte(k)); err != nil {
					return err
				}
				bkey = k
			}
			ci, ok := changes[bkey]
			if !ok {
				ci = len(out.Queues)
				changes[bkey] = ci
				out.Queues = append(out.Queues, QueueChange{App: e.App, URL: e.URL})
			}
			qc := &out.Queues[ci]
			if len(e.Annuls) > 0 && b.Get(seqKey(e.Annuls[0])) != nil {
				n, err := deleteEntries(b, e.Annuls)
				if err != nil {
					return err
				}
				qc.Delta -= n
				continue
			}
			if e.Supersedes != 0 {
				n, err := deleteEntries(b, []uint64{e.Supersedes})
				if err != nil {
					return err
				}
				qc.Delta -= n
			}
			if err := appendEntry(q, b, e); err != nil {
				return err
			}
			out.IDs[i] = q.Sequence()
			qc.Delta++
		}
		if bounds.MaxQueued <= 0 {
			return nil
		}
		var apps []string
		for i := range out.Queues {
			qc := &out.Queues[i]
			b := q.Bucket([]byte(targetKey(qc.App, qc.URL)))
			n, err := overflowEntries(tx, b, qc.App, qc.URL, bounds)
			if err != nil {
				return err
			}
			if n > 0 {
				qc.Overflow, qc.Delta = n, qc.Delta-n
				if !slices.Contains(apps, qc.App) {
					apps = append(apps, qc.App)
				}
			}
		}
		return trimDeadLetters(tx, apps, bounds.MaxDeadLetters)
	})
	if err != nil {
		return Enqueued{}, fmt.Errorf("storage: enqueue %d webhook entries: %w", len(entries), err)
	}
	return out, nil
}

// overflowEntries moves the oldest entries of the target bucket b beyond
// bounds.MaxQueued to the dead letters and returns how many moved.
func overflowEntries(tx *bolt.Tx, b *bolt.Bucket, app, url string, bounds QueueBounds) (int, error) {
	if b.Sequence() <= uint64(bounds.MaxQueued) {
		return 0, nil
	}
	over := int(b.Sequence()) - bounds.MaxQueued
	reason := fmt.Sprintf("%s: the target had %d entries waiting (the most it keeps)", ReasonQueueFull,
		bounds.MaxQueued)
	ids := make([]uint64, 0, over)
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(ids) < over; k, v = c.Next() {
		e, err := decodeEntry(k, v)
		if err != nil {
			return 0, err
		}
		e.App, e.URL = app, url
		if err := putDeadLetter(tx, e, reason, bounds.At); err != nil {
			return 0, err
		}
		ids = append(ids, e.ID)
	}
	return deleteEntries(b, ids)
}

// WebhookHead returns up to limit of the target's oldest entries, in queue
// order. An empty queue gives an empty slice.
func (db *DB) WebhookHead(app, url string, limit int) ([]WebhookEntry, error) {
	var out []WebhookEntry
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWebhookQueue).Bucket([]byte(targetKey(app, url)))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			e.App, e.URL = app, url
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read webhook queue of %s: %w", app, err)
	}
	return out, nil
}

// DeleteWebhooks removes delivered entries of a target and returns how
// many it removed. IDs that are gone already (a full queue may have moved
// them to the dead letters meanwhile) are skipped.
func (db *DB) DeleteWebhooks(app, url string, ids []uint64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int
	err := db.batch(func(tx *bolt.Tx) error {
		n = 0 // Batch may run fn again
		b := tx.Bucket(bucketWebhookQueue).Bucket([]byte(targetKey(app, url)))
		if b == nil {
			return nil
		}
		var err error
		n, err = deleteEntries(b, ids)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: delete webhook entries of %s: %w", app, err)
	}
	return n, nil
}

// MarkWebhookAttempts records a failed attempt: it stores the Attempts,
// NextAttempt and LastError of each entry (found by App, URL and ID).
// Entries no longer queued are skipped.
func (db *DB) MarkWebhookAttempts(entries []WebhookEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := db.batch(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketWebhookQueue)
		for i := range entries {
			e := &entries[i]
			b, k, stored, ok, err := queuedEntry(q, e)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			stored.Attempts, stored.NextAttempt, stored.LastError = e.Attempts, e.NextAttempt, e.LastError
			if err := b.Put(k, encodeEntry(&stored)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: mark webhook attempts: %w", err)
	}
	return nil
}

// DeadLetterWebhooks moves queued entries (found by App, URL and ID) to the
// dead letters of their app with reason, in one transaction. Each entry's
// Attempts and LastError are taken from the argument. An app keeps at most
// max dead letters (non-positive means DefaultMaxDeadLetters); the oldest
// are dropped first. Entries no longer queued are skipped. It returns how
// many entries moved.
func (db *DB) DeadLetterWebhooks(entries []WebhookEntry, reason string, at time.Time, max int) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	var n int
	err := db.batch(func(tx *bolt.Tx) error {
		n = 0 // Batch may run fn again
		q := tx.Bucket(bucketWebhookQueue)
		for i := range entries {
			e := entries[i]
			b, _, stored, ok, err := queuedEntry(q, &e)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			stored.App, stored.URL = e.App, e.URL
			stored.Attempts, stored.LastError = e.Attempts, e.LastError
			if _, err := deleteEntries(b, []uint64{e.ID}); err != nil {
				return err
			}
			if err := putDeadLetter(tx, stored, reason, at); err != nil {
				return err
			}
			n++
		}
		return trimDeadLetters(tx, entriesApps(entries), max)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: dead-letter %d webhook entries: %w", len(entries), err)
	}
	return n, nil
}

// ExpireWebhooks moves the target's oldest entries that were queued before
// cutoff to the dead letters with reason, at most limit of them (zero means
// 10000), in one transaction, and returns how many moved. It stops at the
// first entry queued at or after cutoff: a target's entries are queued in
// time order. max bounds the app's dead letters as in DeadLetterWebhooks.
func (db *DB) ExpireWebhooks(app, url string, cutoff time.Time, reason string, at time.Time, max, limit int) (int, error) {
	if limit <= 0 {
		limit = 10_000
	}
	var n int
	err := db.batch(func(tx *bolt.Tx) error {
		n = 0 // Batch may run fn again
		b := tx.Bucket(bucketWebhookQueue).Bucket([]byte(targetKey(app, url)))
		if b == nil {
			return nil
		}
		var ids []uint64
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(ids) < limit; k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			if !e.EnqueuedAt.Before(cutoff) {
				break
			}
			e.App, e.URL = app, url
			if err := putDeadLetter(tx, e, reason, at); err != nil {
				return err
			}
			ids = append(ids, e.ID)
		}
		if _, err := deleteEntries(b, ids); err != nil {
			return err
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		return trimDeadLetters(tx, []string{app}, max)
	})
	if err != nil {
		return 0, fmt.Errorf("storage: expire webhook entries of %s: %w", app, err)
	}
	return n, nil
}

// WebhookQueues lists every target with queued entries and their count.
func (db *DB) WebhookQueues() ([]WebhookQueue, error) {
	var out []WebhookQueue
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWebhookQueue).ForEachBucket(func(k []byte) error {
			n := tx.Bucket(bucketWebhookQueue).Bucket(k).Sequence()
			if n == 0 {
				return nil
			}
			app, url, ok := splitTargetKey(string(k))
			if !ok {
				return fmt.Errorf("malformed webhook queue name %q", k)
			}
			out = append(out, WebhookQueue{App: app, URL: url, Len: int(n)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list webhook queues: %w", err)
	}
	return out, nil
}

// DeadLetters returns the dead letters of app (every app when app is ""),
// oldest first, at most limit of them (non-positive means all).
func (db *DB) DeadLetters(app string, limit int) ([]DeadLetter, error) {
	out := []DeadLetter{}
	err := db.view(func(tx *bolt.Tx) error {
		return forEachDeadApp(tx, app, func(b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if limit > 0 && len(out) >= limit {
					return errStop
				}
				d, err := decodeDead(k, v)
				if err != nil {
					return err
				}
				out = append(out, d)
				return nil
			})
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("storage: list dead letters: %w", err)
	}
	if app == "" {
		slices.SortFunc(out, func(a, b DeadLetter) int { return cmp.Compare(a.ID, b.ID) })
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
	}
	return out, nil
}

// ReplayDeadLetters moves dead letters of app (every app when app is "")
// back into the queue, the ones in ids or all of them when ids is empty.
// Replayed entries start afresh: no attempts, EnqueuedAt = at. A dead
// letter whose target keep refuses (a target no longer configured) stays
// and is counted in skipped; keep nil accepts all. It returns the queues
// that received entries, with how many each got.
func (db *DB) ReplayDeadLetters(app string, ids []uint64, at time.Time, keep func(app, url string) bool) (
	replayed []WebhookQueue, skipped int, err error) {
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	err = db.update(func(tx *bolt.Tx) error {
		var moved []WebhookEntry
		var deadKeys []struct {
			app string
			id  uint64
		}
		err := forEachDeadApp(tx, app, func(b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				id := binary.BigEndian.Uint64(k)
				if len(want) > 0 && !want[id] {
					return nil
				}
				d, err := decodeDead(k, v)
				if err != nil {
					return err
				}
				if keep != nil && !keep(d.App, d.URL) {
					skipped++
					return nil
				}
				moved = append(moved, WebhookEntry{App: d.App, URL: d.URL, Event: d.Event,
					CreatedAt: d.CreatedAt, EnqueuedAt: at})
				deadKeys = append(deadKeys, struct {
					app string
					id  uint64
				}{d.App, id})
				return nil
			})
		})
		if err != nil {
			return err
		}
		dead := tx.Bucket(bucketWebhookDead)
		for _, dk := range deadKeys {
			b := dead.Bucket([]byte(dk.app))
			if _, err := deleteEntries(b, []uint64{dk.id}); err != nil {
				return err
			}
		}
		counts := map[[2]string]int{}
		q := tx.Bucket(bucketWebhookQueue)
		for i := range moved {
			e := &moved[i]
			b, err := q.CreateBucketIfNotExists([]byte(targetKey(e.App, e.URL)))
			if err != nil {
				return err
			}
			if err := appendEntry(q, b, e); err != nil {
				return err
			}
			counts[[2]string{e.App, e.URL}]++
		}
		for k, n := range counts {
			replayed = append(replayed, WebhookQueue{App: k[0], URL: k[1], Len: n})
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: replay dead letters: %w", err)
	}
	slices.SortFunc(replayed, func(a, b WebhookQueue) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.URL, b.URL))
	})
	return replayed, skipped, nil
}

// errStop ends a ForEach early.
var errStop = errors.New("stop")

// batch runs fn in a write transaction shared with concurrent callers
// (bbolt's Batch). fn may run more than once, so it must only change the
// transaction and reset whatever it records outside it.
func (db *DB) batch(fn func(*bolt.Tx) error) error {
	return closedErr(db.bolt.Batch(fn))
}

// targetKey names a target's queue: app ids and URLs contain no NUL.
func targetKey(app, url string) string { return app + "\x00" + url }

// queuedEntry finds e (by App, URL and ID) in the queue bucket q and returns
// its target bucket, key and stored copy; ok is false when it is no longer
// queued. The copy owns its bytes.
func queuedEntry(q *bolt.Bucket, e *WebhookEntry) (b *bolt.Bucket, k []byte, stored WebhookEntry, ok bool, err error) {
	b = q.Bucket([]byte(targetKey(e.App, e.URL)))
	if b == nil {
		return nil, nil, WebhookEntry{}, false, nil
	}
	k = seqKey(e.ID)
	v := b.Get(k)
	if v == nil {
		return nil, nil, WebhookEntry{}, false, nil
	}
	stored, err = decodeEntry(k, v)
	return b, k, stored, err == nil, err
}

func splitTargetKey(k string) (app, url string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:], true
		}
	}
	return "", "", false
}

// deleteEntries deletes ids from b, keeping b's sequence (its count) right.
func deleteEntries(b *bolt.Bucket, ids []uint64) (int, error) {
	n := 0
	for _, id := range ids {
		k := seqKey(id)
		if b.Get(k) == nil {
			continue
		}
		if err := b.Delete(k); err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		c := b.Sequence()
		if uint64(n) > c {
			c = uint64(n)
		}
		if err := b.SetSequence(c - uint64(n)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// putDeadLetter appends e to its app's dead letters.
func putDeadLetter(tx *bolt.Tx, e WebhookEntry, reason string, at time.Time) error {
	dead := tx.Bucket(bucketWebhookDead)
	b, err := dead.CreateBucketIfNotExists([]byte(e.App))
	if err != nil {
		return err
	}
	id, err := dead.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(DeadLetter{ID: id, App: e.App, URL: e.URL, Event: e.Event,
		CreatedAt: e.CreatedAt, Attempts: e.Attempts, LastError: e.LastError, Reason: reason,
		DeadAt: at.UTC().Round(0)})
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	if err := b.Put(seqKey(id), v); err != nil {
		return err
	}
	return b.SetSequence(b.Sequence() + 1)
}

// trimDeadLetters drops the oldest dead letters of apps beyond max.
func trimDeadLetters(tx *bolt.Tx, apps []string, max int) error {
	if max <= 0 {
		max = DefaultMaxDeadLetters
	}
	dead := tx.Bucket(bucketWebhookDead)
	for _, app := range apps {
		b := dead.Bucket([]byte(app))
		if b == nil || b.Sequence() <= uint64(max) {
			continue
		}
		over := b.Sequence() - uint64(max)
		c := b.Cursor()
		var dropped uint64
		for k, _ := c.First(); k != nil && dropped < over; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			dropped++
		}
		if err := b.SetSequence(b.Sequence() - dropped); err != nil {
			return err
		}
	}
	return nil
}

// forEachDeadApp calls fn with the dead-letter bucket of app, or of every
// app when app is "".
func forEachDeadApp(tx *bolt.Tx, app string, fn func(*bolt.Bucket) error) error {
	dead := tx.Bucket(bucketWebhookDead)
	if app != "" {
		if b := dead.Bucket([]byte(app)); b != nil {
			return fn(b)
		}
		return nil
	}
	return dead.ForEachBucket(func(k []byte) error { return fn(dead.Bucket(k)) })
}

func entriesApps(entries []WebhookEntry) []string {
	var apps []string
	for _, e := range entries {
		if !slices.Contains(apps, e.App) {
			apps = append(apps, e.App)
		}
	}
	return apps
}

// The queue's value encoding, version 1 (all integers big-endian):
//
//	[0]      version (1)
//	[1:9]    CreatedAt, unix ms
//	[9:17]   EnqueuedAt, unix ms
//	[17:25]  NextAttempt, unix ms (0 = none)
//	[25:29]  Attempts
//	[29:31]  n = len(LastError)
//	[31:31+n] LastError
//	[31+n:]  Event
//
// Binary rather than JSON: the queue is the hot path, and a failed attempt
// rewrites its entries.
const entryVersion, entryHeader = 1, 31

func encodeEntry(e *WebhookEntry) []byte {
	le := e.LastError
	if len(le) > maxLastError {
		le = le[:maxLastError]
	}
	v := make([]byte, entryHeader, entryHeader+len(le)+len(e.Event))
	v[0] = entryVersion
	binary.BigEndian.PutUint64(v[1:], uint64(unixMs(e.CreatedAt)))
	binary.BigEndian.PutUint64(v[9:], uint64(unixMs(e.EnqueuedAt)))
	binary.BigEndian.PutUint64(v[17:], uint64(unixMs(e.NextAttempt)))
	binary.BigEndian.PutUint32(v[25:], uint32(max(e.Attempts, 0)))
	binary.BigEndian.PutUint16(v[29:], uint16(len(le)))
	v = append(v, le...)
	return append(v, e.Event...)
}

// decodeEntry copies an entry out of bbolt's memory (k and v are only
// valid inside the transaction). App and URL are left for the caller.
func decodeEntry(k, v []byte) (WebhookEntry, error) {
	if len(k) != 8 || len(v) < entryHeader || v[0] != entryVersion {
		return WebhookEntry{}, fmt.Errorf("malformed webhook entry %x", k)
	}
	n := int(binary.BigEndian.Uint16(v[29:]))
	if len(v) < entryHeader+n {
		return WebhookEntry{}, fmt.Errorf("malformed webhook entry %x", k)
	}
	return WebhookEntry{
		ID:          binary.BigEndian.Uint64(k),
		CreatedAt:   fromUnixMs(int64(binary.BigEndian.Uint64(v[1:]))),
		EnqueuedAt:  fromUnixMs(int64(binary.BigEndian.Uint64(v[9:]))),
		NextAttempt: fromUnixMs(int64(binary.BigEndian.Uint64(v[17:]))),
		Attempts:    int(binary.BigEndian.Uint32(v[25:])),
		LastError:   string(v[entryHeader : entryHeader+n]),
		Event:       slices.Clone(v[entryHeader+n:]),
	}, nil
}

// decodeDead copies a dead letter out of bbolt's memory.
func decodeDead(k, v []byte) (DeadLetter, error) {
	var d DeadLetter
	if err := json.Unmarshal(v, &d); err != nil { // Unmarshal copies, RawMessage included
		return DeadLetter{}, fmt.Errorf("decode dead letter %x: %w", k, err)
	}
	d.ID = binary.BigEndian.Uint64(k)
	return d, nil
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
