package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketCounters holds rate-limit window counters (ratelimit.Window's
// CounterStore). It is created by the first write, so Open need not know it.
//
//	counters  uvarint(len(name)) name start -> count
//
// start is the window start in Unix nanoseconds, big-endian with the sign
// bit flipped so that byte order is time order; count is a big-endian int64.
// The length prefix keeps one name's keys contiguous and apart from every
// other name's, even names that contain any byte or extend another name.
var bucketCounters = []byte("counters")

// AddCounter adds delta to the counter named key for the window starting at
// start and returns the new value. In the same transaction it drops key's
// counters of earlier windows, so each key keeps one entry (plus any later
// window's). A delta of 0 only reads: it returns the current value, 0 if
// none, without a write transaction. DB thus implements
// ratelimit.CounterStore.
//
// Each non-zero call is one write transaction (one fsync). Callers batch in
// memory and flush periodically rather than calling it per request.
func (db *DB) AddCounter(key string, start time.Time, delta int64) (int64, error) {
	if delta == 0 {
		return db.Counter(key, start)
	}
	k := counterKey(key, start)
	var n int64
	err := db.update(inBucket(bucketCounters, func(b *bolt.Bucket) error {
		// Collect first, delete after: deleting under a cursor while
		// stepping it can skip entries.
		prefix := k[:len(k)-8]
		var old [][]byte
		c := b.Cursor()
		for ck, _ := c.Seek(prefix); ck != nil && bytes.HasPrefix(ck, prefix); ck, _ = c.Next() {
			if bytes.Compare(ck, k) >= 0 {
				break
			}
			old = append(old, bytes.Clone(ck))
		}
		for _, ok := range old {
			if err := b.Delete(ok); err != nil {
				return err
			}
		}

		cur, err := decodeCount(b.Get(k))
		if err != nil {
			return err
		}
		n = cur + delta
		return b.Put(k, encodeCount(n))
	}))
	if err != nil {
		return 0, fmt.Errorf("storage: add counter %s: %w", key, err)
	}
	return n, nil
}

// Counter returns the counter named key for the window starting at start,
// or 0 if there is none (never counted, or dropped because a later window
// was written).
func (db *DB) Counter(key string, start time.Time) (int64, error) {
	k := counterKey(key, start)
	var n int64
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		if b == nil {
			return nil
		}
		var err error
		n, err = decodeCount(b.Get(k))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: read counter %s: %w", key, err)
	}
	return n, nil
}

func counterKey(name string, start time.Time) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(name)+8)
	k = binary.AppendUvarint(k, uint64(len(name)))
	k = append(k, name...)
	return binary.BigEndian.AppendUint64(k, uint64(start.UnixNano())^(1<<63))
}

func encodeCount(n int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(n))
}

// decodeCount reads a stored count; v is only read, never kept, since it
// points into the mmap'd file. A missing value (nil) is 0.
func decodeCount(v []byte) (int64, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	default:
		return 0, fmt.Errorf("corrupt counter value of %d bytes", len(v))
	}
}
