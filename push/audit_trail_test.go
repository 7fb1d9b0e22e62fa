package push

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sockudo/sockudo/storage"
)

// runTrail runs t until the test ends (or stop is called) and returns stop,
// which returns once Run has.
func runTrail(t *testing.T, tr *AuditTrail) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func trailEntry(app string, i int) storage.PushAuditEntry {
	return storage.PushAuditEntry{App: app, Actor: "system", Action: "publish.finish",
		Target: fmt.Sprintf("publish:pub_%d", i)}
}

// verifyAll checks every chain and returns the entries per app.
func verifyAll(t *testing.T, db *storage.DB) map[string]int {
	t.Helper()
	rs, err := db.VerifyPushAudit("")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rs {
		if !r.OK {
			t.Fatalf("chain broken: %+v", r)
		}
		out[r.App] = r.Entries
	}
	return out
}

func TestAuditTrailRecordsEverythingInOneChain(t *testing.T) {
	db := openDB(t)
	tr := NewAuditTrail(db, 0, nil)
	stop := runTrail(t, tr)
	const writers, each = 8, 300 // more than a batch and than the queue
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				tr.Record(trailEntry([]string{"a", "b"}[(w+i)%2], i))
			}
		}()
	}
	wg.Wait()
	tr.Flush()
	if got := verifyAll(t, db); got["a"]+got["b"] != writers*each {
		t.Fatalf("after Flush %v entries, want %d", got, writers*each)
	}

	// What is recorded while Run stops, and after, is stored too.
	tr.Record(trailEntry("a", -1))
	stop()
	tr.Record(trailEntry("a", -2))
	tr.Flush() // returns at once after Run
	if n := verifyAll(t, db); n["a"]+n["b"] != writers*each+2 {
		t.Fatalf("after stop %v entries, want %d", n, writers*each+2)
	}
	last, _, _ := db.PushAudit("a", storage.PushAuditFilter{Target: "publish:pub_-2"})
	if len(last) != 1 {
		t.Fatalf("the entry recorded after Run returned is not stored: %+v", last)
	}
}

func TestAuditTrailBlocksWhenFullNeverDrops(t *testing.T) {
	db := openDB(t)
	tr := NewAuditTrail(db, 0, nil)
	for i := 0; i < trailQueue; i++ {
		tr.Record(trailEntry("a", i))
	}
	blocked := make(chan struct{})
	go func() { defer close(blocked); tr.Record(trailEntry("a", trailQueue)) }()
	select {
	case <-blocked:
		t.Fatal("Record returned with the queue full and nothing running")
	case <-time.After(50 * time.Millisecond):
	}
	runTrail(t, tr)
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("Record still blocked with Run running")
	}
	tr.Flush()
	if n := verifyAll(t, db)["a"]; n != trailQueue+1 {
		t.Fatalf("%d entries, want %d", n, trailQueue+1)
	}
}

