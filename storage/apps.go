package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Apps returns every app, sorted by id. An empty database returns an empty
// slice and no error.
func (db *DB) Apps() ([]App, error) {
	apps, err := db.decodeApps(nil)
	if err != nil {
		return nil, fmt.Errorf("storage: list apps: %w", err)
	}
	return apps, nil
}

// AppsWithWebhooks returns the apps that have webhooks, sorted by id,
// decoding only those: the webhook dispatcher needs no other, and decoding
// every app costs about 12 ms per 1,000 apps at start.
func (db *DB) AppsWithWebhooks() ([]App, error) {
	// Webhooks is omitted when empty, so an app without the key has none;
	// a value that merely contains the word is decoded and then skipped.
	key := []byte(`"webhooks"`)
	apps, err := db.decodeApps(func(v []byte) bool { return bytes.Contains(v, key) })
	if err != nil {
		return nil, fmt.Errorf("storage: list apps with webhooks: %w", err)
	}
	return slices.DeleteFunc(apps, func(a App) bool { return len(a.Webhooks) == 0 }), nil
}

// decodeApps decodes the apps whose stored value want accepts (nil: all),
// in id order, into a slice sized once: an App is 408 bytes, and growing a
// slice of 1,000 by appending copies and faults in twice the memory.
func (db *DB) decodeApps(want func(v []byte) bool) ([]App, error) {
	var apps []App
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApps)
		n := 0
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if want == nil || want(v) {
				n++
			}
		}
		apps = make([]App, 0, n)
		// bbolt iterates keys in byte order, which is the id order we promise.
		return b.ForEach(func(k, v []byte) error {
			if want != nil && !want(v) {
				return nil
			}
			// Into the slice itself: decoding into a local App moved each
			// one (408 bytes) to the heap first.
			apps = append(apps, App{})
			if err := json.Unmarshal(v, &apps[len(apps)-1]); err != nil {
				return fmt.Errorf("decode app %s: %w", k, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return apps, nil
}

// AppRecord is an app as stored, not yet decoded, for a reader that decodes
// each app when it first needs it: encoding/json takes 7–12 µs per app, so
// decoding every app at start cost 12–17 ms of the start with 1,000 apps.
type AppRecord struct {
	ID  string
	Key string // from the key index, which putApp keeps equal to the app's key
	// Value is the stored JSON, copied out of the database; Decode reads it.
	Value []byte
}

// NewAppRecords encodes apps as PutApp stores them, for app stores that
// hold decoded apps (and tests).
func NewAppRecords(apps ...App) ([]AppRecord, error) {
	recs := make([]AppRecord, 0, len(apps))
	for _, a := range apps {
		v, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("storage: encode app %s: %w", a.ID, err)
		}
		recs = append(recs, AppRecord{ID: a.ID, Key: a.Key, Value: v})
	}
	return recs, nil
}

// Decode returns the app, checked as PutApp checks it and against the id
// and key it was listed under.
func (r AppRecord) Decode() (App, error) {
	a, err := decodeApp([]byte(r.ID), r.Value)
	if err != nil {
		return App{}, err
	}
	if err := checkApp(a); err != nil {
		return App{}, fmt.Errorf("app %s: %w", r.ID, err)
	}
	if a.ID != r.ID || a.Key != r.Key {
		return App{}, fmt.Errorf("app %s: %w: stored as id %q with key %q, indexed under key %q",
			r.ID, ErrInvalid, a.ID, a.Key, r.Key)
	}
	return a, nil
}

// AppRecords returns every app undecoded, sorted by id. An app that no key
// of the key index points at, or more than one does, is decoded here for
// its key; if that fails its Key is empty and Decode reports why.
func (db *DB) AppRecords() ([]AppRecord, error) {
	var recs []AppRecord
	err := db.view(func(tx *bolt.Tx) error {
		apps := tx.Bucket(bucketApps)
		keyOf := make(map[string]string)
		err := tx.Bucket(bucketAppKeys).ForEach(func(k, id []byte) error {
			if _, seen := keyOf[string(id)]; seen {
				keyOf[string(id)] = "" // ambiguous: the record decides
			} else {
				keyOf[string(id)] = string(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		recs = make([]AppRecord, 0, len(keyOf))
		return apps.ForEach(func(k, v []byte) error {
			r := AppRecord{ID: string(k), Key: keyOf[string(k)], Value: bytes.Clone(v)}
			if r.Key == "" {
				if a, err := decodeApp(k, v); err == nil {
					r.Key = a.Key
				}
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list app records: %w", err)
	}
	return recs, nil
}

// AppIDs returns every app's id, sorted, without decoding the apps (the
// push sweep needs only the ids, and decoding 1,000 apps is tens of
// milliseconds of start-up CPU).
func (db *DB) AppIDs() ([]string, error) {
	var ids []string
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list app ids: %w", err)
	}
	return ids, nil
}

// App returns the app with the given id, or an error wrapping ErrNotFound.
func (db *DB) App(id string) (App, error) {
	var a App
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		a, err = getApp(tx, id)
		return err
	})
	if err != nil {
		return App{}, fmt.Errorf("storage: get app %s: %w", id, err)
	}
	return a, nil
}

// AppByKey returns the app whose key is key, or an error wrapping
// ErrNotFound.
func (db *DB) AppByKey(key string) (App, error) {
	var a App
	err := db.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketAppKeys).Get([]byte(key))
		if id == nil {
			return ErrNotFound
		}
		var err error
		a, err = getApp(tx, string(id))
		return err
	})
	if err != nil {
		return App{}, fmt.Errorf("storage: get app by key %s: %w", key, err)
	}
	return a, nil
}

// CreateApp stores a new app, setting its CreatedAt and UpdatedAt to now (the
// values in a are ignored). It fails with ErrInvalid if the id, key or secret
// is empty, ErrExists if the id is taken and ErrKeyInUse if another app has
// the key.
func (db *DB) CreateApp(a App) error {
	if err := checkApp(a); err != nil {
		return fmt.Errorf("storage: create app %s: %w", a.ID, err)
	}
	err := db.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketApps).Get([]byte(a.ID)) != nil {
			return ErrExists
		}
		now := now()
		a.CreatedAt, a.UpdatedAt = now, now
		return putApp(tx, a, "")
	})
	if err != nil {
		return fmt.Errorf("storage: create app %s: %w", a.ID, err)
	}
	return nil
}

// PutApp creates or replaces the app with a.ID. An existing app keeps its
// CreatedAt; UpdatedAt becomes now. If the key changed, the old key is
// released. It fails with ErrInvalid if the id, key or secret is empty and
// ErrKeyInUse if an app with another id has the key.
func (db *DB) PutApp(a App) error {
	if err := checkApp(a); err != nil {
		return fmt.Errorf("storage: put app %s: %w", a.ID, err)
	}
	err := db.update(func(tx *bolt.Tx) error {
		now := now()
		a.CreatedAt, a.UpdatedAt = now, now
		oldKey := ""
		old, err := getApp(tx, a.ID)
		switch {
		case err == nil:
			a.CreatedAt = old.CreatedAt
			oldKey = old.Key
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return putApp(tx, a, oldKey)
	})
	if err != nil {
		return fmt.Errorf("storage: put app %s: %w", a.ID, err)
	}
	return nil
}

// EnsureApp is PutApp for a description applied at every start (the
// default app from the environment): when the stored app with a.ID already
// is a, apart from its timestamps, and owns its key, it commits nothing and
// returns false, so UpdatedAt keeps the time of the last real change and a
// start costs no write transaction (two fdatasyncs). Otherwise it is
// PutApp and returns true.
func (db *DB) EnsureApp(a App) (changed bool, err error) {
	if err := checkApp(a); err != nil {
		return false, fmt.Errorf("storage: put app %s: %w", a.ID, err)
	}
	same := false
	err = db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketApps).Get([]byte(a.ID))
		if v == nil || string(tx.Bucket(bucketAppKeys).Get([]byte(a.Key))) != a.ID {
			return nil
		}
		stored, err := decodeApp([]byte(a.ID), v)
		if err != nil {
			return nil // PutApp replaces it
		}
		// The same encoding as putApp's, so equal bytes are an equal app.
		a.CreatedAt, a.UpdatedAt = stored.CreatedAt, stored.UpdatedAt
		enc, err := json.Marshal(a)
		same = err == nil && bytes.Equal(enc, v)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: put app %s: %w", a.ID, err)
	}
	if same {
		return false, nil
	}
	return true, db.PutApp(a)
}

