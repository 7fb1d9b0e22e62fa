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

var (
	// bucketAudit held every entry before refusals and changes were kept
	// apart; it still holds those entries (listed, never trimmed again) and
	// its sequence numbers the entries of both buckets below, so one
	// listing merges them in order.
	bucketAudit = []byte("audit")
	// bucketAuditChanges holds the changes an operator made: apps created,
	// updated or deleted, secrets rotated, dead letters replayed, push
	// credentials. Its sequence is its entry count.
	bucketAuditChanges = []byte("audit_changes")
	// bucketAuditRefusals holds what the server refused (denied auth,
	// refused origins, rate-limit trips, bad API signatures), aggregated by
	// the AuditWriter. Its sequence is its entry count.
	bucketAuditRefusals = []byte("audit_refusals")
)

// MaxAuditEntries bounds the changes in the audit log; the oldest are
// dropped beyond it. Refusals have their own bound (AuditWriterConfig), so
// however many of them arrive, they never evict a change.
const MaxAuditEntries = 100_000

// MaxAuditWindow is the longest aggregation window an AuditWriter takes: a
// listing with a Since looks that much further back for aggregated entries
// that began earlier and were still counting.
const MaxAuditWindow = time.Hour

// AuditEntry is one security-relevant event: a denied auth, a refused
// origin, a rate-limit trip, an app or secret change. It never holds a
// secret or a signature. A refusal repeated from one IP is one entry: Time
// is when it was first seen, LastSeen the last time and Count how many
// times (zero for changes, which are never aggregated).
type AuditEntry struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	App      string    `json:"app_id,omitempty"`
	Action   string    `json:"action"`
	IP       string    `json:"ip,omitempty"`
	Channel  string    `json:"channel,omitempty"`
	UserID   string    `json:"user_id,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Count    int       `json:"count,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// AuditFilter selects audit entries; zero fields match everything. Limit 0
// means 1000. Since matches an entry last seen at or after it.
type AuditFilter struct {
	Since  time.Time
	App    string
	Action string
	Limit  int
}

// AppendAudit appends changes (app and secret changes, replays,
// credentials) in one transaction, numbering them, and drops the oldest
// changes beyond MaxAuditEntries. Refusals go through an AuditWriter.
func (db *DB) AppendAudit(entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := db.update(func(tx *bolt.Tx) error {
		seq, b, err := auditBuckets(tx, bucketAuditChanges)
		if err != nil {
			return err
		}
		for i := range entries {
			if _, err := putAudit(seq, b, entries[i], true); err != nil {
				return err
			}
		}
		return trimAudit(b, MaxAuditEntries)
	})
	if err != nil {
		return fmt.Errorf("storage: append audit: %w", err)
	}
	return nil
}

// PutAuditRefusals writes refusals in one transaction and returns the Seq
// of each: an entry with Seq 0 is appended, one with a Seq is stored over
// that entry (an aggregate counting on), or appended anew if that entry was
// dropped meanwhile. The oldest refusals beyond max (non-positive means
// MaxAuditEntries) are dropped; changes are not touched.
func (db *DB) PutAuditRefusals(entries []AuditEntry, max int) ([]uint64, error) {
	if max <= 0 {
		max = MaxAuditEntries
	}
	seqs := make([]uint64, len(entries))
	err := db.update(func(tx *bolt.Tx) error {
		seq, b, err := auditBuckets(tx, bucketAuditRefusals)
		if err != nil {
			return err
		}
		for i, e := range entries {
			fresh := e.Seq == 0 || b.Get(seqKey(e.Seq)) == nil
			if fresh {
				e.Seq = 0
			}
			if seqs[i], err = putAudit(seq, b, e, fresh); err != nil {
				return err
			}
		}
		return trimAudit(b, max)
	})
	if err != nil {
		return nil, fmt.Errorf("storage: write audit refusals: %w", err)
	}
	return seqs, nil
}

