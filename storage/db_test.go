package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTestDB opens a fresh database in t.TempDir and closes it at cleanup.
func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func testApp(id, key string) App {
	return App{
		ID:                   id,
		Key:                  key,
		Secret:               "secret-" + id,
		Enabled:              true,
		EnableClientMessages: true,
		AllowedOrigins:       []string{"https://*.example.com"},
		MaxConnections:       5,
		MaxEventBatchSize:    3,
	}
}

// sameApp compares everything but the timestamps the store sets.
func sameApp(t *testing.T, got, want App) {
	t.Helper()
	got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}
	want.CreatedAt, want.UpdatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("app mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func TestCreateApp(t *testing.T) {
	tcs := []struct {
		name    string
		app     App
		wantErr error
	}{
		{name: "new app", app: testApp("2", "key-2")},
		{name: "id taken", app: testApp("1", "key-other"), wantErr: ErrExists},
		{name: "key of another app", app: testApp("3", "key-1"), wantErr: ErrKeyInUse},
		{name: "empty id", app: testApp("", "key-x"), wantErr: ErrInvalid},
		{name: "empty key", app: testApp("4", ""), wantErr: ErrInvalid},
		{name: "empty secret", app: App{ID: "5", Key: "key-5"}, wantErr: ErrInvalid},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t)
			if err := db.CreateApp(testApp("1", "key-1")); err != nil {
				t.Fatalf("seed: %v", err)
			}
			err := db.CreateApp(tc.app)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CreateApp error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				// A refused create leaves the seed untouched.
				got, err := db.AppByKey("key-1")
				if err != nil || got.ID != "1" {
					t.Fatalf("AppByKey(key-1) = %+v, %v; want app 1", got, err)
				}
				return
			}
			got, err := db.App(tc.app.ID)
			if err != nil {
				t.Fatalf("App: %v", err)
			}
			sameApp(t, got, tc.app)
			if got.CreatedAt.IsZero() || !got.CreatedAt.Equal(got.UpdatedAt) {
				t.Fatalf("timestamps not set: created %v updated %v", got.CreatedAt, got.UpdatedAt)
			}
			byKey, err := db.AppByKey(tc.app.Key)
			if err != nil || !reflect.DeepEqual(byKey, got) {
				t.Fatalf("AppByKey = %+v, %v; want %+v", byKey, err, got)
			}
		})
	}
}

func TestPutApp(t *testing.T) {
	tcs := []struct {
		name string
		// put is applied after apps 1 (key-1) and 2 (key-2) exist.
		put     App
		wantErr error
		// keys maps each key to the app id it must resolve to afterwards
		// ("" = not found).
		keys map[string]string
	}{
		{
			name: "insert new id",
			put:  testApp("3", "key-3"),
			keys: map[string]string{"key-1": "1", "key-2": "2", "key-3": "3"},
		},
		{
			name: "update same key",
			put:  App{ID: "1", Key: "key-1", Secret: "rotated"},
			keys: map[string]string{"key-1": "1", "key-2": "2"},
		},
		{
			name: "change key releases the old one",
			put:  App{ID: "1", Key: "key-1b", Secret: "s"},
			keys: map[string]string{"key-1": "", "key-1b": "1", "key-2": "2"},
		},
		{
			name:    "key of another app",
			put:     App{ID: "1", Key: "key-2", Secret: "s"},
			wantErr: ErrKeyInUse,
			keys:    map[string]string{"key-1": "1", "key-2": "2"},
		},
		{
			name:    "empty secret",
			put:     App{ID: "1", Key: "key-1"},
			wantErr: ErrInvalid,
			keys:    map[string]string{"key-1": "1", "key-2": "2"},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t)
			for _, a := range []App{testApp("1", "key-1"), testApp("2", "key-2")} {
				if err := db.CreateApp(a); err != nil {
					t.Fatalf("seed: %v", err)
				}
			}
			before, _ := db.App(tc.put.ID)

			err := db.PutApp(tc.put)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("PutApp error = %v, want %v", err, tc.wantErr)
			}
			for key, wantID := range tc.keys {
				got, err := db.AppByKey(key)
				switch {
				case wantID == "" && !errors.Is(err, ErrNotFound):
					t.Errorf("AppByKey(%s) = %+v, %v; want ErrNotFound", key, got, err)
				case wantID != "" && (err != nil || got.ID != wantID):
					t.Errorf("AppByKey(%s) = %+v, %v; want app %s", key, got, err, wantID)
				}
			}
			if tc.wantErr != nil {
				return
			}
			got, err := db.App(tc.put.ID)
			if err != nil {
				t.Fatalf("App: %v", err)
			}
			sameApp(t, got, tc.put)
			if !before.CreatedAt.IsZero() && !got.CreatedAt.Equal(before.CreatedAt) {
				t.Errorf("CreatedAt changed: %v -> %v", before.CreatedAt, got.CreatedAt)
			}
			if got.UpdatedAt.Before(got.CreatedAt) {
				t.Errorf("UpdatedAt %v before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
			}
		})
	}
}