func TestAuditTrailShutdownStoresTheQueue(t *testing.T) {
	db := openDB(t)
	tr := NewAuditTrail(db, 0, nil)
	for i := 0; i < 1000; i++ {
		tr.Record(trailEntry("a", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run starts already stopping
	tr.Run(ctx)
	if n := verifyAll(t, db)["a"]; n != 1000 {
		t.Fatalf("%d entries after shutdown, want 1000", n)
	}
}

func TestAuditTrailSkipsInvalidEntries(t *testing.T) {
	db := openDB(t)
	tr := NewAuditTrail(db, 0, nil)
	runTrail(t, tr)
	tr.Record(trailEntry("a", 1))
	tr.Record(storage.PushAuditEntry{App: "a", Actor: "system"}) // no action: a recorder's bug
	tr.Record(trailEntry("a", 2))
	tr.Flush()
	if n := verifyAll(t, db)["a"]; n != 2 {
		t.Fatalf("%d entries, want the 2 valid ones", n)
	}
}

func TestAuditTrailRetention(t *testing.T) {
	db := openDB(t)
	old := time.Now().Add(-48 * time.Hour)
	e := trailEntry("a", 1)
	e.Time = old
	if _, err := db.AppendPushAudit([]storage.PushAuditEntry{e, e, trailEntry("a", 2)}); err != nil {
		t.Fatal(err)
	}
	tr := NewAuditTrail(db, 24*time.Hour, nil)
	runTrail(t, tr)
	tr.Flush() // Run has purged before reading the queue
	if n := verifyAll(t, db)["a"]; n != 1 {
		t.Fatalf("%d entries after retention, want 1", n)
	}
}

// get calls a signed route's handler as server.HandleSigned would after
// checking the signature.
func get(t *testing.T, rt SignedRoute, appID, query string) (int, map[string]any, string) {
	t.Helper()
	w := httptest.NewRecorder()
	rt.Handler(w, httptest.NewRequest("GET", "/apps/"+appID+"/push/audit?"+query, nil), appID, nil)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("not JSON: %q", w.Body.String())
	}
	return w.Code, out, w.Body.String()
}

func TestAuditRoute(t *testing.T) {
	db := openDB(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var entries []storage.PushAuditEntry
	for i := 0; i < 5; i++ {
		e := trailEntry("app1", i)
		e.Time, e.Actor = t0.Add(time.Duration(i)*time.Minute), []string{"system", "key:k"}[i%2]
		entries = append(entries, e)
	}
	if _, err := db.AppendPushAudit(append(entries, trailEntry("app2", 0))); err != nil {
		t.Fatal(err)
	}
	rt := AuditRoute(db)
	if rt.Pattern != "GET /apps/{app_id}/push/audit" {
		t.Fatalf("pattern %q", rt.Pattern)
	}
	ids := func(out map[string]any) string {
		var s []string
		for _, it := range out["items"].([]any) {
			s = append(s, fmt.Sprint(it.(map[string]any)["id"]))
		}
		return strings.Join(s, ",")
	}
	tcs := []struct {
		name, query, want string
	}{
		{"all", "", "1,2,3,4,5"},
		{"since unix seconds", fmt.Sprintf("since=%d", t0.Add(3*time.Minute).Unix()), "4,5"},
		{"until RFC 3339", "until=" + t0.Add(2*time.Minute).Format(time.RFC3339), "1,2"},
		{"actor", "actor=key:k", "2,4"},
		{"target", "target=publish:pub_2", "3"},
		{"action", "action=credential.put", ""},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := get(t, rt, "app1", tc.query)
			if code != 200 || ids(out) != tc.want || out["next_cursor"] != nil || !strings.Contains(raw, `"next_cursor":null`) {
				t.Fatalf("%d %s, want ids %q and next_cursor null", code, raw, tc.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		var got []string
		q := "limit=2"
		for {
			code, out, raw := get(t, rt, "app1", q)
			if code != 200 {
				t.Fatalf("%d %s", code, raw)
			}
			got = append(got, ids(out))
			next, ok := out["next_cursor"].(string)
			if !ok {
				break
			}
			q = "limit=2&cursor=" + next
		}
		if fmt.Sprint(got) != "[1,2 3,4 5]" {
			t.Fatalf("pages %v", got)
		}
	})
	for _, tc := range []struct{ name, query, code string }{
		{"since not a time", "since=yesterday", "bad_request"},
		{"until negative", "until=-5", "bad_request"},
		{"limit zero", "limit=0", "bad_request"},
		{"limit too large", "limit=1001", "bad_request"},
		{"limit not a number", "limit=ten", "bad_request"},
		{"bad cursor", "cursor=%21%21", "invalid_cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := get(t, rt, "app1", tc.query)
			if code != 400 || out["error"] != tc.code || out["description"] == "" || len(out) != 2 {
				t.Fatalf("%d %s, want 400 %s in the push error shape", code, raw, tc.code)
			}
		})
	}
}

func TestAuditVerifyRoute(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := db.AppendPushAudit([]storage.PushAuditEntry{trailEntry("app1", i)}); err != nil {
			t.Fatal(err)
		}
	}
	rt := AuditVerifyRoute(db)
	if rt.Pattern != "GET /apps/{app_id}/push/audit/verify" {
		t.Fatalf("pattern %q", rt.Pattern)
	}
	if code, out, raw := get(t, rt, "app1", ""); code != 200 || out["ok"] != true || out["entries"] != 3.0 {
		t.Fatalf("clean chain: %d %s", code, raw)
	}

	// Change entry 2's outcome in the file, as someone with it would.
	db.Close()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("push_audit"))
		k := append([]byte("app1\x00"), binary.BigEndian.AppendUint64(nil, 2)...)
		return b.Put(k, []byte(strings.Replace(string(b.Get(k)), `"publish.finish"`, `"publish.cancel"`, 1)))
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if db, err = storage.Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, out, raw := get(t, AuditVerifyRoute(db), "app1", "")
	if code != 200 || out["ok"] != false || out["first_bad_id"] != 2.0 || out["problem"] == "" {
		t.Fatalf("tampered chain: %d %s", code, raw)
	}
}

func TestCredentialChangesInTheTrail(t *testing.T) {
	m, _, _, db := newTestCredentials(t, testCredKey)
	tr := NewAuditTrail(db, 0, nil)
	runTrail(t, tr)
	m.SetTrail(tr.Record)
	p8 := testP8(t)

	api := CredentialActor{Source: "api", Key: "key-app1", IP: "192.0.2.9"}
	v, err := m.Put("app1", ProviderAPNs, apnsBody(t, p8), api)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Validate(context.Background(), "app1", ProviderAPNs, 0, false, api); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GenerateVAPID("app1", "mailto:ops@example.com", CredentialActor{Source: "cli"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revoke("app1", ProviderAPNs, 0, CredentialActor{Source: "admin"}); err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	got, _, err := db.PushAudit("app1", storage.PushAuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ actor, action, target, outcome, ip string }
	want := []row{
		{"key:key-app1", TrailCredentialPut, "credential:apns/v1", "ok", "192.0.2.9"},
		{"key:key-app1", TrailCredentialValidate, "credential:apns/v1", "ok", "192.0.2.9"},
		{"operator:cli", TrailCredentialPut, "credential:webpush/v1", "ok", ""},
		{"operator:admin", TrailCredentialRevoke, "credential:apns/v1", "ok", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("trail has %d entries %+v, want %d", len(got), got, len(want))
	}
	for i, e := range got {
		if (row{e.Actor, e.Action, e.Target, e.Outcome, e.RemoteIP}) != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i+1, e, want[i])
		}
		var d map[string]any
		if err := json.Unmarshal(e.Details, &d); err != nil || d["provider"] == nil || d["version"] != 1.0 {
			t.Errorf("entry %d details %s", i+1, e.Details)
		}
		if strings.Contains(string(e.Details), pemBody(p8)) || strings.Contains(string(e.Details), "private") {
			t.Errorf("entry %d details carry key material: %s", i+1, e.Details)
		}
	}
	for _, i := range []int{0, 1, 3} {
		var d struct{ Fingerprint string }
		_ = json.Unmarshal(got[i].Details, &d)
		if d.Fingerprint != v.Fingerprint {
			t.Errorf("entry %d fingerprint %q, want %q", i+1, d.Fingerprint, v.Fingerprint)
		}
	}
	if !strings.Contains(string(got[2].Details), `"generated":true`) {
		t.Errorf("the generated key is not marked: %s", got[2].Details)
	}
	if n := verifyAll(t, db)["app1"]; n != 4 {
		t.Fatalf("%d entries verified", n)
	}

	// Without a trail, changes go only to the audit log, as before.
	m.SetTrail(nil)
	if _, err := m.Put("app1", ProviderAPNs, apnsBody(t, p8), api); err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	if n := verifyAll(t, db)["app1"]; n != 4 {
		t.Fatalf("%d entries after SetTrail(nil)", n)
	}
}
