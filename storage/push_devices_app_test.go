package storage

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// pushEntries counts, in every push_ bucket (whatever push_devices.go
// adds), the keys of app's range, and a key that is the app id itself (a
// per-app record, such as a count).
func pushEntries(t *testing.T, db *DB, app string) map[string]int {
	t.Helper()
	prefix := append([]byte(app), 0)
	n := map[string]int{}
	err := db.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !strings.HasPrefix(string(name), "push_") || string(name) == string(bucketPushCredentials) {
				return nil
			}
			if b.Get([]byte(app)) != nil {
				n[string(name)]++
			}
			c := b.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				n[string(name)]++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeleteAppDeletesDevices: deleting an app deletes its push devices
// and every index entry of them; an app created again with the same id
// starts with none (no device, token, user binding, interest or channel),
// and an app whose id starts with the deleted one keeps its own.
func TestDeleteAppDeletesDevices(t *testing.T) {
	db := openTestDB(t)
	for _, a := range []App{{ID: "a", Key: "k", Secret: "s"}, {ID: "a1", Key: "k1", Secret: "s"}} {
		if err := db.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	var gone Device
	for _, app := range []string{"a", "a1"} {
		for _, n := range []string{"1", "2", "3"} {
			d := webDevice(app, n)
			d.UserID, d.Interests, d.SecretHash = "u"+n, []string{"news", "sport"}, "h"+n
			d.SetChannel(ChannelSub{Channel: "private-" + n, AuthorizedAt: devT0})
			saved, _, err := db.PutDevice(d, DeviceLimits{}, devT0, false)
			if err != nil {
				t.Fatal(err)
			}
			if app == "a" {
				gone = saved
			}
		}
		if _, err := db.SetUserInterests(app, "u1", DeviceLimits{}, devT0, func([]string) []string { return []string{"weather"} }); err != nil {
			t.Fatal(err)
		}
	}
	before := pushEntries(t, db, "a1")
	if len(pushEntries(t, db, "a")) < len(appDeviceBuckets) {
		t.Fatalf("the test does not fill every bucket: %v", pushEntries(t, db, "a"))
	}

	if err := db.DeleteApp("a"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(App{ID: "a", Key: "k", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if left := pushEntries(t, db, "a"); len(left) != 0 {
		t.Fatalf("entries of the deleted app left: %v", left)
	}
	if page, _, err := db.ListDevices("a", DeviceFilter{}, "", 100); err != nil || len(page) != 0 {
		t.Fatalf("the new app inherits devices %v %v", ids(page), err)
	}
	if _, err := db.Device("a", gone.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("device by id: %v", err)
	}
	if _, err := db.DeviceByToken("a", gone.Platform, gone.TokenHash); !errors.Is(err, ErrNotFound) {
		t.Fatalf("device by token: %v", err)
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{UserID: "u3"}, "", 100); len(page) != 0 {
		t.Fatalf("user index: %v", ids(page))
	}
	if in, err := db.UserInterests("a", "u1"); err != nil || len(in) != 0 {
		t.Fatalf("user interests %v %v", in, err)
	}

	after := pushEntries(t, db, "a1")
	if len(after) != len(before) {
		t.Fatalf("app a1 lost entries: before %v, after %v", before, after)
	}
	for name, n := range before {
		if after[name] != n {
			t.Fatalf("app a1 lost entries: before %v, after %v", before, after)
		}
	}
	if page, _, _ := db.ListDevices("a1", DeviceFilter{}, "", 100); len(page) != 3 {
		t.Fatalf("app a1 has %d devices", len(page))
	}
}
