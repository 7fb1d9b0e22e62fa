package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// auditEntries returns n entries of app, a minute apart from t0.
func auditEntries(app string, n int, t0 time.Time) []PushAuditEntry {
	out := make([]PushAuditEntry, n)
	for i := range out {
		out[i] = PushAuditEntry{Time: t0.Add(time.Duration(i) * time.Minute), App: app, Actor: "key:k1",
			Action: "publish.create", Target: fmt.Sprintf("publish:pub_%d", i), RequestID: fmt.Sprintf("req-%d", i),
			RemoteIP: "192.0.2.1", Outcome: "ok", Details: json.RawMessage(fmt.Sprintf(`{"n": %d, "s": "<b>"}`, i))}
	}
	return out
}

func mustAppend(t testing.TB, db *DB, entries []PushAuditEntry) []PushAuditEntry {
	t.Helper()
	out, err := db.AppendPushAudit(entries)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustVerify(t *testing.T, db *DB, app string) PushAuditReport {
	t.Helper()
	rs, err := db.VerifyPushAudit(app)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("verify %q: %d reports %+v, want 1", app, len(rs), rs)
	}
	return rs[0]
}

// editPushAudit rewrites the stored value of app's entry id with edit,
// straight in bbolt, as someone with the file would.
func editPushAudit(t *testing.T, db *DB, app string, id uint64, edit func(m map[string]any)) {
	t.Helper()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPushAudit)
		k := pushAuditKey(app, id)
		var m map[string]any
		if err := json.Unmarshal(b.Get(k), &m); err != nil {
			return err
		}
		edit(m)
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawPushAudit runs fn on the push_audit bucket in a write transaction.
func rawPushAudit(t *testing.T, db *DB, fn func(b *bolt.Bucket) error) {
	t.Helper()
	if err := db.bolt.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketPushAudit)) }); err != nil {
		t.Fatal(err)
	}
}

func TestPushAuditChainsAcrossAppendsAndApps(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	var stored []PushAuditEntry
	// Interleaved apps within one batch and across batches.
	for round := 0; round < 3; round++ {
		batch := append(auditEntries("a", 2, t0), auditEntries("b", 1, t0)...)
		batch = append(batch, auditEntries("a", 1, t0)...)
		stored = append(stored, mustAppend(t, db, batch)...)
	}
	prev := map[string]PushAuditEntry{}
	for _, e := range stored {
		p := prev[e.App]
		if e.ID != p.ID+1 || e.PrevHash != p.Hash || e.Hash == "" || e.Hash != pushAuditHash(&e) {
			t.Fatalf("entry %+v does not follow %+v", e, p)
		}
		if e.Time.Nanosecond()%int(time.Millisecond) != 0 || e.Time.Location() != time.UTC {
			t.Fatalf("time %v not kept to the millisecond in UTC", e.Time)
		}
		prev[e.App] = e
	}
	if prev["a"].ID != 9 || prev["b"].ID != 3 {
		t.Fatalf("last ids a=%d b=%d, want 9 and 3", prev["a"].ID, prev["b"].ID)
	}
	rs, err := db.VerifyPushAudit("")
	if err != nil {
		t.Fatal(err)
	}
	want := []PushAuditReport{{App: "a", Entries: 9, OK: true}, {App: "b", Entries: 3, OK: true}}
	if fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Fatalf("verify all = %+v, want %+v", rs, want)
	}
	// What is listed is what was returned, and still hashes the same:
	// details were stored in the form that was hashed.
	got, _, err := db.PushAudit("a", PushAuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9 || string(got[0].Details) != string(stored[0].Details) || pushAuditHash(&got[0]) != got[0].Hash {
		t.Fatalf("listed %+v", got[0])
	}
	if r := mustVerify(t, db, "nobody"); !r.OK || r.Entries != 0 {
		t.Fatalf("an app without entries: %+v", r)
	}
}

