package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

var t0 = time.UnixMilli(1_700_000_000_000).UTC()

func entry(app, url string, n int) WebhookEntry {
	return WebhookEntry{App: app, URL: url, Event: []byte(fmt.Sprintf(`{"name":"client_event","n":%d}`, n)),
		CreatedAt: t0.Add(time.Duration(n) * time.Millisecond), EnqueuedAt: t0.Add(time.Duration(n) * time.Second)}
}

func events(es []WebhookEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Event))
	}
	return out
}

func queueLens(t *testing.T, db *DB) map[string]int {
	t.Helper()
	qs, err := db.WebhookQueues()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, q := range qs {
		out[q.App+" "+q.URL] = q.Len
	}
	return out
}

func TestWebhookQueueRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sockudo.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var in []WebhookEntry
	for i := range 5 {
		in = append(in, entry("a", "http://x/1", i))
	}
	in = append(in, entry("a", "http://x/2", 100), entry("b", "http://x/1", 200))
	if err := db.EnqueueWebhooks(in); err != nil {
		t.Fatal(err)
	}
	if in[0].ID != 0 {
		t.Fatal("EnqueueWebhooks modified its argument")
	}
	// Entries survive closing and reopening (what a restart sees).
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	if got, want := queueLens(t, db), map[string]int{"a http://x/1": 5, "a http://x/2": 1, "b http://x/1": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queues = %v, want %v", got, want)
	}
	head, err := db.WebhookHead("a", "http://x/1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := events(head), events(in[:3]); !reflect.DeepEqual(got, want) {
		t.Fatalf("head = %v, want %v", got, want)
	}
	h := head[0]
	if h.App != "a" || h.URL != "http://x/1" || !h.CreatedAt.Equal(in[0].CreatedAt) ||
		!h.EnqueuedAt.Equal(in[0].EnqueuedAt) || h.Attempts != 0 || !h.NextAttempt.IsZero() {
		t.Fatalf("head[0] = %+v", h)
	}

	// A failed attempt is recorded; a delivered batch is deleted.
	marked := head[:2]
	for i := range marked {
		marked[i].Attempts, marked[i].NextAttempt, marked[i].LastError = 1, t0.Add(time.Minute), "503 Service Unavailable"
	}
	if err := db.MarkWebhookAttempts(marked); err != nil {
		t.Fatal(err)
	}
	head, _ = db.WebhookHead("a", "http://x/1", 10)
	if head[1].Attempts != 1 || !head[1].NextAttempt.Equal(t0.Add(time.Minute)) || head[1].LastError != "503 Service Unavailable" ||
		head[2].Attempts != 0 {
		t.Fatalf("after mark: %+v", head[:3])
	}
	if _, err := db.DeleteWebhooks("a", "http://x/1", []uint64{head[0].ID, head[1].ID, 9999}); err != nil {
		t.Fatal(err)
	}
	head, _ = db.WebhookHead("a", "http://x/1", 10)
	if got, want := events(head), events(in[2:5]); !reflect.DeepEqual(got, want) {
		t.Fatalf("after delete = %v, want %v", got, want)
	}
	if got := queueLens(t, db)["a http://x/1"]; got != 3 {
		t.Fatalf("len after delete = %d, want 3", got)
	}
	if empty, err := db.WebhookHead("c", "http://none", 10); err != nil || len(empty) != 0 {
		t.Fatalf("unknown target: %v, %v", empty, err)
	}
}

