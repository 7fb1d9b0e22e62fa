package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openPubDB(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func reopen(t *testing.T, db *DB, path string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func fanOut(n int) []PushDelivery {
	out := make([]PushDelivery, n)
	for i := range out {
		p := PlatformFCM
		if i%2 == 1 {
			p = PlatformAPNs
		}
		out[i] = PushDelivery{DeviceID: fmt.Sprintf("d%05d", i), Platform: p}
	}
	return out
}

func mustPub(t *testing.T, db *DB, app, id string) PushPublish {
	t.Helper()
	p, err := db.PushPublish(app, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreatePushPublishIdempotency(t *testing.T) {
	db, _ := openPubDB(t)
	in := PushPublish{App: "a", CreatedAt: t0, IdempotencyKey: "k1", Body: []byte(`{"interests":["x"]}`)}
	p, err := db.CreatePushPublish(in, fanOut(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ID) != len("pub_")+28 || p.State != PublishQueued || p.Counters.Planned != 3 || p.Open != 3 ||
		p.Counters.PerProvider[PlatformFCM].Planned != 2 || p.Counters.PerProvider[PlatformAPNs].Planned != 1 {
		t.Fatalf("created %+v", p)
	}
	got := mustPub(t, db, "a", p.ID)
	if string(got.Body) != `{"interests":["x"]}` || !got.CreatedAt.Equal(t0) {
		t.Fatalf("stored %+v", got)
	}

	// Same key within 24 h: the existing publish, nothing stored.
	dup, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0.Add(23 * time.Hour), IdempotencyKey: "k1"}, fanOut(5))
	if !errors.Is(err, ErrDuplicate) || dup.ID != p.ID || dup.Counters.Planned != 3 {
		t.Fatalf("duplicate: %+v, %v", dup, err)
	}
	all, _, err := db.PushPublishes("a", "", "", 0)
	if err != nil || len(all) != 1 {
		t.Fatalf("after duplicate: %d publishes, %v", len(all), err)
	}
	ds, err := db.PushDeliveries("a", p.ID)
	if err != nil || len(ds) != 3 {
		t.Fatalf("deliveries %d, %v", len(ds), err)
	}
	// Another app may use the same key; after 24 h the key is free again.
	if _, err := db.CreatePushPublish(PushPublish{App: "b", CreatedAt: t0, IdempotencyKey: "k1"}, fanOut(1)); err != nil {
		t.Fatal(err)
	}
	later, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0.Add(25 * time.Hour), IdempotencyKey: "k1"}, fanOut(1))
	if err != nil || later.ID == p.ID {
		t.Fatalf("after the window: %+v, %v", later, err)
	}
	if _, err := db.CreatePushPublish(PushPublish{App: ""}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no app: %v", err)
	}
	if _, err := db.CreatePushPublish(PushPublish{App: "a"}, []PushDelivery{{Platform: "fcm"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no device: %v", err)
	}
}

func TestScheduledPushPublishSurvivesRestart(t *testing.T) {
	db, path := openPubDB(t)
	sendAt := t0.Add(time.Hour)
	p, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, SendAt: sendAt}, fanOut(2))
	if err != nil || p.State != PublishScheduled {
		t.Fatalf("%+v, %v", p, err)
	}
	q, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, SendAt: t0.Add(2 * time.Hour)}, fanOut(1))
	if err != nil {
		t.Fatal(err)
	}
	if due, err := db.DuePushPublishes(t0.Add(time.Minute), 10); err != nil || len(due) != 0 {
		t.Fatalf("due early: %v, %v", due, err)
	}
	if ds, err := db.ClaimPushDeliveries(t0.Add(time.Minute), 10, time.Minute); err != nil || len(ds) != 0 {
		t.Fatalf("claimed early: %v, %v", ds, err)
	}
	db = reopen(t, db, path)
	due, err := db.DuePushPublishes(sendAt, 10)
	if err != nil || len(due) != 1 || due[0].ID != p.ID {
		t.Fatalf("due after restart: %v, %v", due, err)
	}
	sched, _, err := db.PushPublishes("a", PublishScheduled, "", 0)
	if err != nil || len(sched) != 2 {
		t.Fatalf("scheduled list: %v, %v", sched, err)
	}
	ds, err := db.ClaimPushDeliveries(sendAt, 10, time.Minute)
	if err != nil || len(ds) != 2 || ds[0].Publish != p.ID {
		t.Fatalf("claim at send_at: %v, %v", ds, err)
	}
	if got := mustPub(t, db, "a", p.ID); got.State != PublishDispatching || !got.StartedAt.Equal(sendAt) {
		t.Fatalf("after claim %+v", got)
	}
	if due, _ := db.DuePushPublishes(t0.Add(3*time.Hour), 10); len(due) != 1 || due[0].ID != q.ID {
		t.Fatalf("due later: %v", due)
	}
	if sched, _, _ := db.PushPublishes("a", PublishScheduled, "", 0); len(sched) != 1 || sched[0].ID != q.ID {
		t.Fatalf("scheduled list after claim: %v", sched)
	}
}