// DeleteApp removes the app with the given id, its push credentials and
// push devices (with their indexes), and releases its key. It fails with
// ErrNotFound if there is no such app.
func (db *DB) DeleteApp(id string) error {
	err := db.update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketApps).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		// A record that cannot be decoded can still be deleted (it is how
		// an operator removes one the server refuses): its keys are found
		// in the index instead.
		if a, err := decodeApp([]byte(id), v); err == nil {
			err = releaseKey(tx, a.Key, id)
			if err != nil {
				return err
			}
		} else if err := releaseKeysOf(tx, id); err != nil {
			return err
		}
		// An app created later with the same id must not inherit the
		// push provider credentials, devices or publishes.
		if err := deletePushCredentials(tx, id); err != nil {
			return err
		}
		if err := deletePushDevices(tx, id); err != nil {
			return err
		}
		if err := deletePushPublishes(tx, id); err != nil {
			return err
		}
		return tx.Bucket(bucketApps).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("storage: delete app %s: %w", id, err)
	}
	return nil
}

// checkApp enforces the fields every stored app must have.
func checkApp(a App) error {
	switch {
	case a.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalid)
	case a.Key == "":
		return fmt.Errorf("%w: empty key", ErrInvalid)
	case a.Secret == "":
		return fmt.Errorf("%w: empty secret", ErrInvalid)
	}
	return nil
}

