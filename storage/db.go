package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this build writes into the meta bucket.
// Open refuses a file written by a newer build rather than misreading it.
const SchemaVersion = 1

// batchDelay is how long a Batch write waits to share its commit.
const batchDelay = 2 * time.Millisecond

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

var (
	bucketApps    = []byte("apps")
	bucketAppKeys = []byte("app_keys")
	bucketMeta    = []byte("meta")

	keySchemaVersion = []byte("schema_version")
)

// Options tunes Open. A nil *Options, like the zero value of each field,
// means the default.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process before failing with ErrLocked. Zero means DefaultTimeout; it is
	// never infinite, because bbolt would otherwise wait forever.
	Timeout time.Duration

	// Mode is the permission of a newly created file. Zero means 0600: the
	// file holds app secrets.
	Mode os.FileMode
}

// DB is an open sockudo database. It is safe for concurrent use. Close it
// once done; the file stays locked until then.
type DB struct {
	bolt *bolt.DB
	path string

	closeOnce sync.Once
	closeErr  error
}

// Open opens the database at path, creating the file, its parent directory
// and every bucket as needed. nil opts means the defaults. If another process
// holds the file, Open gives up after opts.Timeout with an error wrapping
// ErrLocked.
func Open(path string, opts *Options) (*DB, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}

	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", path, err)
		}
	}

	bo := *bolt.DefaultOptions
	bo.Timeout = o.Timeout
	bdb, err := bolt.Open(path, o.Mode, &bo)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: database %s is in use by another sockudo process (lock not released within %s)",
			ErrLocked, path, o.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}

	// Batch (used by the webhook queue's concurrent writers) waits this
	// long for company before committing; bbolt's 10 ms default would cap
	// one webhook target at a request per 10 ms.
	bdb.MaxBatchDelay = batchDelay
	db := &DB{bolt: bdb, path: path}
	if err := db.init(); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return db, nil
}

// initBuckets are the buckets Open creates.
var initBuckets = [][]byte{bucketApps, bucketAppKeys, bucketMeta, bucketWebhookQueue, bucketWebhookDead}

// init creates the buckets and checks or records the schema version. A file
// that has them all is only read: a write transaction commits with two
// fdatasyncs even when it changes nothing, and every start opens the file.
func (db *DB) init() error {
	ready := false
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range initBuckets {
			if tx.Bucket(name) == nil {
				return nil
			}
		}
		raw := tx.Bucket(bucketMeta).Get(keySchemaVersion)
		if raw == nil {
			return nil
		}
		ready = true
		return checkSchemaVersion(raw)
	})
	if err != nil || ready {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range initBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		raw := meta.Get(keySchemaVersion)
		if raw == nil {
			return meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion)))
		}
		return checkSchemaVersion(raw)
	})
}

// checkSchemaVersion refuses a file written by a newer build.
func checkSchemaVersion(raw []byte) error {
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return fmt.Errorf("unreadable schema version %q: %w", raw, err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this build supports (%d); upgrade sockudo",
			v, SchemaVersion)
	}
	return nil
}

// Path returns the file path the database was opened with.
func (db *DB) Path() string { return db.path }

// Ping returns nil while the database is open and usable, and an error
// wrapping ErrClosed after Close. The server uses it for readiness.
func (db *DB) Ping() error {
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: ping: %w", err)
	}
	return nil
}

// Close waits for running transactions, then releases the file and its lock.
// It is idempotent: later calls return the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("storage: close %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// view runs fn in a read transaction, reporting a closed database as
// ErrClosed so callers need not know bbolt's errors.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	return closedErr(db.bolt.View(fn))
}

// update runs fn in a write transaction, which commits if fn returns nil.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	return closedErr(db.bolt.Update(fn))
}

// inBucket adapts fn to a transaction over the bucket name, created on first
// use (the buckets [Open] does not create).
func inBucket(name []byte, fn func(b *bolt.Bucket) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		return fn(b)
	}
}

func closedErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