func TestPushDeliveryClaimComplete(t *testing.T) {
	db, _ := openPubDB(t)
	p, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(4))
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	ds, err := db.ClaimPushDeliveries(now, 3, time.Minute)
	if err != nil || len(ds) != 3 {
		t.Fatalf("claim: %v, %v", ds, err)
	}
	for i, d := range ds {
		if d.State != DeliveryInflight || d.Attempts != 1 || d.Seq != uint64(i+1) || d.App != "a" ||
			!d.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Fatalf("claimed %+v", d)
		}
	}
	res := []PushResult{
		{App: "a", Publish: p.ID, Seq: 1, Outcome: OutcomeSent},
		{App: "a", Publish: p.ID, Seq: 2, Outcome: OutcomeInvalid, Reason: "Unregistered", Error: "410"},
		{App: "a", Publish: p.ID, Seq: 3, Outcome: OutcomeRetry, Reason: "Unavailable", RetryAt: now.Add(30 * time.Second)},
	}
	if n, err := db.CompletePushDeliveries(res, now, 0); err != nil || n != 3 {
		t.Fatalf("complete: %d, %v", n, err)
	}
	// The same results again (a late worker) change nothing.
	if n, err := db.CompletePushDeliveries(res[:2], now, 0); err != nil || n != 0 {
		t.Fatalf("complete twice: %d, %v", n, err)
	}
	got := mustPub(t, db, "a", p.ID)
	c := got.Counters
	if got.State != PublishDispatching || c.Sent != 1 || c.Invalidated != 1 || c.Retried != 1 || got.Open != 2 ||
		c.ErrorsByReason["Unregistered"] != 1 || c.PerProvider[PlatformAPNs].Invalidated != 1 {
		t.Fatalf("midway %+v", got)
	}
	// Seq 4 is due now; seq 3 only after its retry time.
	ds, _ = db.ClaimPushDeliveries(now, 10, time.Minute)
	if len(ds) != 1 || ds[0].Seq != 4 {
		t.Fatalf("second claim %v", ds)
	}
	ds2, _ := db.ClaimPushDeliveries(now.Add(30*time.Second), 10, time.Minute)
	if len(ds2) != 1 || ds2[0].Seq != 3 || ds2[0].Attempts != 2 {
		t.Fatalf("retry claim %v", ds2)
	}
	end := now.Add(time.Minute)
	if _, err := db.CompletePushDeliveries([]PushResult{
		{App: "a", Publish: p.ID, Seq: 3, Outcome: OutcomeSent},
		{App: "a", Publish: p.ID, Seq: 4, Outcome: OutcomeSent},
	}, end, 0); err != nil {
		t.Fatal(err)
	}
	got = mustPub(t, db, "a", p.ID)
	if got.State != PublishPartiallySucceeded || got.Counters.Sent != 3 || got.Open != 0 || !got.FinishedAt.Equal(end) {
		t.Fatalf("final %+v", got)
	}
	if ds, _ := db.ClaimPushDeliveries(end.Add(time.Hour), 10, time.Minute); len(ds) != 0 {
		t.Fatalf("claimable after finish: %v", ds)
	}

	// All sent: succeeded; none sent: failed.
	ok, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(1))
	bad, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(1))
	if ds, _ := db.ClaimPushDeliveries(now, 10, time.Minute); len(ds) != 2 {
		t.Fatalf("claim two: %v", ds)
	}
	if _, err := db.CompletePushDeliveries([]PushResult{
		{App: "a", Publish: ok.ID, Seq: 1, Outcome: OutcomeSent},
		{App: "a", Publish: bad.ID, Seq: 1, Outcome: OutcomeFailed, Reason: "PayloadTooLarge"},
	}, now, 0); err != nil {
		t.Fatal(err)
	}
	if s := mustPub(t, db, "a", ok.ID).State; s != PublishSucceeded {
		t.Fatalf("ok: %s", s)
	}
	if s := mustPub(t, db, "a", bad.ID).State; s != PublishFailed {
		t.Fatalf("bad: %s", s)
	}
	if _, err := db.CompletePushDeliveries([]PushResult{{App: "a", Publish: ok.ID, Seq: 9, Outcome: "bogus"}}, now, 0); err != nil {
		t.Fatalf("unknown delivery: %v", err)
	}
}