func TestWebhookEntryBytesOutliveTransaction(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.EnqueueWebhooks([]WebhookEntry{entry("a", "http://x", 1)}); err != nil {
		t.Fatal(err)
	}
	head, err := db.WebhookHead("a", "http://x", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // unmaps the file
		t.Fatal(err)
	}
	// Touching mmap'd bytes now would fault; copies are fine.
	if got := string(head[0].Event); got != `{"name":"client_event","n":1}` {
		t.Fatalf("event after close = %q", got)
	}
	if _, err := db.WebhookHead("a", "http://x", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
}

func TestWebhookDeadLetters(t *testing.T) {
	db := openTestDB(t)
	var in []WebhookEntry
	for i := range 6 {
		in = append(in, entry("a", "http://x", i))
	}
	in = append(in, entry("b", "http://y", 50))
	if err := db.EnqueueWebhooks(in); err != nil {
		t.Fatal(err)
	}
	head, _ := db.WebhookHead("a", "http://x", 10)
	bHead, _ := db.WebhookHead("b", "http://y", 10)

	// Bound 3: five dead letters of app a keep the newest three.
	for i := range 5 {
		e := head[i]
		e.Attempts, e.LastError = i, "boom"
		if _, err := db.DeadLetterWebhooks([]WebhookEntry{e}, "400 Bad Request", t0, 3); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.DeadLetterWebhooks(bHead, "retry window over", t0, 3); err != nil {
		t.Fatal(err)
	}
	dead, err := db.DeadLetters("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := events(deadEntries(dead)), events(in[2:5]); !reflect.DeepEqual(got, want) {
		t.Fatalf("dead letters of a = %v, want %v (oldest dropped first)", got, want)
	}
	d := dead[0]
	if d.App != "a" || d.URL != "http://x" || d.Reason != "400 Bad Request" || d.Attempts != 2 ||
		d.LastError != "boom" || !d.DeadAt.Equal(t0) || !d.CreatedAt.Equal(in[2].CreatedAt) {
		t.Fatalf("dead letter = %+v", d)
	}
	all, _ := db.DeadLetters("", 0)
	if len(all) != 4 || all[3].App != "b" {
		t.Fatalf("all dead letters = %+v", all)
	}
	if two, _ := db.DeadLetters("", 2); len(two) != 2 || two[0].ID != all[0].ID {
		t.Fatalf("limit 2 = %+v", two)
	}
	if got := queueLens(t, db); !reflect.DeepEqual(got, map[string]int{"a http://x": 1}) {
		t.Fatalf("queues after dead-lettering = %v", got)
	}

	// Replay: by id, refusing targets that keep rejects.
	replayed, skipped, err := db.ReplayDeadLetters("a", []uint64{dead[1].ID}, t0.Add(time.Hour), nil)
	if err != nil || skipped != 0 || !reflect.DeepEqual(replayed, []WebhookQueue{{App: "a", URL: "http://x", Len: 1}}) {
		t.Fatalf("replay one = %v, %d, %v", replayed, skipped, err)
	}
	head, _ = db.WebhookHead("a", "http://x", 10)
	if got, want := events(head), []string{string(in[5].Event), string(in[3].Event)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("queue after replay = %v, want %v", got, want)
	}
	if r := head[1]; r.Attempts != 0 || !r.EnqueuedAt.Equal(t0.Add(time.Hour)) || !r.CreatedAt.Equal(in[3].CreatedAt) {
		t.Fatalf("replayed entry = %+v", r)
	}
	keepA := func(app, url string) bool { return app == "a" }
	replayed, skipped, err = db.ReplayDeadLetters("", nil, t0, keepA)
	if err != nil || skipped != 1 || len(replayed) != 1 || replayed[0].Len != 2 {
		t.Fatalf("replay all = %v, %d, %v", replayed, skipped, err)
	}
	left, _ := db.DeadLetters("", 0)
	if len(left) != 1 || left[0].App != "b" {
		t.Fatalf("dead letters left = %+v", left)
	}
	if got := queueLens(t, db); !reflect.DeepEqual(got, map[string]int{"a http://x": 4}) {
		t.Fatalf("queues after replay = %v", got)
	}
}

func deadEntries(ds []DeadLetter) []WebhookEntry {
	var out []WebhookEntry
	for _, d := range ds {
		out = append(out, WebhookEntry{Event: d.Event})
	}
	return out
}

func TestExpireWebhooks(t *testing.T) {
	db := openTestDB(t)
	var in []WebhookEntry
	for i := range 5 { // enqueued at t0+0s … t0+4s
		in = append(in, entry("a", "http://x", i))
	}
	if err := db.EnqueueWebhooks(in); err != nil {
		t.Fatal(err)
	}
	n, err := db.ExpireWebhooks("a", "http://x", t0.Add(3*time.Second), "retry window over", t0, 0, 2)
	if err != nil || n != 2 {
		t.Fatalf("expire with limit 2 = %d, %v", n, err)
	}
	n, err = db.ExpireWebhooks("a", "http://x", t0.Add(3*time.Second), "retry window over", t0, 0, 0)
	if err != nil || n != 1 {
		t.Fatalf("expire rest = %d, %v", n, err)
	}
	head, _ := db.WebhookHead("a", "http://x", 10)
	if got, want := events(head), events(in[3:]); !reflect.DeepEqual(got, want) {
		t.Fatalf("left = %v, want %v", got, want)
	}
	dead, _ := db.DeadLetters("a", 0)
	if len(dead) != 3 || dead[0].Reason != "retry window over" {
		t.Fatalf("dead = %+v", dead)
	}
	if n, err := db.ExpireWebhooks("none", "http://x", t0, "r", t0, 0, 0); n != 0 || err != nil {
		t.Fatalf("expire unknown target = %d, %v", n, err)
	}
}

// TestEnqueueWebhooksConcurrent checks that concurrent writers sharing a
// commit keep every entry and the counts right.
func TestEnqueueWebhooksConcurrent(t *testing.T) {
	db := openTestDB(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := db.EnqueueWebhooks([]WebhookEntry{entry("a", fmt.Sprintf("http://x/%d", w%2), i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := queueLens(t, db); got["a http://x/0"] != 100 || got["a http://x/1"] != 100 {
		t.Fatalf("queues = %v", got)
	}
	head, _ := db.WebhookHead("a", "http://x/0", 1000)
	for i := 1; i < len(head); i++ {
		if head[i].ID <= head[i-1].ID {
			t.Fatalf("ids not increasing at %d", i)
		}
	}
}

func TestEnqueueWebhooksInvalid(t *testing.T) {
	db := openTestDB(t)
	err := db.EnqueueWebhooks([]WebhookEntry{entry("a", "http://x", 1), {App: "a"}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if got := queueLens(t, db); len(got) != 0 {
		t.Fatalf("a refused batch left entries: %v", got)
	}
}

func BenchmarkEnqueueWebhooks(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "sockudo.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := make([]WebhookEntry, 1000)
	for i := range batch {
		batch[i] = entry("app-id", "https://example.com/webhook", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := db.EnqueueWebhooks(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "entries/s")
}

// TestEnqueueWebhooksBounded: a full queue moves its oldest entries to the
// dead letters in the commit that overfills it, and entries annul or
// supersede queued ones as asked.
func TestEnqueueWebhooksBounded(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bounds := QueueBounds{MaxQueued: 3, MaxDeadLetters: 2, At: t0}
	var in []WebhookEntry
	for i := range 5 {
		in = append(in, entry("a", "http://x", i))
	}
	in = append(in, entry("a", "http://y", 9))
	res, err := db.EnqueueWebhooksBounded(in, bounds)
	if err != nil {
		t.Fatal(err)
	}
	want := []QueueChange{{App: "a", URL: "http://x", Delta: 3, Overflow: 2}, {App: "a", URL: "http://y", Delta: 1}}
	if !reflect.DeepEqual(res.Queues, want) || len(res.IDs) != 6 || res.IDs[0] == 0 {
		t.Fatalf("result %+v, want queues %+v", res, want)
	}
	head, _ := db.WebhookHead("a", "http://x", 10)
	if got := events(head); !reflect.DeepEqual(got, events(in[2:5])) {
		t.Fatalf("queue %v, want the newest three", got)
	}
	dead, _ := db.DeadLetters("a", 0)
	if len(dead) != 2 || string(dead[0].Event) != string(in[0].Event) || dead[0].Reason[:len(ReasonQueueFull)] != ReasonQueueFull {
		t.Fatalf("dead letters %+v", dead)
	}

	tcs := []struct {
		name      string
		e         WebhookEntry
		wantDelta int
		stored    bool
	}{
		{"annul a queued entry and the ones after it", WebhookEntry{Annuls: []uint64{head[1].ID, head[2].ID}}, -2, false},
		{"annul an entry gone already: stored", WebhookEntry{Annuls: []uint64{head[1].ID}}, 1, true},
		{"supersede a queued entry", WebhookEntry{Supersedes: head[0].ID}, 0, true},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			e := entry("a", "http://x", 50)
			e.Annuls, e.Supersedes = tc.e.Annuls, tc.e.Supersedes
			res, err := db.EnqueueWebhooksBounded([]WebhookEntry{e}, bounds)
			if err != nil {
				t.Fatal(err)
			}
			if res.Queues[0].Delta != tc.wantDelta || (res.IDs[0] != 0) != tc.stored {
				t.Fatalf("result %+v", res)
			}
		})
	}
	if got := queueLens(t, db)["a http://x"]; got != 2 {
		t.Fatalf("queue length %d, want 2", got)
	}
}