func TestPushAuditAppendRefusesInvalid(t *testing.T) {
	db := openTestDB(t)
	ok := PushAuditEntry{App: "a", Actor: "system", Action: "publish.expire"}
	tcs := []struct {
		name string
		e    func(e PushAuditEntry) PushAuditEntry
	}{
		{"no app", func(e PushAuditEntry) PushAuditEntry { e.App = ""; return e }},
		{"no actor", func(e PushAuditEntry) PushAuditEntry { e.Actor = ""; return e }},
		{"no action", func(e PushAuditEntry) PushAuditEntry { e.Action = ""; return e }},
		{"details an array", func(e PushAuditEntry) PushAuditEntry { e.Details = json.RawMessage(`[1]`); return e }},
		{"details null", func(e PushAuditEntry) PushAuditEntry { e.Details = json.RawMessage(`null`); return e }},
		{"details not JSON", func(e PushAuditEntry) PushAuditEntry { e.Details = json.RawMessage(`{`); return e }},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			// The valid entry beside it is not stored either.
			_, err := db.AppendPushAudit([]PushAuditEntry{ok, tc.e(ok)})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if r := mustVerify(t, db, "a"); r.Entries != 0 {
		t.Fatalf("refused batches stored %d entries", r.Entries)
	}
}

func TestPushAuditTamperingDetected(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	setup := func(t *testing.T) *DB {
		db := openTestDB(t)
		mustAppend(t, db, auditEntries("a", 5, t0))
		mustAppend(t, db, auditEntries("b", 5, t0))
		return db
	}
	edit := func(field string, v any) func(*testing.T, *DB) {
		return func(t *testing.T, db *DB) { editPushAudit(t, db, "a", 3, func(m map[string]any) { m[field] = v }) }
	}
	tcs := []struct {
		name     string
		tamper   func(*testing.T, *DB)
		firstBad uint64
		problem  string
	}{
		{"id", edit("id", 7), 3, "says it is entry 7"},
		{"ts", edit("ts", t0.Add(time.Second).Format(time.RFC3339Nano)), 3, "changed"},
		{"app_id", edit("app_id", "b"), 3, "belongs to app"},
		{"actor", edit("actor", "system"), 3, "changed"},
		{"action", edit("action", "publish.cancel"), 3, "changed"},
		{"target", edit("target", "publish:pub_x"), 3, "changed"},
		{"target removed", edit("target", ""), 3, "changed"},
		{"request_id", edit("request_id", "req-x"), 3, "changed"},
		{"remote_ip", edit("remote_ip", "198.51.100.7"), 3, "changed"},
		{"outcome", edit("outcome", "refused"), 3, "changed"},
		{"details", edit("details", map[string]any{"n": 99}), 3, "changed"},
		{"prev_hash", edit("prev_hash", strings.Repeat("0", 64)), 3, "changed"},
		{"hash", edit("hash", strings.Repeat("0", 64)), 3, "changed"},
		{"entry rehashed after a change", func(t *testing.T, db *DB) {
			// Consistent by itself: the next entry no longer links to it.
			editPushAudit(t, db, "a", 3, func(m map[string]any) {
				m["outcome"] = "refused"
				b, _ := json.Marshal(m)
				var e PushAuditEntry
				_ = json.Unmarshal(b, &e)
				m["hash"] = pushAuditHash(&e)
			})
		}, 4, "does not link"},
		{"middle entry deleted", func(t *testing.T, db *DB) {
			rawPushAudit(t, db, func(b *bolt.Bucket) error { return b.Delete(pushAuditKey("a", 3)) })
		}, 3, "entry 3 is missing"},
		{"first entry deleted", func(t *testing.T, db *DB) {
			rawPushAudit(t, db, func(b *bolt.Bucket) error { return b.Delete(pushAuditKey("a", 1)) })
		}, 1, "entry 1 is missing"},
		{"newest entry deleted", func(t *testing.T, db *DB) {
			rawPushAudit(t, db, func(b *bolt.Bucket) error { return b.Delete(pushAuditKey("a", 5)) })
		}, 5, "newest are gone"},
		{"two entries swapped", func(t *testing.T, db *DB) {
			rawPushAudit(t, db, func(b *bolt.Bucket) error {
				v2, v3 := append([]byte(nil), b.Get(pushAuditKey("a", 2))...), append([]byte(nil), b.Get(pushAuditKey("a", 3))...)
				if err := b.Put(pushAuditKey("a", 2), v3); err != nil {
					return err
				}
				return b.Put(pushAuditKey("a", 3), v2)
			})
		}, 2, "says it is entry 3"},
		{"entry moved from another app", func(t *testing.T, db *DB) {
			rawPushAudit(t, db, func(b *bolt.Bucket) error {
				return b.Put(pushAuditKey("a", 3), append([]byte(nil), b.Get(pushAuditKey("b", 3))...))
			})
		}, 3, "belongs to app"},
		{"entry with the app renamed", func(t *testing.T, db *DB) {
			// Relabelled and rehashed as app a's, it still links to b's chain.
			rawPushAudit(t, db, func(b *bolt.Bucket) error {
				var e PushAuditEntry
				_ = json.Unmarshal(b.Get(pushAuditKey("b", 3)), &e)
				e.App = "a"
				e.Hash = pushAuditHash(&e)
				v, _ := json.Marshal(e)
				return b.Put(pushAuditKey("a", 3), v)
			})
		}, 3, "does not link"},
		{"chain record deleted", func(t *testing.T, db *DB) {
			err := db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPushAuditChains).Delete([]byte("a")) })
			if err != nil {
				t.Fatal(err)
			}
		}, 1, "chain record is missing"},
		{"unreadable", func(t *testing.T, db *DB) {
			rawPushAudit(t, db, func(b *bolt.Bucket) error { return b.Put(pushAuditKey("a", 3), []byte("{")) })
		}, 3, "unreadable"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			db := setup(t)
			tc.tamper(t, db)
			r := mustVerify(t, db, "a")
			if r.OK || r.FirstBad != tc.firstBad || !strings.Contains(r.Problem, tc.problem) {
				t.Fatalf("verify = %+v, want first bad %d and a problem with %q", r, tc.firstBad, tc.problem)
			}
			if r := mustVerify(t, db, "b"); !r.OK {
				t.Fatalf("app b, untouched, = %+v", r)
			}
		})
	}
}

