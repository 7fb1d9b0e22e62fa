package storage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketAudit = []byte("audit")

// MaxAuditEntries bounds the audit log; the oldest entries are dropped
// beyond it.
const MaxAuditEntries = 100_000

// AuditEntry is one security-relevant event: a denied auth, a refused
// origin, a rate-limit trip, an app or secret change. It never holds a
// secret or a signature.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	App     string    `json:"app_id,omitempty"`
	Action  string    `json:"action"`
	IP      string    `json:"ip,omitempty"`
	Channel string    `json:"channel,omitempty"`
	UserID  string    `json:"user_id,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// AuditFilter selects audit entries; zero fields match everything. Limit 0
// means 1000.
type AuditFilter struct {
	Since  time.Time
	App    string
	Action string
	Limit  int
}

// AppendAudit appends entries in one transaction, numbering them, and
// drops the oldest beyond MaxAuditEntries.
func (db *DB) AppendAudit(entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := db.update(inBucket(bucketAudit, func(b *bolt.Bucket) error {
		var last uint64
		for i := range entries {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			e := entries[i]
			e.Seq = seq
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), v); err != nil {
				return err
			}
			last = seq
		}
		if last <= MaxAuditEntries {
			return nil
		}
		cut := seqKey(last - MaxAuditEntries)
		c := b.Cursor()
		for k, _ := c.First(); k != nil && string(k) <= string(cut); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("storage: append audit: %w", err)
	}
	return nil
}

// Audit returns the newest entries matching f, newest first.
func (db *DB) Audit(f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	out := []AuditEntry{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < f.Limit; k, v = c.Prev() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			if !f.Since.IsZero() && e.Time.Before(f.Since) {
				break // entries are in time order
			}
			if (f.App == "" || e.App == f.App) && (f.Action == "" || e.Action == f.Action) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read audit: %w", err)
	}
	return out, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// AuditWriter buffers audit entries and writes them in batches, so a flood
// of refusals costs one transaction per batch, not one fsync per entry.
// Record never blocks: when the buffer is full the entry is dropped and
// counted (Dropped). Run writes until ctx ends; Close flushes what is left.
type AuditWriter struct {
	db      *DB
	ch      chan AuditEntry
	dropped atomic.Int64
	errs    func(error)
	done    chan struct{}
}

// NewAuditWriter returns a writer with room for buffer entries (0 means
// 4096). onErr, if not nil, is told about failed writes.
func NewAuditWriter(db *DB, buffer int, onErr func(error)) *AuditWriter {
	if buffer <= 0 {
		buffer = 4096
	}
	if onErr == nil {
		onErr = func(error) {}
	}
	return &AuditWriter{db: db, ch: make(chan AuditEntry, buffer), errs: onErr, done: make(chan struct{})}
}

// Record queues e, stamping its time if unset.
func (w *AuditWriter) Record(e AuditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	select {
	case w.ch <- e:
	default:
		w.dropped.Add(1)
	}
}

// Dropped is the number of entries lost to a full buffer.
func (w *AuditWriter) Dropped() int64 { return w.dropped.Load() }

// auditFlushEvery is the longest an entry waits in memory.
const auditFlushEvery = 200 * time.Millisecond

// Run writes queued entries until ctx ends, then writes what is queued.
func (w *AuditWriter) Run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTimer(auditFlushEvery)
	defer t.Stop()
	batch := make([]AuditEntry, 0, 256)
	flush := func() {
		if len(batch) > 0 {
			if err := w.db.AppendAudit(batch); err != nil {
				w.errs(err)
			}
			batch = batch[:0]
		}
	}
	for {
		select {
		case e := <-w.ch:
			batch = append(batch, e)
			if len(batch) == cap(batch) {
				flush()
			}
		case <-t.C:
			flush()
			t.Reset(auditFlushEvery)
		case <-ctx.Done():
			for {
				select {
				case e := <-w.ch:
					batch = append(batch, e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Wait returns when Run has written its last batch.
func (w *AuditWriter) Wait() { <-w.done }
