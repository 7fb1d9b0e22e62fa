package storage

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestReleasePushLeases: at start every inflight delivery is a dead
// process's, due again at once; pending ones keep their time.
func TestReleasePushLeases(t *testing.T) {
	db, path := openPubDB(t)
	p, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(10))
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := db.ClaimPushDeliveries(t0, 4, time.Hour); err != nil || len(ds) != 4 {
		t.Fatalf("claim %d %v", len(ds), err)
	}
	db = reopen(t, db, path)
	later := t0.Add(time.Second)
	if ds, _ := db.ClaimPushDeliveries(later, 100, time.Hour); len(ds) != 6 {
		t.Fatalf("before the release %d claimable, want the 6 never claimed", len(ds))
	}
	n, err := db.ReleasePushLeases(later)
	if err != nil || n != 10 {
		t.Fatalf("released %d %v, want 10 (4 + 6 inflight now)", n, err)
	}
	ds, err := db.ClaimPushDeliveries(later, 100, time.Hour)
	if err != nil || len(ds) != 10 {
		t.Fatalf("after the release claimed %d %v", len(ds), err)
	}
	if got := mustPub(t, db, "a", p.ID); got.Open != 10 || got.State != PublishDispatching {
		t.Fatalf("publish %+v", got)
	}
}

func TestNextPushDueAndQueueDepth(t *testing.T) {
	db, _ := openPubDB(t)
	if _, ok, err := db.NextPushDue(); ok || err != nil {
		t.Fatalf("empty: ok %v err %v", ok, err)
	}
	at := t0.Add(time.Hour)
	if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, SendAt: at}, fanOut(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, SendAt: at.Add(time.Hour)}, fanOut(2)); err != nil {
		t.Fatal(err)
	}
	next, ok, err := db.NextPushDue()
	if err != nil || !ok || !next.Equal(at) {
		t.Fatalf("next due %v %v %v, want %v", next, ok, err, at)
	}
	if n, err := db.PushQueueDepth(); err != nil || n != 5 {
		t.Fatalf("queue depth %d %v", n, err)
	}
}

// TestFinishedPushPublishesOnce: each publish is reported once when it
// finishes, again after a replay finishes it again, never while open.
func TestFinishedPushPublishesOnce(t *testing.T) {
	db, _ := openPubDB(t)
	p, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, fanOut(2))
	empty, _ := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0}, nil)
	got, err := db.FinishedPushPublishes(0)
	if err != nil || len(got) != 1 || got[0].ID != empty.ID {
		t.Fatalf("finished %v %v, want only the empty publish", got, err)
	}
	ds, _ := db.ClaimPushDeliveries(t0, 10, 0)
	res := []PushResult{{App: "a", Publish: p.ID, Seq: ds[0].Seq, Outcome: OutcomeSent},
		{App: "a", Publish: p.ID, Seq: ds[1].Seq, Outcome: OutcomeDead, Reason: "x"}}
	if _, err := db.CompletePushDeliveries(res, t0, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.FinishedPushPublishes(0); len(got) != 1 || got[0].ID != p.ID || got[0].State != PublishPartiallySucceeded {
		t.Fatalf("finished %+v", got)
	}
	if got, _ := db.FinishedPushPublishes(0); len(got) != 0 {
		t.Fatalf("reported twice: %+v", got)
	}
	if n, err := db.ReplayPushDeliveries("a", nil, t0); err != nil || n != 1 {
		t.Fatalf("replay %d %v", n, err)
	}
	ds, _ = db.ClaimPushDeliveries(t0, 10, 0)
	if _, err := db.CompletePushDeliveries([]PushResult{{App: "a", Publish: p.ID, Seq: ds[0].Seq, Outcome: OutcomeSent}}, t0, 0); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.FinishedPushPublishes(0); len(got) != 1 || got[0].State != PublishSucceeded {
		t.Fatalf("after the replay %+v", got)
	}
}

func TestRateLimitedPublishRecord(t *testing.T) {
	db, _ := openPubDB(t)
	r, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, State: PublishRateLimited, IdempotencyKey: "k"}, nil)
	if err != nil || r.State != PublishRateLimited || r.FinishedAt.IsZero() {
		t.Fatalf("refusal %+v %v", r, err)
	}
	// The key stays free for the retry.
	ok, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, IdempotencyKey: "k"}, fanOut(1))
	if err != nil || ok.ID == r.ID || ok.State != PublishQueued {
		t.Fatalf("retry %+v %v", ok, err)
	}
	if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, State: PublishRateLimited}, fanOut(1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("refusal with deliveries: %v", err)
	}
	list, _, _ := db.PushPublishes("a", PublishRateLimited, "", 0)
	if len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("listed %+v", list)
	}
}