func TestPushPublishExpires(t *testing.T) {
	db, _ := openPubDB(t)
	p, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, ExpireAt: t0.Add(time.Minute)}, fanOut(2))
	ds, err := db.ClaimPushDeliveries(t0.Add(time.Minute), 10, time.Minute)
	if err != nil || len(ds) != 0 {
		t.Fatalf("claimed expired: %v, %v", ds, err)
	}
	got := mustPub(t, db, "a", p.ID)
	if got.State != PublishExpired || got.Counters.ErrorsByReason[ReasonExpired] != 2 || got.Open != 0 {
		t.Fatalf("%+v", got)
	}
}

// A worker claims deliveries and the process dies (SIGKILL: nothing
// completed). After a restart nothing is lost: once the lease has expired
// the same deliveries are claimed again (possible duplicates, bounded by
// what was in flight), and the rest are still pending.
func TestPushDeliveryCrashResumes(t *testing.T) {
	db, path := openPubDB(t)
	const n, window = 50, 10
	p, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(n))
	if err != nil {
		t.Fatal(err)
	}
	lease := 30 * time.Second
	inflight, err := db.ClaimPushDeliveries(t0, window, lease)
	if err != nil || len(inflight) != window {
		t.Fatalf("claim: %d, %v", len(inflight), err)
	}
	db = reopen(t, db, path) // the crash: nothing completed

	// Before the lease expires only the never-claimed ones come out.
	seen := map[uint64]int{}
	claimAll := func(at time.Time) int {
		total := 0
		for {
			ds, err := db.ClaimPushDeliveries(at, 7, lease)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				return total
			}
			var res []PushResult
			for _, d := range ds {
				seen[d.Seq]++
				res = append(res, PushResult{App: d.App, Publish: d.Publish, Seq: d.Seq, Outcome: OutcomeSent})
			}
			if _, err := db.CompletePushDeliveries(res, at, 0); err != nil {
				t.Fatal(err)
			}
			total += len(ds)
		}
	}
	if got := claimAll(t0.Add(time.Second)); got != n-window {
		t.Fatalf("before lease expiry claimed %d, want %d", got, n-window)
	}
	if got := claimAll(t0.Add(lease)); got != window {
		t.Fatalf("after lease expiry claimed %d, want %d", got, window)
	}
	duplicates := 0
	for _, d := range inflight {
		if seen[d.Seq] != 1 {
			t.Fatalf("delivery %d reclaimed %d times", d.Seq, seen[d.Seq])
		}
		duplicates++ // it may have gone out before the crash
		if ds, _ := db.PushDeliveries("a", p.ID); ds[d.Seq-1].Attempts != 2 {
			t.Fatalf("attempts of %d: %d", d.Seq, ds[d.Seq-1].Attempts)
		}
	}
	if len(seen) != n || duplicates > window {
		t.Fatalf("delivered %d of %d, %d possible duplicates", len(seen), n, duplicates)
	}
	got := mustPub(t, db, "a", p.ID)
	if got.State != PublishSucceeded || got.Counters.Sent != n {
		t.Fatalf("final %+v", got)
	}
	t.Logf("%d deliveries, %d in flight at the crash: %d possible duplicates, 0 lost", n, window, duplicates)
}

