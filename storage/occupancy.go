package storage

import (
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The occupancy bucket remembers which channels are occupied and which
// presence members are present, for apps whose webhooks want
// channel_vacated or member_removed. After a crash those channels and
// members are gone with the process, but nobody said so: the records left
// at the next start say what to report.
var bucketOccupancy = []byte("webhook_occupancy")

// OccupancyChange is one channel or presence-member transition: Open when a
// channel became occupied (UserID empty) or a member joined, closed when it
// was vacated or left.
type OccupancyChange struct {
	App, Channel, UserID string
	Open                 bool
}

func occupancyKey(c OccupancyChange) []byte {
	if c.UserID == "" {
		return []byte("c\x00" + c.App + "\x00" + c.Channel)
	}
	return []byte("m\x00" + c.App + "\x00" + c.Channel + "\x00" + c.UserID)
}

// ApplyOccupancy records changes in order, in one transaction coalesced
// with concurrent writers.
func (db *DB) ApplyOccupancy(changes []OccupancyChange) error {
	if len(changes) == 0 {
		return nil
	}
	err := db.batch(inBucket(bucketOccupancy, func(b *bolt.Bucket) error {
		for _, c := range changes {
			k := occupancyKey(c)
			var err error
			if c.Open {
				err = b.Put(k, nil)
			} else {
				err = b.Delete(k)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("storage: record occupancy: %w", err)
	}
	return nil
}

// TakeOccupancy returns the open records, members first, and deletes them
// all: the caller reports them as vacated and removed.
func (db *DB) TakeOccupancy() ([]OccupancyChange, error) {
	// Usually nothing is left (a clean stop removes every record): look
	// first, so a start does not commit an empty write transaction (two
	// fdatasyncs) before it is ready.
	left := false
	if err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOccupancy); b != nil {
			k, _ := b.Cursor().First()
			left = k != nil
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("storage: take occupancy: %w", err)
	}
	if !left {
		return nil, nil
	}
	var members, channels []OccupancyChange
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOccupancy)
		if b == nil {
			return nil
		}
		err := b.ForEach(func(k, _ []byte) error {
			parts := strings.Split(string(k), "\x00") // copies out of the mmap
			switch {
			case parts[0] == "c" && len(parts) == 3:
				channels = append(channels, OccupancyChange{App: parts[1], Channel: parts[2], Open: true})
			case parts[0] == "m" && len(parts) == 4:
				members = append(members, OccupancyChange{App: parts[1], Channel: parts[2], UserID: parts[3], Open: true})
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.DeleteBucket(bucketOccupancy)
	})
	if err != nil {
		return nil, fmt.Errorf("storage: take occupancy: %w", err)
	}
	return append(members, channels...), nil
}
