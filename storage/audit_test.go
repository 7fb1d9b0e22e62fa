package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestAuditAppendFilterAndRetention(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Refusals and changes live apart; a listing merges them in order.
	if _, err = db.PutAuditRefusals([]AuditEntry{
		{Time: t0, App: "a", Action: "auth_denied", IP: "127.0.0.1", Channel: "private-x", Reason: "channel_signature"},
	}, 0); err != nil {
		t.Fatal(err)
	}
	if err = db.AppendAudit([]AuditEntry{{Time: t0.Add(time.Minute), App: "b", Action: "origin_refused"}}); err != nil {
		t.Fatal(err)
	}
	if _, err = db.PutAuditRefusals([]AuditEntry{{Time: t0.Add(2 * time.Minute), App: "a", Action: "rate_limited",
		Reason: "ws_connect"}}, 0); err != nil {
		t.Fatal(err)
	}
	tcs := []struct {
		name string
		f    AuditFilter
		want []string
	}{
		{"all newest first", AuditFilter{}, []string{"rate_limited", "origin_refused", "auth_denied"}},
		{"by app", AuditFilter{App: "a"}, []string{"rate_limited", "auth_denied"}},
		{"by action", AuditFilter{Action: "origin_refused"}, []string{"origin_refused"}},
		{"since", AuditFilter{Since: t0.Add(time.Minute)}, []string{"rate_limited", "origin_refused"}},
		{"limit", AuditFilter{Limit: 1}, []string{"rate_limited"}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Audit(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d entries %+v, want %v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i].Action != tc.want[i] {
					t.Fatalf("entry %d = %s, want %s", i, got[i].Action, tc.want[i])
				}
			}
		})
	}
}

func TestAuditWriterFlushesOnStop(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := NewAuditWriter(db, AuditWriterConfig{Buffer: 16}, func(err error) { t.Error(err) })
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx)
	for i := 0; i < 20; i++ { // 4 over the buffer may be dropped
		w.Record(AuditEntry{App: "a", Action: "x"})
	}
	cancel()
	w.Wait()
	got, err := db.Audit(AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, e := range got {
		counted += e.Count
	}
	if int64(counted)+w.Dropped() != 20 {
		t.Fatalf("counted %d + dropped %d != 20", counted, w.Dropped())
	}
	if got[0].Time.IsZero() {
		t.Fatal("time not stamped")
	}
}

// runWriter records entries through an AuditWriter with cfg and waits for
// its last write.
func runWriter(t *testing.T, db *DB, cfg AuditWriterConfig, entries []AuditEntry) {
	t.Helper()
	cfg.Buffer = len(entries) + 1
	w := NewAuditWriter(db, cfg, func(err error) { t.Error(err) })
	for _, e := range entries {
		w.Record(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx)
	cancel()
	w.Wait()
	if w.Dropped() != 0 {
		t.Fatalf("%d entries dropped", w.Dropped())
	}
}

// TestAuditRefusalsAggregated is issue 8's flood: 3,000 unsigned requests
// from one IP used to write 3,000 entries. Repeats of one refusal within
// the window are now one entry with a count and first and last seen.
func TestAuditRefusalsAggregated(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var flood []AuditEntry
	for i := range 3000 {
		flood = append(flood, AuditEntry{Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), App: "a",
			Action: "api_signature_denied", IP: "127.0.0.1", Reason: "signature"})
	}
	// Another IP, another channel, and the same one again once the window
	// is over.
	flood = append(flood,
		AuditEntry{Time: t0.Add(time.Second), App: "a", Action: "api_signature_denied", IP: "127.0.0.2", Reason: "signature"},
		AuditEntry{Time: t0.Add(1500 * time.Millisecond), App: "a", Action: "api_signature_denied", IP: "127.0.0.1",
			Channel: "private-x", Reason: "signature"},
		AuditEntry{Time: t0.Add(2 * time.Minute), App: "a", Action: "api_signature_denied", IP: "127.0.0.1", Reason: "signature"})
	runWriter(t, db, AuditWriterConfig{Window: time.Minute}, flood)

	got, err := db.Audit(AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		IP          string
		Count       int
		First, Last time.Time
	}
	var views []view
	for _, e := range got {
		views = append(views, view{e.IP, e.Count, e.Time, e.LastSeen})
	}
	want := []view{
		{"127.0.0.1", 1, t0.Add(2 * time.Minute), t0.Add(2 * time.Minute)},
		{"127.0.0.1", 1, t0.Add(1500 * time.Millisecond), t0.Add(1500 * time.Millisecond)},
		{"127.0.0.2", 1, t0.Add(time.Second), t0.Add(time.Second)},
		{"127.0.0.1", 3000, t0, t0.Add(29990 * time.Millisecond)},
	}
	if !reflect.DeepEqual(views, want) {
		t.Fatalf("%d entries, first %+v\nwant %+v", len(views), views[:min(len(views), 3)], want)
	}
	// Since matches an aggregate still counting at that time, not one
	// last seen before it.
	got, _ = db.Audit(AuditFilter{Since: t0.Add(20 * time.Second), Limit: 10})
	if len(got) != 2 || got[1].Count != 3000 {
		t.Fatalf("since: %+v, want the last entry and the aggregate", got)
	}
}

// TestAuditChangesSurviveRefusalFlood: refusals have their own bound, so a
// flood cannot evict app and secret changes.
func TestAuditChangesSurviveRefusalFlood(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AppendAudit([]AuditEntry{{Time: t0, App: "a", Action: "app_created"},
		{Time: t0, App: "a", Action: "secret_rotated"}}); err != nil {
		t.Fatal(err)
	}
	var flood []AuditEntry
	for i := range 500 { // 500 IPs: no aggregation helps
		flood = append(flood, AuditEntry{Time: t0.Add(time.Second), App: "a", Action: "auth_denied",
			IP: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Reason: "channel_signature"})
	}
	runWriter(t, db, AuditWriterConfig{MaxEntries: 100}, flood)
	got, err := db.Audit(AuditFilter{Limit: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 102 || got[0].IP != "10.0.1.243" || got[100].Action != "secret_rotated" ||
		got[101].Action != "app_created" {
		t.Fatalf("%d entries: newest %+v, oldest %+v", len(got), got[0], got[len(got)-1])
	}
}