// getApp reads one app inside tx. It returns the bare ErrNotFound (callers
// add context).
func getApp(tx *bolt.Tx, id string) (App, error) {
	v := tx.Bucket(bucketApps).Get([]byte(id))
	if v == nil {
		return App{}, ErrNotFound
	}
	return decodeApp([]byte(id), v)
}

// decodeApp copies an app out of bbolt's memory: json.Unmarshal allocates
// fresh strings, so the result outlives the transaction.
func decodeApp(id, v []byte) (App, error) {
	var a App
	if err := json.Unmarshal(v, &a); err != nil {
		return App{}, fmt.Errorf("decode app %s: %w", id, err)
	}
	return a, nil
}

// putApp writes a and points its key at it. oldKey is the key a.ID had before
// (empty for a new app); it is released if the key changed.
func putApp(tx *bolt.Tx, a App, oldKey string) error {
	keys := tx.Bucket(bucketAppKeys)
	if owner := keys.Get([]byte(a.Key)); owner != nil && string(owner) != a.ID {
		return fmt.Errorf("%w: %s", ErrKeyInUse, owner)
	}
	if oldKey != "" && oldKey != a.Key {
		if err := releaseKey(tx, oldKey, a.ID); err != nil {
			return err
		}
	}
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode app: %w", err)
	}
	if err := tx.Bucket(bucketApps).Put([]byte(a.ID), v); err != nil {
		return err
	}
	return keys.Put([]byte(a.Key), []byte(a.ID))
}

// releaseKey deletes key from the index if it still points at id. The check
// keeps a stale release from unmapping a key that another app now owns.
func releaseKey(tx *bolt.Tx, key, id string) error {
	keys := tx.Bucket(bucketAppKeys)
	if owner := keys.Get([]byte(key)); owner != nil && string(owner) == id {
		return keys.Delete([]byte(key))
	}
	return nil
}

// releaseKeysOf frees every key the index points at id.
func releaseKeysOf(tx *bolt.Tx, id string) error {
	keys := tx.Bucket(bucketAppKeys)
	var mine [][]byte
	err := keys.ForEach(func(k, owner []byte) error {
		if string(owner) == id {
			mine = append(mine, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range mine {
		err = errors.Join(err, keys.Delete(k))
	}
	return err
}

// now is the timestamp written into CreatedAt and UpdatedAt: UTC, without
// the monotonic reading, so a stored and a reloaded App compare equal.
func now() time.Time { return time.Now().UTC().Round(0) }