func TestCancelPushPublish(t *testing.T) {
	db, _ := openPubDB(t)
	now := t0.Add(time.Second)

	sched, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, SendAt: t0.Add(time.Hour)}, fanOut(3))
	got, err := db.CancelPushPublish("a", sched.ID, false, "ops@x", now)
	if err != nil || got.State != PublishCancelled || got.CancelledBy != "ops@x" || !got.CancelledAt.Equal(now) ||
		got.Counters.Cancelled != 3 || got.Open != 0 {
		t.Fatalf("scheduled: %+v, %v", got, err)
	}
	if due, _ := db.DuePushPublishes(t0.Add(2*time.Hour), 10); len(due) != 0 {
		t.Fatalf("cancelled still due: %v", due)
	}
	if ds, _ := db.PushDeliveries("a", sched.ID); len(ds) != 0 {
		t.Fatalf("deliveries kept: %v", ds)
	}

	queued, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(2))
	if got, err := db.CancelPushPublish("a", queued.ID, false, "u", now); err != nil || got.State != PublishCancelled {
		t.Fatalf("queued: %+v, %v", got, err)
	}
	if ds, _ := db.ClaimPushDeliveries(now, 10, time.Minute); len(ds) != 0 {
		t.Fatalf("claimed cancelled: %v", ds)
	}
	if _, err := db.CancelPushPublish("a", queued.ID, true, "u", now); !errors.Is(err, ErrConflict) {
		t.Fatalf("cancel twice: %v", err)
	}

	disp, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(4))
	ds, _ := db.ClaimPushDeliveries(now, 1, time.Minute)
	if len(ds) != 1 {
		t.Fatalf("claim %v", ds)
	}
	if _, err := db.CancelPushPublish("a", disp.ID, false, "u", now); !errors.Is(err, ErrConflict) {
		t.Fatalf("dispatching: %v", err)
	}
	got, err = db.CancelPushPublish("a", disp.ID, true, "u", now)
	if err != nil || got.State != PublishPartiallyCancelled || got.Counters.Cancelled != 3 || got.Open != 1 || !got.FinishedAt.IsZero() {
		t.Fatalf("partial: %+v, %v", got, err)
	}
	if _, err := db.CompletePushDeliveries([]PushResult{{App: "a", Publish: disp.ID, Seq: 1, Outcome: OutcomeSent}}, now, 0); err != nil {
		t.Fatal(err)
	}
	got = mustPub(t, db, "a", disp.ID)
	if got.State != PublishPartiallyCancelled || got.Counters.Sent != 1 || !got.FinishedAt.Equal(now) {
		t.Fatalf("partial finished: %+v", got)
	}
	if _, err := db.CancelPushPublish("a", disp.ID, true, "u", now); !errors.Is(err, ErrConflict) {
		t.Fatalf("finished: %v", err)
	}
	if _, err := db.CancelPushPublish("a", "pub_nope", false, "u", now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestPushPublishesPagination(t *testing.T) {
	db, _ := openPubDB(t)
	var ids []string
	for i := range 7 {
		p, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}, fanOut(1))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	if _, err := db.CreatePushPublish(PushPublish{App: "b", CreatedAt: t0}, fanOut(1)); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for range 10 {
		page, next, err := db.PushPublishes("a", PublishQueued, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			got = append(got, p.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("pages %v, want %v (creation order)", got, ids)
	}
	if page, next, _ := db.PushPublishes("a", PublishSucceeded, "", 3); len(page) != 0 || next != "" {
		t.Fatalf("succeeded: %v %q", page, next)
	}
	if page, _, _ := db.PushPublishes("c", "", "", 3); len(page) != 0 {
		t.Fatalf("other app: %v", page)
	}
}

func TestPushDeadLettersReplay(t *testing.T) {
	db, _ := openPubDB(t)
	now := t0.Add(time.Second)
	p, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(3))
	ds, _ := db.ClaimPushDeliveries(now, 10, time.Minute)
	var res []PushResult
	for _, d := range ds {
		res = append(res, PushResult{App: "a", Publish: p.ID, Seq: d.Seq, Outcome: OutcomeDead, Reason: "Unavailable", Error: "503 after 5 tries"})
	}
	if _, err := db.CompletePushDeliveries(res, now, 2); err != nil {
		t.Fatal(err)
	}
	got := mustPub(t, db, "a", p.ID)
	if got.State != PublishFailed || got.Counters.Failed != 3 || got.Counters.ErrorsByReason["Unavailable"] != 3 {
		t.Fatalf("after dead %+v", got)
	}
	dead, err := db.PushDeadLetters("a", 0)
	if err != nil || len(dead) != 2 || dead[0].Seq != 2 || dead[0].State != DeliveryDead || dead[0].LastError != "503 after 5 tries" {
		t.Fatalf("dead letters (bounded at 2, oldest dropped): %+v, %v", dead, err)
	}
	if n, err := db.ReplayPushDeliveries("a", []uint64{dead[0].DeadID}, now); err != nil || n != 1 {
		t.Fatalf("replay one: %d, %v", n, err)
	}
	got = mustPub(t, db, "a", p.ID)
	if got.State != PublishDispatching || got.Open != 1 || got.Counters.Failed != 2 || !got.FinishedAt.IsZero() {
		t.Fatalf("after replay %+v", got)
	}
	ds, _ = db.ClaimPushDeliveries(now, 10, time.Minute)
	if len(ds) != 1 || ds[0].Seq != 2 || ds[0].Attempts != 1 {
		t.Fatalf("replayed claim %v", ds)
	}
	if _, err := db.CompletePushDeliveries([]PushResult{{App: "a", Publish: p.ID, Seq: 2, Outcome: OutcomeSent}}, now, 2); err != nil {
		t.Fatal(err)
	}
	if got := mustPub(t, db, "a", p.ID); got.State != PublishPartiallySucceeded {
		t.Fatalf("final %+v", got)
	}
	if n, err := db.ReplayPushDeliveries("a", nil, now); err != nil || n != 1 {
		t.Fatalf("replay all: %d, %v", n, err)
	}
	if dead, _ := db.PushDeadLetters("a", 0); len(dead) != 0 {
		t.Fatalf("left %v", dead)
	}
}

// What the methods return owns its bytes: reading them after the
// transaction, and after further writes that reuse the pages, is safe.
func TestPushPublishBytesOutliveTx(t *testing.T) {
	db, _ := openPubDB(t)
	body := `{"notification":{"title":"hi"}}`
	p, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, Body: []byte(body), IdempotencyKey: "k"}, fanOut(2))
	got := mustPub(t, db, "a", p.ID)
	list, _, _ := db.PushPublishes("a", "", "", 0)
	ds, _ := db.ClaimPushDeliveries(t0, 10, time.Minute)
	for i := range 50 {
		if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(20+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.CancelPushPublish("a", p.ID, true, "u", t0); err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != body || string(list[0].Body) != body || got.IdempotencyKey != "k" ||
		ds[0].DeviceID != "d00000" || ds[1].Publish != p.ID {
		t.Fatalf("bytes changed: %q %q %+v", got.Body, list[0].Body, ds)
	}
}

// BenchmarkCreatePushPublish10k stores one publish with 10,000 deliveries
// per op and reports the file growth per op.
func BenchmarkCreatePushPublish10k(b *testing.B) {
	db, path := openPubDB(b)
	ds := fanOut(10_000)
	body := []byte(`{"interests":["news"],"notification":{"title":"t","body":"b"}}`)
	st0, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0.Add(time.Duration(i) * time.Millisecond), Body: body}, ds); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size()-st0.Size())/float64(b.N), "file-B/op")
	b.ReportMetric(float64(st.Size()-st0.Size())/float64(b.N)/10_000, "file-B/delivery")
}

