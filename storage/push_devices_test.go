package storage

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var devT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func webDevice(app, n string) Device {
	return Device{App: app, Platform: PlatformWeb, Token: "https://push.example.com/" + n,
		WebP256dh: "p", WebAuth: "a"}
}

func ids(ds []Device) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestPutDeviceRoundTripAndUpsert(t *testing.T) {
	db := openTestDB(t)
	d := webDevice("a1", "x")
	d.UserID, d.Interests, d.SecretHash = "u1", []string{"news"}, "h1"
	saved, created, err := db.PutDevice(d, DeviceLimits{}, devT0, false)
	if err != nil || !created || saved.ID == "" || saved.TokenHash != TokenHash(d.Token) {
		t.Fatalf("PutDevice = %+v, %v, %v", saved, created, err)
	}
	got, err := db.Device("a1", saved.ID)
	if err != nil || got.Token != d.Token || got.UserID != "u1" || !got.CreatedAt.Equal(devT0) {
		t.Fatalf("Device = %+v, %v", got, err)
	}
	// Same platform and token: the same device, full state replaced, the
	// secret kept.
	d2 := webDevice("a1", "x")
	again, created, err := db.PutDevice(d2, DeviceLimits{}, devT0.Add(time.Minute), false)
	if err != nil || created || again.ID != saved.ID || again.UserID != "" || again.SecretHash != "h1" ||
		!again.CreatedAt.Equal(devT0) {
		t.Fatalf("upsert = %+v, %v, %v", again, created, err)
	}
	if page, _, _ := db.ListDevices("a1", DeviceFilter{UserID: "u1"}, "", 0); len(page) != 0 {
		t.Fatalf("user index kept a replaced binding: %v", ids(page))
	}
	if page, _, _ := db.ListDevices("a1", DeviceFilter{Interest: "news"}, "", 0); len(page) != 0 {
		t.Fatalf("interest index kept a replaced interest: %v", ids(page))
	}
	// Another app with the same token is another device.
	other, created, err := db.PutDevice(webDevice("a2", "x"), DeviceLimits{}, devT0, false)
	if err != nil || !created || other.ID == saved.ID {
		t.Fatalf("other app = %+v, %v, %v", other, created, err)
	}
	// An explicit id cannot take a token another device has.
	d3 := webDevice("a1", "x")
	d3.ID = "mine"
	if _, _, err := db.PutDevice(d3, DeviceLimits{}, devT0, false); !errors.Is(err, ErrTokenInUse) {
		t.Fatalf("token of another device: %v", err)
	}
	byTok, err := db.DeviceByToken("a1", PlatformWeb, TokenHash(d.Token))
	if err != nil || byTok.ID != saved.ID {
		t.Fatalf("DeviceByToken = %+v, %v", byTok, err)
	}
	if _, err := db.Device("a1", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing device: %v", err)
	}
	bad := webDevice("a1", "y")
	bad.UserID = "u\x00"
	if _, _, err := db.PutDevice(bad, DeviceLimits{}, devT0, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL in user id: %v", err)
	}
}

