package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketPushCredentials holds one sub-bucket per app id, which holds one
// sub-bucket per provider ("apns", "fcm", "webpush") mapping an 8-byte
// big-endian version to the JSON of a PushCredential. Versions come from
// the provider sub-bucket's sequence, so they start at 1, only grow, and
// are never reused, even after a revoke or after AddPushCredential deleted
// the oldest revoked ones (MaxStoredPushCredentials).
var bucketPushCredentials = []byte("push_credentials")

// Push credential statuses as stored. The API shows a non-revoked version
// older than the current one as "retiring".
const (
	PushCredentialActive  = "active"
	PushCredentialRevoked = "revoked"
)

// maxPushCredentialError bounds the last error stored with a version.
const maxPushCredentialError = 512

// Bounds of one app's credential versions for one provider, kept by
// AddPushCredential, so that repeated puts neither keep every key usable
// (and its client live) nor grow the database without end.
const (
	// MaxUsablePushCredentials is the most versions not revoked: storing
	// one more revokes the oldest of them.
	MaxUsablePushCredentials = 10
	// MaxStoredPushCredentials is the most versions kept at all: beyond it
	// the oldest revoked versions are deleted (metadata and sealed blob).
	MaxStoredPushCredentials = 50
)

// PushCredential is one version of an app's credential for one push
// provider. Sealed is the encrypted credential; everything else is
// metadata that never holds a secret.
type PushCredential struct {
	App      string `json:"app_id"`
	Provider string `json:"provider"`
	// Version is assigned by AddPushCredential.
	Version uint64 `json:"version"`
	// Fingerprint identifies the key material without revealing it
	// ("sha256:" and 16 hex digits of a hash of the public part).
	Fingerprint string `json:"fingerprint"`
	// Public is the credential's non-secret description (team and key id,
	// project and client email, VAPID subject and public key …).
	Public map[string]string `json:"public,omitempty"`
	// Status is PushCredentialActive or PushCredentialRevoked.
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// CreatedBy says where the version came from ("api", "cli").
	CreatedBy string    `json:"created_by,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// LastUsedAt is when the version last sent (recorded at most every so
	// often by its user, not per send).
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// LastError is the latest failure of the credential itself (a refused
	// provider token, a failed validation); empty after a success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Sealed is the encrypted credential (package push's envelope). List
	// methods leave it empty.
	Sealed []byte `json:"sealed,omitempty"`
}

// ErrRevoked is returned for a push credential version that was revoked.
var ErrRevoked = errors.New("revoked")

// AddPushCredential stores a new version of app's credential for provider
// and returns it. seal is called inside the transaction with the version
// number (it binds the ciphertext to it) and returns the sealed blob; it
// must be quick and do no I/O. c's App, Provider, Version, Status and
// Sealed are set here; the other fields are kept. In the same transaction
// it keeps the bounds: the versions it revoked (the oldest usable ones
// beyond MaxUsablePushCredentials, revoked at c.CreatedAt) are returned in
// retired; the oldest revoked ones beyond MaxStoredPushCredentials are
// deleted.
func (db *DB) AddPushCredential(app, provider string, c PushCredential, seal func(version uint64) ([]byte, error)) (_ PushCredential, retired []uint64, err error) {
	if app == "" || provider == "" {
		return PushCredential{}, nil, fmt.Errorf("storage: add push credential: %w: app and provider are required", ErrInvalid)
	}
	err = db.update(inBucket(bucketPushCredentials, func(b *bolt.Bucket) error {
		pb, err := providerBucket(b, app, provider, true)
		if err != nil {
			return err
		}
		v, err := pb.NextSequence()
		if err != nil {
			return err
		}
		sealed, err := seal(v)
		if err != nil {
			return err
		}
		c.App, c.Provider, c.Version, c.Status, c.Sealed = app, provider, v, PushCredentialActive, sealed
		if err := putPushCredential(pb, c); err != nil {
			return err
		}
		at := c.CreatedAt
		if at.IsZero() {
			at = time.Now()
		}
		retired, err = boundVersions(pb, at.UTC())
		return err
	}))
	if err != nil {
		return PushCredential{}, nil, fmt.Errorf("storage: add push credential %s/%s: %w", app, provider, err)
	}
	return c, retired, nil
}

// boundVersions revokes, at at, the usable versions of pb beyond the
// newest MaxUsablePushCredentials and returns them, then deletes the
// oldest revoked versions beyond MaxStoredPushCredentials.
func boundVersions(pb *bolt.Bucket, at time.Time) ([]uint64, error) {
	type row struct {
		key     []byte
		revoked bool
	}
	// Only the status is read of each version (the sealed blobs are up to
	// tens of kilobytes), oldest first; the bucket changes after the scan.
	var rows []row
	err := pb.ForEach(func(k, v []byte) error {
		var x struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("version %x: %w", k, err)
		}
		rows = append(rows, row{key: slices.Clone(k), revoked: x.Status == PushCredentialRevoked})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var retired []uint64
	usable := 0
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].revoked {
			continue
		}
		if usable++; usable <= MaxUsablePushCredentials {
			continue
		}
		var c PushCredential
		if err := json.Unmarshal(pb.Get(rows[i].key), &c); err != nil {
			return nil, err
		}
		c.Status, c.RevokedAt = PushCredentialRevoked, at
		if err := putPushCredential(pb, c); err != nil {
			return nil, err
		}
		rows[i].revoked = true
		retired = append(retired, c.Version)
	}
	for i, excess := 0, len(rows)-MaxStoredPushCredentials; i < len(rows) && excess > 0; i++ {
		if rows[i].revoked {
			if err := pb.Delete(rows[i].key); err != nil {
				return nil, err
			}
			excess--
		}
	}
	slices.Reverse(retired)
	return retired, nil
}

// PushCredential returns one version with its sealed blob, or an error
// wrapping ErrNotFound. A revoked version is returned too (its Status
// says so).
func (db *DB) PushCredential(app, provider string, version uint64) (PushCredential, error) {
	var c PushCredential
	err := db.view(func(tx *bolt.Tx) error {
		pb := readProviderBucket(tx, app, provider)
		if pb == nil {
			return ErrNotFound
		}
		raw := pb.Get(seqKey(version))
		if raw == nil {
			return ErrNotFound
		}
		return json.Unmarshal(raw, &c) // copies out of the mmap
	})
	if err != nil {
		return PushCredential{}, fmt.Errorf("storage: push credential %s/%s v%d: %w", app, provider, version, err)
	}
	return c, nil
}

// CurrentPushCredential returns the newest active version with its sealed
// blob, or an error wrapping ErrNotFound when every version is revoked or
// there is none.
func (db *DB) CurrentPushCredential(app, provider string) (PushCredential, error) {
	var c PushCredential
	err := db.view(func(tx *bolt.Tx) error {
		pb := readProviderBucket(tx, app, provider)
		if pb == nil {
			return ErrNotFound
		}
		cur := pb.Cursor()
		for k, v := cur.Last(); k != nil; k, v = cur.Prev() {
			var x PushCredential
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("version %x: %w", k, err)
			}
			if x.Status == PushCredentialActive {
				c = x
				return nil
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return PushCredential{}, fmt.Errorf("storage: current push credential %s/%s: %w", app, provider, err)
	}
	return c, nil
}

// PushCredentials lists app's credential versions for provider ("" for
// every provider), by provider then version, without their sealed blobs.
// An app without any gives an empty list.
func (db *DB) PushCredentials(app, provider string) ([]PushCredential, error) {
	out := []PushCredential{}
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPushCredentials)
		if b == nil {
			return nil
		}
		ab := b.Bucket([]byte(app))
		if ab == nil {
			return nil
		}
		return ab.ForEachBucket(func(name []byte) error {
			if provider != "" && string(name) != provider {
				return nil
			}
			all, err := decodeVersions(ab.Bucket(name))
			for _, c := range all {
				c.Sealed = nil
				out = append(out, c)
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: push credentials of %s: %w", app, err)
	}
	return out, nil
}

// RevokePushCredential revokes one version of app's provider credential,
// or every version when version is 0, and returns the versions it revoked
// (those already revoked are left as they are). An unknown version, or a
// provider without versions, gives an error wrapping ErrNotFound.
func (db *DB) RevokePushCredential(app, provider string, version uint64, at time.Time) ([]uint64, error) {
	revoked := []uint64{}
	err := db.update(func(tx *bolt.Tx) error {
		revoked = revoked[:0] // Update may not rerun fn, but keep it idempotent
		pb := readProviderBucket(tx, app, provider)
		if pb == nil {
			return ErrNotFound
		}
		var all []PushCredential
		if version != 0 {
			raw := pb.Get(seqKey(version))
			if raw == nil {
				return ErrNotFound
			}
			var c PushCredential
			if err := json.Unmarshal(raw, &c); err != nil {
				return err
			}
			all = append(all, c)
		} else {
			var err error
			if all, err = decodeVersions(pb); err != nil {
				return err
			}
			if len(all) == 0 {
				return ErrNotFound
			}
		}
		for _, c := range all {
			if c.Status == PushCredentialRevoked {
				continue
			}
			c.Status, c.RevokedAt = PushCredentialRevoked, at.UTC()
			if err := putPushCredential(pb, c); err != nil {
				return err
			}
			revoked = append(revoked, c.Version)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: revoke push credential %s/%s: %w", app, provider, err)
	}
	return revoked, nil
}

// RecordPushCredentialUse records that a version was used at at: its last
// use, and its last error (errText, cut to a bound) or, when errText is
// empty, the end of its last error. A revoked or deleted version is left
// alone (nil error): its user merely raced the revoke.
func (db *DB) RecordPushCredentialUse(app, provider string, version uint64, at time.Time, errText string) error {
	return db.recordPushCredential(app, provider, version, at, errText, true)
}

// RecordPushCredentialCheck records the outcome of a check of a version
// that sent nothing (a validation): its last error, or the end of it, as
// RecordPushCredentialUse does, leaving its last use alone.
func (db *DB) RecordPushCredentialCheck(app, provider string, version uint64, at time.Time, errText string) error {
	return db.recordPushCredential(app, provider, version, at, errText, false)
}

func (db *DB) recordPushCredential(app, provider string, version uint64, at time.Time, errText string, used bool) error {
	err := db.update(func(tx *bolt.Tx) error {
		pb := readProviderBucket(tx, app, provider)
		if pb == nil {
			return nil
		}
		raw := pb.Get(seqKey(version))
		if raw == nil {
			return nil
		}
		var c PushCredential
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
		if c.Status != PushCredentialActive {
			return nil
		}
		if used {
			c.LastUsedAt = at.UTC()
		}
		if errText != "" {
			if len(errText) > maxPushCredentialError {
				errText = errText[:maxPushCredentialError]
			}
			c.LastError, c.LastErrorAt = errText, at.UTC()
		} else {
			c.LastError, c.LastErrorAt = "", time.Time{}
		}
		return putPushCredential(pb, c)
	})
	if err != nil {
		return fmt.Errorf("storage: record push credential use %s/%s v%d: %w", app, provider, version, err)
	}
	return nil
}

// ResealPushCredentials rewrites the sealed blobs of app's credential
// versions (every app's when app is ""), revoked ones included, in one
// transaction: reseal returns the new blob, or nil to leave a version as
// it is. It must be quick and do no I/O. It returns how many versions
// changed, per app.
func (db *DB) ResealPushCredentials(app string, reseal func(c PushCredential) ([]byte, error)) (map[string]int, error) {
	changed := map[string]int{}
	err := db.update(func(tx *bolt.Tx) error {
		clear(changed)
		b := tx.Bucket(bucketPushCredentials)
		if b == nil {
			return nil
		}
		return b.ForEachBucket(func(appName []byte) error {
			if app != "" && string(appName) != app {
				return nil
			}
			ab := b.Bucket(appName)
			return ab.ForEachBucket(func(provider []byte) error {
				pb := ab.Bucket(provider)
				// Collect first: a bucket must not change under ForEach.
				all, err := decodeVersions(pb)
				if err != nil {
					return err
				}
				for _, c := range all {
					sealed, err := reseal(c)
					if err != nil {
						return fmt.Errorf("%s/%s v%d: %w", c.App, c.Provider, c.Version, err)
					}
					if sealed == nil {
						continue
					}
					c.Sealed = sealed
					if err := putPushCredential(pb, c); err != nil {
						return err
					}
					changed[c.App]++
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reseal push credentials: %w", err)
	}
	return changed, nil
}

// DeletePushCredentials removes every credential version of app.
// DeleteApp does it too, in the same transaction.
func (db *DB) DeletePushCredentials(app string) error {
	if err := db.update(func(tx *bolt.Tx) error { return deletePushCredentials(tx, app) }); err != nil {
		return fmt.Errorf("storage: delete push credentials of %s: %w", app, err)
	}
	return nil
}

// deletePushCredentials removes app's credentials inside tx.
func deletePushCredentials(tx *bolt.Tx, app string) error {
	b := tx.Bucket(bucketPushCredentials)
	if b == nil || b.Bucket([]byte(app)) == nil {
		return nil
	}
	return b.DeleteBucket([]byte(app))
}

func putPushCredential(pb *bolt.Bucket, c PushCredential) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return pb.Put(seqKey(c.Version), v)
}

// providerBucket returns app's bucket for provider inside b, creating
// both when create is set (b must then be writable).
func providerBucket(b *bolt.Bucket, app, provider string, create bool) (*bolt.Bucket, error) {
	if !create {
		ab := b.Bucket([]byte(app))
		if ab == nil {
			return nil, nil
		}
		return ab.Bucket([]byte(provider)), nil
	}
	ab, err := b.CreateBucketIfNotExists([]byte(app))
	if err != nil {
		return nil, err
	}
	return ab.CreateBucketIfNotExists([]byte(provider))
}

// readProviderBucket is app's provider bucket, or nil; writable in a
// write transaction.
func readProviderBucket(tx *bolt.Tx, app, provider string) *bolt.Bucket {
	b := tx.Bucket(bucketPushCredentials)
	if b == nil {
		return nil
	}
	pb, _ := providerBucket(b, app, provider, false)
	return pb
}

// decodeVersions decodes every version in a provider bucket, in version
// order. The values are copies: usable after the transaction.
func decodeVersions(pb *bolt.Bucket) ([]PushCredential, error) {
	var all []PushCredential
	err := pb.ForEach(func(k, v []byte) error {
		var c PushCredential
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("version %x: %w", k, err)
		}
		all = append(all, c)
		return nil
	})
	return all, err
}