// Concurrent claimers never get the same delivery while its lease runs.
func TestPushDeliveryConcurrentClaims(t *testing.T) {
	db, _ := openPubDB(t)
	const n = 300
	if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(n)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := db.ClaimPushDeliveries(t0, 16, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.Seq]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d of %d", len(seen), n)
	}
	for seq, c := range seen {
		if c != 1 {
			t.Fatalf("delivery %d claimed %d times", seq, c)
		}
	}
}

func TestPushResultOfStaleClaimSkipped(t *testing.T) {
	db, _ := openPubDB(t)
	p, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(1))
	first, _ := db.ClaimPushDeliveries(t0, 1, time.Second)
	second, _ := db.ClaimPushDeliveries(t0.Add(time.Second), 1, time.Minute) // first lease expired
	if len(first) != 1 || len(second) != 1 || second[0].Attempts != 2 {
		t.Fatalf("claims %v %v", first, second)
	}
	late := PushResult{App: "a", Publish: p.ID, Seq: 1, Outcome: OutcomeRetry, RetryAt: t0.Add(time.Hour), Attempt: first[0].Attempts}
	if n, _ := db.CompletePushDeliveries([]PushResult{late}, t0, 0); n != 0 {
		t.Fatal("stale result applied")
	}
	cur := PushResult{App: "a", Publish: p.ID, Seq: 1, Outcome: OutcomeSent, Attempt: second[0].Attempts}
	if n, _ := db.CompletePushDeliveries([]PushResult{cur}, t0, 0); n != 1 {
		t.Fatal("current result skipped")
	}
	if got := mustPub(t, db, "a", p.ID); got.State != PublishSucceeded {
		t.Fatalf("%+v", got)
	}
}