func TestDevicesBatchRead(t *testing.T) {
	db, _ := openPubDB(t)
	if m, err := db.Devices("app", []string{"x"}); err != nil || len(m) != 0 {
		t.Fatalf("no bucket: %v %v", m, err)
	}
	for _, n := range []string{"1", "2"} {
		if _, _, err := db.PutDevice(webDevice("app", n), DeviceLimits{}, t0, false); err != nil {
			t.Fatal(err)
		}
	}
	all, _, _ := db.ListDevices("app", DeviceFilter{}, "", 10)
	m, err := db.Devices("app", []string{all[0].ID, "missing", all[1].ID})
	if err != nil || len(m) != 2 || m[all[1].ID].Token != all[1].Token {
		t.Fatalf("devices %v %v", m, err)
	}
}

// TestDeleteAppDeletesPublishes: nothing of a deleted app's publishes is
// kept or sent; another app's are untouched.
func TestDeleteAppDeletesPublishes(t *testing.T) {
	db, _ := openPubDB(t)
	for _, a := range []App{{ID: "a", Key: "k", Secret: "s"}, {ID: "b", Key: "k2", Secret: "s"}} {
		if err := db.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range []string{"a", "b"} {
		p, err := db.CreatePushPublish(PushPublish{App: app, CreatedAt: t0, IdempotencyKey: "k"}, fanOut(3))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreatePushPublish(PushPublish{App: app, CreatedAt: t0, SendAt: t0.Add(time.Hour)}, fanOut(2)); err != nil {
			t.Fatal(err)
		}
		// Claim what is due (the others stay inflight) and kill one of app's.
		ds, _ := db.ClaimPushDeliveries(t0, 100, 0)
		for _, d := range ds {
			if d.App == app {
				if _, err := db.CompletePushDeliveries([]PushResult{{App: app, Publish: p.ID, Seq: d.Seq, Outcome: OutcomeDead}}, t0, 0); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
	}
	if err := db.DeleteApp("a"); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := db.PushPublishes("a", "", "", 0); len(l) != 0 {
		t.Fatalf("publishes left: %+v", l)
	}
	if d, _ := db.PushDeadLetters("a", 0); len(d) != 0 {
		t.Fatalf("dead letters left: %+v", d)
	}
	if n, _ := db.PushQueueDepth(); n != 4 {
		t.Fatalf("queue depth %d, want b's 4", n)
	}
	ds, _ := db.ClaimPushDeliveries(t0.Add(2*time.Hour), 100, 0)
	if len(ds) != 4 {
		t.Fatalf("claimed %d, want b's 4", len(ds))
	}
	for _, d := range ds {
		if d.App != "b" {
			t.Fatalf("claimed a delivery of the deleted app: %+v", d)
		}
	}
	if l, _, _ := db.PushPublishes("b", "", "", 0); len(l) != 2 {
		t.Fatalf("b's publishes: %d", len(l))
	}
	// The same id again starts with no idempotency key in use.
	if err := db.PutApp(App{ID: "a", Key: "k3", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreatePushPublish(PushPublish{App: "a", CreatedAt: t0, IdempotencyKey: "k"}, fanOut(1)); err != nil {
		t.Fatalf("key of the deleted app still in use: %v", err)
	}
}

// TestIdleDispatchPollsDoNotWrite: with nothing finished, nothing due and
// nothing to purge, the dispatcher's polls (every 50 ms, every second) and
// its sweep (every app, at start and hourly) commit nothing, so an idle
// server does no fdatasync for push.
func TestIdleDispatchPollsDoNotWrite(t *testing.T) {
	db := openTestDB(t)
	txid := func() int {
		var id int
		if err := db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
			t.Fatal(err)
		}
		return id
	}
	before := txid()
	for range 3 {
		if got, err := db.FinishedPushPublishes(0); err != nil || len(got) != 0 {
			t.Fatalf("FinishedPushPublishes = %v, %v", got, err)
		}
		if got, err := db.ClaimPushDeliveries(time.Now(), 10, 0); err != nil || len(got) != 0 {
			t.Fatalf("ClaimPushDeliveries = %v, %v", got, err)
		}
		if n, err := db.PurgePushPublishes("a", time.Now(), 0); err != nil || n != 0 {
			t.Fatalf("PurgePushPublishes = %d, %v", n, err)
		}
	}
	if after := txid(); after != before {
		t.Errorf("idle polls committed %d write transactions", after-before)
	}
}

// BenchmarkIdleDispatchPoll is one poll of an idle push dispatcher for
// finished publishes (it polls every 50 ms) and for due deliveries (every
// second), with nothing to report or send.
func BenchmarkIdleDispatchPoll(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "sockudo.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.FinishedPushPublishes(0); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ClaimPushDeliveries(time.Now(), 10, 0); err != nil {
			b.Fatal(err)
		}
	}
}