func TestPushAuditPurgeKeepsChain(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mustAppend(t, db, auditEntries("a", 10, t0))
	mustAppend(t, db, auditEntries("b", 3, t0))

	n, err := db.PurgePushAudit("", t0.Add(5*time.Minute))
	if err != nil || n != 8 {
		t.Fatalf("purge = %d, %v; want 5 of a and 3 of b", n, err)
	}
	if r := mustVerify(t, db, "a"); !r.OK || r.Entries != 5 {
		t.Fatalf("after purge a = %+v", r)
	}
	if r := mustVerify(t, db, "b"); !r.OK || r.Entries != 0 {
		t.Fatalf("after purging everything b = %+v", r)
	}
	got, _, err := db.PushAudit("a", PushAuditFilter{})
	if err != nil || len(got) != 5 || got[0].ID != 6 {
		t.Fatalf("list after purge: %d entries from %+v, %v", len(got), got, err)
	}
	// The chains go on from their heads.
	more := mustAppend(t, db, append(auditEntries("a", 1, t0.Add(time.Hour)), auditEntries("b", 1, t0.Add(time.Hour))...))
	if more[0].ID != 11 || more[1].ID != 4 {
		t.Fatalf("appended after purge: ids %d and %d, want 11 and 4", more[0].ID, more[1].ID)
	}
	rs, err := db.VerifyPushAudit("")
	if err != nil || len(rs) != 2 || !rs[0].OK || !rs[1].OK || rs[0].Entries != 6 || rs[1].Entries != 1 {
		t.Fatalf("verify after purge and append = %+v, %v", rs, err)
	}
	// A purge with nothing old enough changes nothing.
	if n, err := db.PurgePushAudit("a", t0); err != nil || n != 0 {
		t.Fatalf("second purge = %d, %v", n, err)
	}

	// Deleting the oldest remaining entry by hand is not a purge.
	rawPushAudit(t, db, func(b *bolt.Bucket) error { return b.Delete(pushAuditKey("a", 6)) })
	if r := mustVerify(t, db, "a"); r.OK || r.FirstBad != 6 {
		t.Fatalf("oldest entry after the anchor deleted: %+v", r)
	}
}

func TestPushAuditPurgeKeepsEvidence(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mustAppend(t, db, auditEntries("a", 6, t0))
	rawPushAudit(t, db, func(b *bolt.Bucket) error { return b.Delete(pushAuditKey("a", 3)) })
	editPushAudit(t, db, "a", 5, func(m map[string]any) { m["outcome"] = "refused" })
	// Everything is old enough, but only what verifies goes: 1 and 2.
	n, err := db.PurgePushAudit("a", t0.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("purge = %d, %v; want 2", n, err)
	}
	if r := mustVerify(t, db, "a"); r.OK || r.FirstBad != 3 || !strings.Contains(r.Problem, "missing") {
		t.Fatalf("after purge %+v, want entry 3 still reported missing", r)
	}
}

