package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What the push dispatcher needs beside claiming and completing: taking
// back the leases of a process that died, knowing when to wake up, and
// reporting each finished publish once.

// ReleasePushLeases makes every inflight delivery pending again, due at
// now, and returns how many it released. Only one process opens the
// database (bbolt's file lock), so at start every lease is a dead
// process's: waiting for them to expire would only delay the resume.
func (db *DB) ReleasePushLeases(now time.Time) (int, error) {
	now = ms(now)
	// With nothing due there is no lease: look first, so a start does not
	// commit an empty write transaction (two fdatasyncs).
	due := false
	if err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPushDue); b != nil {
			k, _ := b.Cursor().First()
			due = k != nil
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("storage: release push leases: %w", err)
	}
	if !due {
		return 0, nil
	}
	var n int
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		var keys [][]byte
		c := bs.due.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, dk := range keys {
			k := dk[8:]
			d, err := bs.getDelivery(k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if d.State != DeliveryInflight {
				continue
			}
			if err := bs.unfile(k, d); err != nil {
				return err
			}
			d.State, d.LeaseUntil, d.NextAttempt = DeliveryPending, time.Time{}, now
			if err := bs.putDelivery(k, d); err != nil {
				return err
			}
			if err := bs.file(k, d); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: release push leases: %w", err)
	}
	return n, nil
}

// NextPushDue returns when the earliest delivery is due (a pending one's
// next attempt or an inflight one's lease expiry); ok is false when no
// delivery is open.
func (db *DB) NextPushDue() (at time.Time, ok bool, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPushDue)
		if b == nil {
			return nil
		}
		if k, _ := b.Cursor().First(); len(k) >= 8 {
			at, ok = time.UnixMilli(int64(binary.BigEndian.Uint64(k[:8]))).UTC(), true
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("storage: next push due: %w", err)
	}
	return at, ok, nil
}

// FinishedPushPublishes returns up to limit (non-positive means 100)
// publishes that finished and were not reported yet, and forgets them, so
// that each is reported once (push_publish_finished webhooks, audit). A
// crash between this call and the report loses that report: at most once,
// like any event taken from a queue without an acknowledgement.
func (db *DB) FinishedPushPublishes(limit int) ([]PushPublish, error) {
	if limit <= 0 {
		limit = 100
	}
	// The dispatcher asks every 50 ms and there is usually nothing: look
	// first in a read transaction, because a write transaction commits (a
	// meta page and an fdatasync) even when it changes nothing.
	if has, err := db.hasKeys(bucketPushPubDone, nil); err != nil || !has {
		if err != nil {
			return nil, fmt.Errorf("storage: finished push publishes: %w", err)
		}
		return nil, nil
	}
	var out []PushPublish
	err := db.update(func(tx *bolt.Tx) error {
		out = nil
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		var keys [][]byte
		c := bs.done.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := bs.done.Delete(k); err != nil {
				return err
			}
			owner := bs.nums.Get(k)
			i := bytes.IndexByte(owner, 0)
			if i < 0 {
				continue // purged since
			}
			p, err := bs.getPub(string(owner[:i]), string(owner[i+1:]))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, *p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: finished push publishes: %w", err)
	}
	return out, nil
}

// Devices returns the app's devices with the given ids, in one read
// transaction; ids that name no device are left out.
func (db *DB) Devices(app string, ids []string) (map[string]Device, error) {
	out := make(map[string]Device, len(ids))
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPushDevices)
		if b == nil {
			return nil
		}
		for _, id := range ids {
			d, err := decodeDevice(b.Get(join(app, id)))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[id] = *d
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: devices of %s: %w", app, err)
	}
	return out, nil
}

// PushQueueDepth is the number of open deliveries (pending or inflight),
// for the queue depth gauge. It walks the due index, so call it at scrape
// time, not per request.
func (db *DB) PushQueueDepth() (int, error) {
	var n int
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPushDue); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: push queue depth: %w", err)
	}
	return n, nil
}

// deletePushPublishes removes app's publishes with their deliveries, queue
// entries, dead letters and idempotency keys, inside tx (DeleteApp), so
// that nothing of a deleted app is sent or kept.
func deletePushPublishes(tx *bolt.Tx, app string) error {
	if tx.Bucket(bucketPushPublishes) == nil {
		return nil // created on first use: nothing stored yet
	}
	bs, err := openPubBuckets(tx)
	if err != nil {
		return err
	}
	prefix := join(app, "")
	for _, k := range prefixKeys(bs.pubs, prefix) {
		p, err := bs.getPub(app, string(k[len(prefix):]))
		if err != nil {
			return err
		}
		if err := bs.deletePub(p); err != nil {
			return err
		}
	}
	for _, b := range []*bolt.Bucket{bs.idem, bs.dead, bs.states} {
		if err := deletePrefix(b, prefix); err != nil {
			return err
		}
	}
	return bs.dead.Delete([]byte(app))
}

// hasKeys reports, in a read transaction, whether bucket name has a key
// whose first len(max) bytes are not after max (any key when max is nil).
// A missing bucket has none.
func (db *DB) hasKeys(name, max []byte) (bool, error) {
	var has bool
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(name); b != nil {
			k, _ := b.Cursor().First()
			has = k != nil && (max == nil || bytes.Compare(k[:min(len(k), len(max))], max) <= 0)
		}
		return nil
	})
	return has, err
}