func TestDeleteApp(t *testing.T) {
	db := openTestDB(t)
	if err := db.CreateApp(testApp("1", "key-1")); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteApp("1"); err != nil {
		t.Fatalf("DeleteApp: %v", err)
	}
	if _, err := db.App("1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("App after delete: %v, want ErrNotFound", err)
	}
	if _, err := db.AppByKey("key-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AppByKey after delete: %v, want ErrNotFound", err)
	}
	if err := db.DeleteApp("1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteApp: %v, want ErrNotFound", err)
	}
	// The key is free again.
	if err := db.CreateApp(testApp("2", "key-1")); err != nil {
		t.Errorf("reuse key after delete: %v", err)
	}
}

func TestAppIDs(t *testing.T) {
	db := openTestDB(t)
	if ids, err := db.AppIDs(); err != nil || len(ids) != 0 {
		t.Fatalf("AppIDs on empty db = %v, %v", ids, err)
	}
	for _, id := range []string{"b", "c", "a"} {
		if err := db.CreateApp(testApp(id, "key-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteApp("c"); err != nil {
		t.Fatal(err)
	}
	if ids, err := db.AppIDs(); err != nil || !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Errorf("AppIDs = %v, %v; want [a b]", ids, err)
	}
}

func TestAppsSortedByID(t *testing.T) {
	db := openTestDB(t)
	apps, err := db.Apps()
	if err != nil || apps == nil || len(apps) != 0 {
		t.Fatalf("Apps on empty db = %#v, %v; want empty non-nil slice", apps, err)
	}
	for _, id := range []string{"b", "c", "a"} {
		if err := db.CreateApp(testApp(id, "key-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	apps, err = db.Apps()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "sockudo.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if db.Path() != path {
		t.Errorf("Path = %s, want %s", db.Path(), path)
	}
	want := testApp("1", "key-1")
	if err := db.CreateApp(want); err != nil {
		t.Fatal(err)
	}
	stored, _ := db.App("1")
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db, err = Open(path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	got, err := db.AppByKey("key-1")
	if err != nil {
		t.Fatalf("AppByKey after reopen: %v", err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("after reopen\n got: %+v\nwant: %+v", got, stored)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	start := time.Now()
	second, err := Open(path, &Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded on a locked file")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open error = %v, want ErrLocked", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("second Open took %s, want about the 50ms timeout", elapsed)
	}

	// Once the holder closes, the file opens again.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(path, &Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	third.Close()
}

func TestPingAndClose(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("Ping while open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.Ping(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}
	if _, err := db.Apps(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apps after Close = %v, want ErrClosed", err)
	}
	if err := db.PutApp(testApp("1", "k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("PutApp after Close = %v, want ErrClosed", err)
	}
}

// TestConcurrentCreateSameKey checks that the key index admits exactly one
// owner when writers race.
func TestConcurrentCreateSameKey(t *testing.T) {
	db := openTestDB(t)
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.CreateApp(testApp(string(rune('a'+i)), "shared-key"))
		}()
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, ErrKeyInUse):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d creates succeeded, want 1", created)
	}
}

func TestSchemaVersionNewerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a file written by a future build.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("999"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(path, nil); err == nil {
		db.Close()
		t.Fatal("Open accepted a newer schema version")
	}
}

// Apps follows every committed write, and callers' edits of their copy do
// not leak into the next answer.
func TestAppsListFollowsEveryWrite(t *testing.T) {
	db := openTestDB(t)
	if err := db.CreateApp(App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	first, err := db.Apps()
	if err != nil || len(first) != 1 {
		t.Fatalf("apps %v %v", first, err)
	}
	first[0].Secret = "edited by a caller"
	again, _ := db.Apps()
	if again[0].Secret != "s1" {
		t.Fatalf("a caller's edit reached the next answer: %q", again[0].Secret)
	}
	a := again[0]
	a.Enabled = false
	if err := db.PutApp(a); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateApp(App{ID: "a2", Key: "k2", Secret: "s2", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	after, _ := db.Apps()
	if len(after) != 2 || after[0].Enabled || after[1].ID != "a2" {
		t.Fatalf("after writes: %+v", after)
	}
	if err := db.DeleteApp("a2"); err != nil {
		t.Fatal(err)
	}
	if last, _ := db.Apps(); len(last) != 1 {
		t.Fatalf("after a delete: %+v", last)
	}
}

// AppsWithWebhooks returns the apps with webhooks, in id order, and only
// them, whatever the other apps' strings contain.
func TestAppsWithWebhooks(t *testing.T) {
	db := openTestDB(t)
	for _, a := range []App{
		{ID: "a3", Key: "k3", Secret: "s3", Enabled: true, Webhooks: []Webhook{{URL: "https://example.com/3"}}},
		{ID: "a1", Key: "k1", Secret: `"webhooks":[{"url":"x"}]`, Enabled: true},
		{ID: "a2", Key: "k2", Secret: "s2", Enabled: true, Webhooks: []Webhook{{URL: "https://example.com/2"}}},
	} {
		if err := db.CreateApp(a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.AppsWithWebhooks()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "a2" || got[1].ID != "a3" || got[1].Webhooks[0].URL != "https://example.com/3" {
		t.Fatalf("apps with webhooks: %+v", got)
	}
	if err := db.DeleteApp("a2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.AppsWithWebhooks(); len(got) != 1 || got[0].ID != "a3" {
		t.Fatalf("after a delete: %+v", got)
	}
}

// AppRecords lists every app undecoded with the key it is indexed under;
// Decode reads it back, and refuses a record that is not the app it is
// listed as. Records damaged outside PutApp are still listed (the server
// refuses them at first use) instead of failing the whole list.
func TestAppRecords(t *testing.T) {
	db := openTestDB(t)
	if recs, err := db.AppRecords(); err != nil || len(recs) != 0 {
		t.Fatalf("AppRecords on empty db = %v, %v", recs, err)
	}
	for _, id := range []string{"b", "a", "c", "d", "e"} {
		if err := db.CreateApp(testApp(id, "key-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	// Damage some records behind PutApp's back: b is not JSON, c says it
	// has another key than the index, d has lost its index entry, e has
	// no secret.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		apps := tx.Bucket(bucketApps)
		c := testApp("c", "key-other")
		e := testApp("e", "key-e")
		e.Secret = ""
		ce, _ := json.Marshal(c)
		ee, _ := json.Marshal(e)
		return errors.Join(apps.Put([]byte("b"), []byte(`{"id":"b",`)), apps.Put([]byte("c"), ce),
			apps.Put([]byte("e"), ee), tx.Bucket(bucketAppKeys).Delete([]byte("key-d")))
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := db.AppRecords()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, key string
		decodes bool
	}{
		{"a", "key-a", true},
		{"b", "key-b", false},
		{"c", "key-c", false},
		{"d", "key-d", true}, // from the record itself
		{"e", "key-e", false},
	}
	if len(recs) != len(tests) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(tests), recs)
	}
	for i, tc := range tests {
		r := recs[i]
		if r.ID != tc.id || r.Key != tc.key {
			t.Errorf("record %d = id %q key %q, want %q %q", i, r.ID, r.Key, tc.id, tc.key)
		}
		a, err := r.Decode()
		if tc.decodes {
			if err != nil {
				t.Errorf("%s: Decode: %v", tc.id, err)
			}
			sameApp(t, a, testApp(tc.id, tc.key))
		} else if err == nil {
			t.Errorf("%s: Decode accepted a damaged record: %+v", tc.id, a)
		}
	}
	// NewAppRecords encodes as PutApp stores.
	want, _ := db.App("a")
	rs, err := NewAppRecords(want)
	if err != nil || len(rs) != 1 || rs[0].ID != "a" || rs[0].Key != "key-a" || !bytes.Equal(rs[0].Value, recs[0].Value) {
		t.Errorf("NewAppRecords = %+v, %v; want the stored bytes %s", rs, err, recs[0].Value)
	}
	// A record that cannot be decoded can be deleted, and frees its key.
	if err := db.DeleteApp("b"); err != nil {
		t.Fatalf("DeleteApp of an undecodable record: %v", err)
	}
	if err := db.CreateApp(testApp("f", "key-b")); err != nil {
		t.Errorf("the deleted record's key is still taken: %v", err)
	}
	if recs, _ := db.AppRecords(); len(recs) != 5 || recs[1].ID != "c" {
		t.Errorf("records after the delete: %+v", recs)
	}
}

// lastTxID is the id of the last committed write transaction.
func lastTxID(t *testing.T, db *DB) int {
	t.Helper()
	var id int
	if err := db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// A start commits nothing that changes nothing (each commit is two
// fdatasyncs): reopening a file with every bucket, taking an empty
// occupancy, releasing leases with nothing due, and ensuring an unchanged
// app.
func TestStartWritesNothingUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := testApp("a1", "k1")
	if changed, err := db.EnsureApp(app); err != nil || !changed {
		t.Fatalf("first EnsureApp: changed %v, err %v", changed, err)
	}
	stored, _ := db.App("a1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	before := lastTxID(t, db)
	if changed, err := db.EnsureApp(app); err != nil || changed {
		t.Fatalf("unchanged EnsureApp: changed %v, err %v", changed, err)
	}
	if left, err := db.TakeOccupancy(); err != nil || len(left) != 0 {
		t.Fatalf("TakeOccupancy: %v %v", left, err)
	}
	if n, err := db.ReleasePushLeases(time.Now()); err != nil || n != 0 {
		t.Fatalf("ReleasePushLeases: %d %v", n, err)
	}
	if after := lastTxID(t, db); after != before {
		t.Fatalf("committed %d write transactions", after-before)
	}
	if again, _ := db.App("a1"); !again.UpdatedAt.Equal(stored.UpdatedAt) {
		t.Fatalf("UpdatedAt moved: %v → %v", stored.UpdatedAt, again.UpdatedAt)
	}
	// A change is written, and a key taken by another app is refused.
	app.MaxConnections = 7
	if changed, err := db.EnsureApp(app); err != nil || !changed {
		t.Fatalf("changed EnsureApp: changed %v, err %v", changed, err)
	}
	if got, _ := db.App("a1"); got.MaxConnections != 7 {
		t.Fatalf("change not stored: %+v", got)
	}
	if _, err := db.EnsureApp(testApp("a2", "k1")); !errors.Is(err, ErrKeyInUse) {
		t.Fatalf("EnsureApp with a taken key: %v", err)
	}
}
