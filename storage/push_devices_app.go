package storage

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// appDeviceBuckets are every bucket of push devices and their indexes
// (push_devices.go) whose keys start with the app id and a NUL; the count
// bucket (bucketPushCounts) is keyed by the bare app id. A bucket
// added there belongs here too, or a deleted app's entries in it outlive
// the app (TestDeleteAppDeletesDevices checks every push_ bucket).
var appDeviceBuckets = [][]byte{
	bucketPushDevices, bucketPushTokens, bucketPushUsers, bucketPushInterests, bucketPushChannels,
	bucketPushUserInterests,
}

// deletePushDevices removes app's push devices and every index entry of
// them, inside tx, so that an app created later with the same id inherits
// no device (with its user binding, channels and secret).
func deletePushDevices(tx *bolt.Tx, app string) error {
	prefix := append([]byte(app), 0)
	for _, name := range appDeviceBuckets {
		b := tx.Bucket(name)
		if b == nil {
			continue // created on first use: nothing stored yet
		}
		if err := deletePrefix(b, prefix); err != nil {
			return err
		}
	}
	// The per-app device count is keyed by the bare app id.
	if b := tx.Bucket(bucketPushCounts); b != nil {
		return b.Delete([]byte(app))
	}
	return nil
}

// deletePrefix deletes the keys of b that start with prefix. It seeks again
// after each delete: a bbolt cursor's Next after Delete can skip a key.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Seek(prefix) {
		var err error
		if v == nil && b.Bucket(k) != nil {
			err = b.DeleteBucket(k)
		} else {
			err = c.Delete()
		}
		if err != nil {
			return err
		}
	}
	return nil
}