func TestPurgePushPublishes(t *testing.T) {
	db, _ := openPubDB(t)
	done, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, IdempotencyKey: "k"}, fanOut(2))
	open, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0.Add(time.Millisecond)}, fanOut(1))
	ds, _ := db.ClaimPushDeliveries(t0, 2, time.Minute) // both of done's
	if _, err := db.CompletePushDeliveries([]PushResult{
		{App: "a", Publish: done.ID, Seq: ds[0].Seq, Outcome: OutcomeSent},
		{App: "a", Publish: done.ID, Seq: ds[1].Seq, Outcome: OutcomeDead},
	}, t0, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PurgePushPublishes("a", t0, 0); err != nil || n != 0 {
		t.Fatalf("purged too early: %d, %v", n, err)
	}
	if n, err := db.PurgePushPublishes("a", t0.Add(25*time.Hour), 0); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if _, err := db.PushPublish("a", done.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("still there: %v", err)
	}
	if d, _ := db.PushDeliveries("a", done.ID); len(d) != 0 {
		t.Fatalf("deliveries left %v", d)
	}
	if d, _ := db.PushDeadLetters("a", 0); len(d) != 0 {
		t.Fatalf("dead letters left %v", d)
	}
	if l, _, _ := db.PushPublishes("a", PublishPartiallySucceeded, "", 0); len(l) != 0 {
		t.Fatalf("state index left %v", l)
	}
	if p, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0.Add(25 * time.Hour), IdempotencyKey: "k"}, nil); err != nil || p.ID == done.ID {
		t.Fatalf("key after purge: %+v %v", p, err)
	}
	if ds, _ := db.ClaimPushDeliveries(t0.Add(time.Millisecond), 10, time.Minute); len(ds) != 1 || ds[0].Publish != open.ID {
		t.Fatalf("open publish disturbed: %v", ds)
	}
}