func TestPushAuditPurgeStopsAtFirstRecent(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := auditEntries("a", 4, t0)
	entries[1].Time = t0.Add(time.Hour) // recorded late, with an old time after it
	mustAppend(t, db, entries)
	n, err := db.PurgePushAudit("a", t0.Add(30*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("purge = %d, %v; want only entry 1 (a gap would break the chain)", n, err)
	}
	if r := mustVerify(t, db, "a"); !r.OK || r.Entries != 3 {
		t.Fatalf("after purge %+v", r)
	}
}

func TestPushAuditFiltersAndCursor(t *testing.T) {
	db := openTestDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := auditEntries("a", 10, t0)
	for i := range entries {
		if i%2 == 1 {
			entries[i].Action, entries[i].Actor = "publish.cancel", "operator:cli"
		}
	}
	mustAppend(t, db, entries)
	mustAppend(t, db, auditEntries("b", 3, t0))
	ids := func(es []PushAuditEntry) []uint64 {
		out := []uint64{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	tcs := []struct {
		name string
		f    PushAuditFilter
		want []uint64
	}{
		{"all", PushAuditFilter{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"since inclusive", PushAuditFilter{Since: t0.Add(7 * time.Minute)}, []uint64{8, 9, 10}},
		{"until exclusive", PushAuditFilter{Until: t0.Add(2 * time.Minute)}, []uint64{1, 2}},
		{"window", PushAuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []uint64{2, 3}},
		{"action", PushAuditFilter{Action: "publish.cancel"}, []uint64{2, 4, 6, 8, 10}},
		{"actor", PushAuditFilter{Actor: "key:k1"}, []uint64{1, 3, 5, 7, 9}},
		{"target", PushAuditFilter{Target: "publish:pub_4"}, []uint64{5}},
		{"no match", PushAuditFilter{Action: "credential.put"}, []uint64{}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := db.PushAudit("a", tc.f)
			if err != nil || next != "" || fmt.Sprint(ids(got)) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v next %q err %v, want %v", ids(got), next, err, tc.want)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		for _, tc := range []struct {
			f     PushAuditFilter
			pages string
		}{
			{PushAuditFilter{Limit: 3}, "[[1 2 3] [4 5 6] [7 8 9] [10]]"},
			{PushAuditFilter{Limit: 5}, "[[1 2 3 4 5] [6 7 8 9 10]]"}, // no empty last page
			{PushAuditFilter{Limit: 2, Action: "publish.cancel"}, "[[2 4] [6 8] [10]]"},
		} {
			var pages [][]uint64
			f := tc.f
			for {
				got, next, err := db.PushAudit("a", f)
				if err != nil {
					t.Fatal(err)
				}
				pages = append(pages, ids(got))
				if next == "" {
					break
				}
				f.Cursor = next
			}
			if fmt.Sprint(pages) != tc.pages {
				t.Errorf("filter %+v: pages %v, want %s", tc.f, pages, tc.pages)
			}
		}
	})
	t.Run("limits", func(t *testing.T) {
		mustAppend(t, db, auditEntries("c", MaxPushAuditLimit+5, t0))
		for _, tc := range []struct{ limit, want int }{{0, DefaultPushAuditLimit}, {-1, DefaultPushAuditLimit},
			{5000, MaxPushAuditLimit}} {
			got, next, err := db.PushAudit("c", PushAuditFilter{Limit: tc.limit})
			if err != nil || len(got) != tc.want || next == "" {
				t.Errorf("limit %d: %d entries, next %q, %v; want %d", tc.limit, len(got), next, err, tc.want)
			}
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		if _, _, err := db.PushAudit("a", PushAuditFilter{Cursor: "not a cursor!"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
}

func TestPushAuditConcurrentAppends(t *testing.T) {
	db := openTestDB(t)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				app := []string{"a", "b"}[i%2]
				if _, err := db.AppendPushAudit([]PushAuditEntry{{App: app, Actor: "system", Action: "publish.finish",
					Target: fmt.Sprintf("publish:%d-%d", w, i)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rs, err := db.VerifyPushAudit("")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || !rs[0].OK || !rs[1].OK || rs[0].Entries+rs[1].Entries != writers*each {
		t.Fatalf("verify = %+v", rs)
	}
}

func BenchmarkAppendPushAudit(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := auditEntries("a", 100, time.Time{})
	for i := range batch {
		batch[i].Time = time.Time{}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		// 1000 entries in batches of 100: one transaction per batch.
		for j := 0; j < 10; j++ {
			mustAppend(b, db, batch)
		}
	}
}