// auditBuckets returns the bucket whose sequence numbers audit entries and
// the bucket name, both created on first use.
func auditBuckets(tx *bolt.Tx, name []byte) (seq, b *bolt.Bucket, err error) {
	if seq, err = tx.CreateBucketIfNotExists(bucketAudit); err != nil {
		return nil, nil, err
	}
	b, err = tx.CreateBucketIfNotExists(name)
	return seq, b, err
}

// putAudit stores e in b, numbered from seq when fresh (b's sequence then
// counts it), and returns its Seq.
func putAudit(seq, b *bolt.Bucket, e AuditEntry, fresh bool) (uint64, error) {
	if fresh {
		n, err := seq.NextSequence()
		if err != nil {
			return 0, err
		}
		e.Seq = n
		if err := b.SetSequence(b.Sequence() + 1); err != nil {
			return 0, err
		}
	}
	v, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	return e.Seq, b.Put(seqKey(e.Seq), v)
}

// trimAudit drops the oldest entries of b beyond max.
func trimAudit(b *bolt.Bucket, max int) error {
	n := b.Sequence()
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n > uint64(max); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
		n--
	}
	return b.SetSequence(n)
}

// Audit returns the newest entries matching f, newest first: changes and
// refusals merged in the order they were first recorded.
func (db *DB) Audit(f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	out := []AuditEntry{}
	err := db.view(func(tx *bolt.Tx) error {
		type head struct {
			c    *bolt.Cursor
			k, v []byte
		}
		var heads []*head
		for _, name := range [][]byte{bucketAudit, bucketAuditChanges, bucketAuditRefusals} {
			if b := tx.Bucket(name); b != nil {
				h := &head{c: b.Cursor()}
				h.k, h.v = h.c.Last()
				heads = append(heads, h)
			}
		}
		// An aggregate is stored at its first sighting and may have been
		// counting until MaxAuditWindow later.
		oldest := f.Since.Add(-MaxAuditWindow)
		for len(out) < f.Limit {
			var h *head
			for _, x := range heads {
				if x.k != nil && (h == nil || string(x.k) > string(h.k)) {
					h = x
				}
			}
			if h == nil {
				return nil
			}
			var e AuditEntry
			if err := json.Unmarshal(h.v, &e); err != nil {
				return fmt.Errorf("entry %x: %w", h.k, err)
			}
			h.k, h.v = h.c.Prev()
			if !f.Since.IsZero() {
				if e.Time.Before(oldest) {
					h.k = nil // this bucket's entries are in time order
					continue
				}
				if last := e.LastSeen; (last.IsZero() && e.Time.Before(f.Since)) || (!last.IsZero() && last.Before(f.Since)) {
					continue
				}
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

// AuditWriter records the server's refusals: it buffers them, aggregates
// the repeats, and writes them in batches, so a flood costs one transaction
// per batch, not one fsync (or one entry) per refusal. Refusals of the same
// app, action, IP and reason within the window are one entry, with a count
// and the first and last time seen, rewritten as the count grows; they are
// kept apart from the changes (AppendAudit) with their own bound, so a
// flood of unauthenticated requests cannot evict an app_created or a
// secret_rotated. Record never blocks: when the buffer is full the entry is
// dropped and counted (Dropped). Run writes until ctx ends, then what is
// left.
type AuditWriter struct {
	db  *DB
	cfg AuditWriterConfig
	// ch holds pointers: a buffer of 4,096 AuditEntry values is 640 KiB
	// that the GC scans and so keeps resident on an idle server; of
	// pointers, 32 KiB.
	ch      chan *AuditEntry
	dropped atomic.Int64
	errs    func(error)
	done    chan struct{}
}

// AuditWriterConfig tunes an AuditWriter; zero fields mean the defaults.
type AuditWriterConfig struct {
	// Buffer is how many entries wait for Run. Zero means 4096.
	Buffer int
	// Window is how long after a refusal the same refusal (app, action,
	// IP, reason) counts into its entry. Zero means DefaultAuditWindow;
	// negative writes one entry per refusal. At most MaxAuditWindow.
	Window time.Duration
	// MaxEntries bounds the refusals kept, oldest dropped first. Zero
	// means MaxAuditEntries.
	MaxEntries int
}

// DefaultAuditWindow is the aggregation window of a zero
// AuditWriterConfig.Window.
const DefaultAuditWindow = time.Minute

// maxAuditAggregates bounds the aggregates an AuditWriter tracks; past it
// (refusals from that many IPs within one window) it starts afresh, so
// memory stays bounded and the cost is a few more entries.
const maxAuditAggregates = 10_000

// NewAuditWriter returns a writer for db. onErr, if not nil, is told about
// failed writes.
func NewAuditWriter(db *DB, cfg AuditWriterConfig, onErr func(error)) *AuditWriter {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 4096
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultAuditWindow
	}
	cfg.Window = min(cfg.Window, MaxAuditWindow)
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = MaxAuditEntries
	}
	if onErr == nil {
		onErr = func(error) {}
	}
	return &AuditWriter{db: db, cfg: cfg, ch: make(chan *AuditEntry, cfg.Buffer), errs: onErr,
		done: make(chan struct{})}
}

// Record queues e, stamping its time if unset.
func (w *AuditWriter) Record(e AuditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	select {
	case w.ch <- &e:
	default:
		w.dropped.Add(1)
	}
}

// Dropped is the number of entries lost to a full buffer.
func (w *AuditWriter) Dropped() int64 { return w.dropped.Load() }

// auditFlushEvery is the longest an entry waits in memory.
const auditFlushEvery = 200 * time.Millisecond

// auditKey is what makes two refusals the same; refusals on different
// channels or of different users stay apart.
type auditKey struct{ app, action, ip, channel, userID, reason string }

// aggregate is one entry counting on; only Run touches it.
type aggregate struct {
	e     AuditEntry
	until time.Time // the end of its window
	dirty bool      // changed since written
}

// Run writes queued entries until ctx ends, then writes what is queued.
func (w *AuditWriter) Run(ctx context.Context) {
	defer close(w.done)
	t := time.NewTimer(auditFlushEvery)
	defer t.Stop()
	aggs := map[auditKey]*aggregate{}
	var dirty []*aggregate // in the order they became dirty
	flush := func() {
		if len(dirty) == 0 {
			return
		}
		entries := make([]AuditEntry, len(dirty))
		for i, a := range dirty {
			entries[i] = a.e
		}
		seqs, err := w.db.PutAuditRefusals(entries, w.cfg.MaxEntries)
		if err != nil {
			w.errs(err)
		}
		for i, a := range dirty {
			if err == nil {
				a.e.Seq = seqs[i]
			}
			a.dirty = false
		}
		dirty = dirty[:0]
		if len(aggs) > maxAuditAggregates {
			now := time.Now()
			for k, a := range aggs {
				if !now.Before(a.until) {
					delete(aggs, k)
				}
			}
			if len(aggs) > maxAuditAggregates {
				clear(aggs)
			}
		}
	}
	add := func(e AuditEntry) {
		k := auditKey{e.App, e.Action, e.IP, e.Channel, e.UserID, e.Reason}
		a := aggs[k]
		if a == nil || w.cfg.Window < 0 || !e.Time.Before(a.until) {
			e.Count, e.LastSeen = 1, e.Time
			a = &aggregate{e: e, until: e.Time.Add(w.cfg.Window)}
			if w.cfg.Window > 0 {
				aggs[k] = a
			}
		} else {
			a.e.Count++
			a.e.LastSeen = e.Time
			if a.e.Channel != e.Channel {
				a.e.Channel = "" // several channels: the count is per IP and reason
			}
			if a.dirty {
				return
			}
		}
		a.dirty = true
		dirty = append(dirty, a)
		if len(dirty) == 256 {
			flush()
		}
	}
	for {
		select {
		case e := <-w.ch:
			add(*e)
		case <-t.C:
			flush()
			t.Reset(auditFlushEvery)
		case <-ctx.Done():
			for {
				select {
				case e := <-w.ch:
					add(*e)
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
