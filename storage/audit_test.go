package storage

import (
	"context"
	"path/filepath"
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
	err = db.AppendAudit([]AuditEntry{
		{Time: t0, App: "a", Action: "auth_denied", IP: "127.0.0.1", Channel: "private-x", Reason: "channel_signature"},
		{Time: t0.Add(time.Minute), App: "b", Action: "origin_refused"},
		{Time: t0.Add(2 * time.Minute), App: "a", Action: "rate_limited", Reason: "ws_connect"},
	})
	if err != nil {
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
	w := NewAuditWriter(db, 16, func(err error) { t.Error(err) })
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
	if int64(len(got))+w.Dropped() != 20 {
		t.Fatalf("stored %d + dropped %d != 20", len(got), w.Dropped())
	}
	if got[0].Time.IsZero() {
		t.Fatal("time not stamped")
	}
}