func TestUpdateDeviceIndexes(t *testing.T) {
	db := openTestDB(t)
	d, _, err := db.PutDevice(webDevice("a", "1"), DeviceLimits{}, devT0, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.UpdateDevice("a", d.ID, DeviceLimits{}, devT0, func(d *Device) error {
		d.UserID = "u1"
		d.Interests = []string{"i1", "i2"}
		d.SetChannel(ChannelSub{Channel: "private-a", AuthorizedAt: devT0})
		d.Token = "https://push.example.com/new"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []DeviceFilter{{UserID: "u1"}, {Interest: "i2"}, {Channel: "private-a"},
		{Platform: PlatformWeb}, {UserID: "u1", Interest: "i1", Channel: "private-a"}} {
		if page, _, err := db.ListDevices("a", f, "", 0); err != nil || !slices.Equal(ids(page), []string{d.ID}) {
			t.Errorf("ListDevices(%+v) = %v, %v", f, ids(page), err)
		}
	}
	for _, f := range []DeviceFilter{{UserID: "u2"}, {Interest: "i3"}, {Platform: PlatformFCM}, {UserID: "u1", Channel: "x"}} {
		if page, _, _ := db.ListDevices("a", f, "", 0); len(page) != 0 {
			t.Errorf("ListDevices(%+v) = %v, want none", f, ids(page))
		}
	}
	if _, err := db.DeviceByToken("a", PlatformWeb, TokenHash("https://push.example.com/1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("old token still indexed: %v", err)
	}
	// An error from fn changes nothing.
	boom := errors.New("boom")
	if _, err := db.UpdateDevice("a", d.ID, DeviceLimits{}, devT0, func(d *Device) error { d.UserID = "u9"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if got, _ := db.Device("a", d.ID); got.UserID != "u1" {
		t.Fatalf("aborted update was written: %+v", got)
	}
	// Revoke, then delete.
	if revoked, err := db.RevokeChannel("a", "private-a", "u1", devT0); err != nil || !slices.Equal(revoked, []string{d.ID}) {
		t.Fatalf("RevokeChannel = %v, %v", revoked, err)
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{Channel: "private-a"}, "", 0); len(page) != 0 {
		t.Fatalf("channel index after revoke: %v", ids(page))
	}
	if _, err := db.DeleteDevice("a", d.ID); err != nil {
		t.Fatal(err)
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{Interest: "i1"}, "", 0); len(page) != 0 {
		t.Fatalf("interest index after delete: %v", ids(page))
	}
	if _, err := db.DeleteDevice("a", d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestListDevicesPagination(t *testing.T) {
	db := openTestDB(t)
	var want []string
	for i := range 25 {
		d := webDevice("a", fmt.Sprint(i))
		if i%2 == 0 {
			d.Interests = []string{"even"}
		}
		saved, _, err := db.PutDevice(d, DeviceLimits{}, devT0, false)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			want = append(want, saved.ID)
		}
	}
	if _, _, err := db.PutDevice(webDevice("b", "other-app"), DeviceLimits{}, devT0, false); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	for _, f := range []DeviceFilter{{Interest: "even"}, {}} {
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := db.ListDevices("a", f, cursor, 5)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(page)...)
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		if f.Interest != "" && !slices.Equal(got, want) {
			t.Fatalf("interest pages = %v, want %v", got, want)
		}
		if f.Interest == "" && (len(got) != 25 || !slices.IsSorted(got)) {
			t.Fatalf("all pages = %d ids, sorted %v", len(got), slices.IsSorted(got))
		}
		if pages < 3 {
			t.Fatalf("%+v: %d pages", f, pages)
		}
	}
	if _, _, err := db.ListDevices("a", DeviceFilter{}, "!!", 5); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestDeviceLimits(t *testing.T) {
	db := openTestDB(t)
	lim := DeviceLimits{MaxPerUser: 3, MaxInterests: 4}
	for i := range 3 {
		d := webDevice("a", fmt.Sprint(i))
		d.UserID = "u"
		if _, _, err := db.PutDevice(d, lim, devT0, false); err != nil {
			t.Fatal(err)
		}
	}
	d := webDevice("a", "4th")
	d.UserID = "u"
	if _, _, err := db.PutDevice(d, lim, devT0, false); !errors.Is(err, ErrDeviceLimit) {
		t.Fatalf("4th device of a user: %v", err)
	}
	d.UserID = ""
	saved, _, err := db.PutDevice(d, lim, devT0, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateDevice("a", saved.ID, lim, devT0, func(d *Device) error { d.UserID = "u"; return nil }); !errors.Is(err, ErrDeviceLimit) {
		t.Fatalf("binding a 4th device: %v", err)
	}
	// Re-saving a device already counted is not a new device.
	page, _, _ := db.ListDevices("a", DeviceFilter{UserID: "u"}, "", 0)
	if _, err := db.UpdateDevice("a", page[0].ID, lim, devT0, func(d *Device) error { d.Interests = []string{"1", "2", "3", "4"}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateDevice("a", page[0].ID, lim, devT0, func(d *Device) error { d.Interests = append(d.Interests, "5"); return nil }); !errors.Is(err, ErrInterestLimit) {
		t.Fatalf("5th interest: %v", err)
	}
}

func TestUserInterestsAndDeleteUser(t *testing.T) {
	db := openTestDB(t)
	var devs []string
	for i := range 2 {
		d := webDevice("a", fmt.Sprint(i))
		d.UserID, d.Interests = "u", []string{"own"}
		saved, _, err := db.PutDevice(d, DeviceLimits{}, devT0, false)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, saved.ID)
	}
	slices.Sort(devs)
	set, err := db.SetUserInterests("a", "u", DeviceLimits{}, devT0, func(cur []string) []string { return append(cur, "b", "a", "b") })
	if err != nil || !slices.Equal(set, []string{"a", "b"}) {
		t.Fatalf("SetUserInterests = %v, %v", set, err)
	}
	if got, _ := db.UserInterests("a", "u"); !slices.Equal(got, set) {
		t.Fatalf("UserInterests = %v", got)
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{Interest: "b"}, "", 0); !slices.Equal(ids(page), devs) {
		t.Fatalf("devices of user interest = %v, want %v", ids(page), devs)
	}
	if _, err := db.SetUserInterests("a", "u", DeviceLimits{}, devT0, func([]string) []string { return []string{"a"} }); err != nil {
		t.Fatal(err)
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{Interest: "b"}, "", 0); len(page) != 0 {
		t.Fatalf("removed user interest still indexed: %v", ids(page))
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{Interest: "own"}, "", 0); len(page) != 2 {
		t.Fatalf("own interest lost: %v", ids(page))
	}
	gone, err := db.DeleteUserDevices("a", "u")
	if err != nil || len(gone) != 2 {
		t.Fatalf("DeleteUserDevices = %d, %v", len(gone), err)
	}
	if page, _, _ := db.ListDevices("a", DeviceFilter{}, "", 0); len(page) != 0 {
		t.Fatalf("devices left: %v", ids(page))
	}
}

func TestRemoveInvalidDevice(t *testing.T) {
	db := openTestDB(t)
	d, _, err := db.PutDevice(Device{App: "a", Platform: PlatformFCM, Token: "tok"}, DeviceLimits{}, devT0, false)
	if err != nil {
		t.Fatal(err)
	}
	// APNs says the token died before the device registered it: kept.
	if _, ok, err := db.RemoveInvalidDevice("a", PlatformFCM, TokenHash("tok"), devT0.Add(-time.Second)); err != nil || ok {
		t.Fatalf("removal of a token registered after it died = %v, %v", ok, err)
	}
	gone, ok, err := db.RemoveInvalidDevice("a", PlatformFCM, TokenHash("tok"), devT0.Add(time.Second))
	if err != nil || !ok || gone.ID != d.ID {
		t.Fatalf("RemoveInvalidDevice = %+v, %v, %v", gone, ok, err)
	}
	if _, ok, err := db.RemoveInvalidDevice("a", PlatformFCM, TokenHash("tok"), time.Time{}); err != nil || ok {
		t.Fatalf("second removal = %v, %v", ok, err)
	}
}

// BenchmarkDeviceFileSize registers 10,000 web devices per iteration, each
// with a user, two interests and a channel, and reports the bbolt file
// size and the bytes its pages hold:
//
//	go test -run '^$' -bench DeviceFileSize -benchtime 1x ./storage/
func BenchmarkDeviceFileSize(b *testing.B) {
	const n, batch = 10_000, 500
	for range b.N {
		db, err := Open(b.TempDir()+"/sockudo.db", nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i += batch {
			err := db.update(func(tx *bolt.Tx) error {
				bs, err := pushBuckets(tx)
				if err != nil {
					return err
				}
				for j := i; j < i+batch; j++ {
					d := Device{App: "app-1", Platform: PlatformWeb,
						Token:     fmt.Sprintf("https://fcm.googleapis.com/fcm/send/%0152d", j),
						WebP256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
						WebAuth:   "tBHItJI5svbpez7KI4CCXg", UserID: fmt.Sprint("user-", j/2),
						Interests: []string{"news", fmt.Sprint("topic-", j%50)}, SecretHash: TokenHash(fmt.Sprint(j)),
						Channels:  []ChannelSub{{Channel: fmt.Sprint("private-room-", j%100), AuthorizedAt: devT0}},
						CreatedAt: devT0, UpdatedAt: devT0}
					if err := checkDevice(&d); err != nil {
						return err
					}
					d.ID, _ = NewDeviceID()
					if err := bs.write(nil, &d, DeviceLimits{}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		var inUse int
		err = db.view(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, bk *bolt.Bucket) error {
				st := bk.Stats()
				inUse += st.BranchInuse + st.LeafInuse + st.InlineBucketInuse
				return nil
			})
		})
		if err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(db.Path())
		if err != nil {
			b.Fatal(err)
		}
		_ = db.Close()
		b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB/10k-devices")
		b.ReportMetric(float64(inUse)/(1<<20), "inuse-MiB/10k-devices")
	}
}

func TestDeviceSubscribed(t *testing.T) {
	var d Device
	d.SetChannel(ChannelSub{Channel: "b", AuthorizedAt: devT0, ExpiresAt: devT0.Add(time.Hour)})
	d.SetChannel(ChannelSub{Channel: "a", AuthorizedAt: devT0})
	if d.Channels[0].Channel != "a" || !d.Subscribed("a", devT0.Add(1000*time.Hour)) || !d.Subscribed("b", devT0) ||
		d.Subscribed("b", devT0.Add(time.Hour)) || d.Subscribed("c", devT0) {
		t.Fatalf("Subscribed wrong for %+v", d.Channels)
	}
}

// TestDeviceChannelLimit: channel subscriptions per device are bounded in
// the transaction, like interests; a device over a lowered limit may
// shrink its set but not grow it.
func TestDeviceChannelLimit(t *testing.T) {
	db := openTestDB(t)
	lim := DeviceLimits{MaxChannels: 2}
	d := webDevice("a1", "x")
	for _, ch := range []string{"c1", "c2", "c3"} {
		d.SetChannel(ChannelSub{Channel: ch, AuthorizedAt: devT0})
	}
	if _, _, err := db.PutDevice(d, lim, devT0, false); !errors.Is(err, ErrChannelLimit) {
		t.Fatalf("PutDevice with 3 channels = %v, want ErrChannelLimit", err)
	}
	saved, _, err := db.PutDevice(d, DeviceLimits{}, devT0, false)
	if err != nil {
		t.Fatal(err)
	}
	sub := func(ch string) func(*Device) error {
		return func(d *Device) error { d.SetChannel(ChannelSub{Channel: ch, AuthorizedAt: devT0}); return nil }
	}
	if _, err := db.UpdateDevice("a1", saved.ID, lim, devT0, sub("c4")); !errors.Is(err, ErrChannelLimit) {
		t.Fatalf("UpdateDevice adding a 4th channel = %v, want ErrChannelLimit", err)
	}
	// Replacing one it has, or dropping one, is fine over the limit.
	if _, err := db.UpdateDevice("a1", saved.ID, lim, devT0, sub("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateDevice("a1", saved.ID, lim, devT0, func(d *Device) error { d.RemoveChannel("c1"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateDevice("a1", saved.ID, lim, devT0, sub("c4")); !errors.Is(err, ErrChannelLimit) {
		t.Fatalf("UpdateDevice at the limit = %v, want ErrChannelLimit", err)
	}
}

// TestPutDeviceChecked: the replace condition sees the device a token
// upsert would replace, and its error leaves that device as it was.
func TestPutDeviceChecked(t *testing.T) {
	db := openTestDB(t)
	d := webDevice("a1", "x")
	d.UserID, d.SecretHash = "u1", "h1"
	saved, _, err := db.PutDevice(d, DeviceLimits{}, devT0, false)
	if err != nil {
		t.Fatal(err)
	}
	errNo := errors.New("no")
	var seen string
	again := webDevice("a1", "x")
	again.SecretHash = "h2"
	if _, _, err := db.PutDeviceChecked(again, DeviceLimits{}, devT0, true, func(old *Device) error { seen = old.SecretHash; return errNo }); !errors.Is(err, errNo) || seen != "h1" {
		t.Fatalf("refused replace = %v (saw %q)", err, seen)
	}
	if got, _ := db.Device("a1", saved.ID); got.UserID != "u1" || got.SecretHash != "h1" {
		t.Fatalf("a refused replace changed the device: %+v", got)
	}
	if got, created, err := db.PutDeviceChecked(again, DeviceLimits{}, devT0, true, func(*Device) error { return nil }); err != nil || created || got.ID != saved.ID || got.SecretHash != "h2" {
		t.Fatalf("allowed replace = %+v, %v, %v", got, created, err)
	}
	// A new token never calls it.
	if _, created, err := db.PutDeviceChecked(webDevice("a1", "y"), DeviceLimits{}, devT0, true, func(*Device) error { return errNo }); err != nil || !created {
		t.Fatalf("new device = %v, %v", created, err)
	}
}

// TestBindingReadsUserInterests: a device bound to a user gets the user's
// interests in the binding transaction, not from a read before it that a
// concurrent SetUserInterests could make stale.
func TestBindingReadsUserInterests(t *testing.T) {
	db := openTestDB(t)
	if _, err := db.SetUserInterests("a1", "u1", DeviceLimits{}, devT0, func([]string) []string { return []string{"promo"} }); err != nil {
		t.Fatal(err)
	}
	saved, _, err := db.PutDevice(webDevice("a1", "x"), DeviceLimits{}, devT0, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.UpdateDevice("a1", saved.ID, DeviceLimits{}, devT0, func(d *Device) error {
		d.UserID, d.UserInterests = "u1", []string{"stale"}
		return nil
	})
	if err != nil || !slices.Equal(got.UserInterests, []string{"promo"}) {
		t.Fatalf("bound = %v, %v", got.UserInterests, err)
	}
	if page, _, _ := db.ListDevices("a1", DeviceFilter{Interest: "promo"}, "", 0); len(page) != 1 {
		t.Fatalf("interest index: %v", ids(page))
	}
	d := webDevice("a1", "y")
	d.UserID = "u1"
	if put, _, err := db.PutDevice(d, DeviceLimits{}, devT0, false); err != nil || !slices.Equal(put.UserInterests, []string{"promo"}) {
		t.Fatalf("PutDevice bound = %v, %v", put.UserInterests, err)
	}
	got, err = db.UpdateDevice("a1", saved.ID, DeviceLimits{}, devT0, func(d *Device) error { d.UserID = ""; return nil })
	if err != nil || got.UserInterests != nil {
		t.Fatalf("unbound = %v, %v", got.UserInterests, err)
	}
	// The interest limit counts them.
	if _, err := db.UpdateDevice("a1", saved.ID, DeviceLimits{MaxInterests: 1}, devT0, func(d *Device) error {
		d.UserID, d.Interests = "u1", []string{"own"}
		return nil
	}); !errors.Is(err, ErrInterestLimit) {
		t.Fatalf("over the interest limit = %v", err)
	}
}

// TestAppDeviceLimit: the app's device count is kept by every write, so
// the per-app limit needs no scan; a missing count is taken by one.
func TestAppDeviceLimit(t *testing.T) {
	db := openTestDB(t)
	lim := DeviceLimits{MaxPerApp: 2}
	put := func(app, n string) (Device, error) {
		d, _, err := db.PutDevice(webDevice(app, n), lim, devT0, false)
		return d, err
	}
	d1, err := put("a1", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put("a1", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := put("a1", "3"); !errors.Is(err, ErrAppDeviceLimit) {
		t.Fatalf("third device = %v, want ErrAppDeviceLimit", err)
	}
	// An upsert is not a new device, and another app counts apart.
	if _, err := put("a1", "1"); err != nil {
		t.Fatalf("upsert at the limit = %v", err)
	}
	if _, err := put("a2", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteDevice("a1", d1.ID); err != nil {
		t.Fatal(err)
	}
	d3, err := put("a1", "3")
	if err != nil {
		t.Fatalf("after a delete = %v", err)
	}
	// A database from before the count: counted once, then kept.
	if err := db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPushCounts).Delete([]byte("a1")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := put("a1", "4"); !errors.Is(err, ErrAppDeviceLimit) {
		t.Fatalf("recounted = %v, want ErrAppDeviceLimit", err)
	}
	if _, ok, err := db.RemoveInvalidDevice("a1", PlatformWeb, d3.TokenHash, time.Time{}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := put("a1", "4"); err != nil {
		t.Fatalf("after an invalidation = %v", err)
	}
}
