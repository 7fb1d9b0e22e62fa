package server

import (
	"context"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// countingHandler counts the error records logged per app_id.
type countingHandler struct {
	mu     sync.Mutex
	errors map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "app_id" {
			h.mu.Lock()
			h.errors[a.Value.String()]++
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *countingHandler) count(app string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.errors[app]
}

// Apps are decoded at first use, so a damaged record no longer stops the
// server starting. It must then fail closed: a disabled app without
// secrets, which refuses sockets (4003) and every signature, including one
// made with the empty secret a record without a secret would give, and is
// logged once. The other apps are unaffected.
func TestDamagedAppRecordIsRefused(t *testing.T) {
	noSecret := testApp()
	noSecret.ID, noSecret.Key, noSecret.Secret = "ns", "ns-key", ""
	ns, err := storage.NewAppRecords(noSecret)
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{apps: []storage.App{testApp()}, raw: append(ns,
		storage.AppRecord{ID: "bad", Key: "bad-key", Value: []byte(`{"id":"bad","key":`)})}
	logs := &countingHandler{errors: map[string]int{}}
	s, err := New(Config{}, store, slog.New(logs))
	if err != nil {
		t.Fatalf("New with damaged records: %v", err)
	}
	ts := serveTest(t, s, store)

	for _, id := range []string{"bad", "ns"} {
		for range 2 {
			c := ts.dialRaw(t, "/app/"+id+"-key", nil)
			c.expect("pusher:error")
			if code := c.expectClose(); code != 4003 {
				t.Fatalf("%s: close %d, want 4003 (app disabled)", id, code)
			}
		}
		for _, secret := range []string{"", "app-secret"} {
			code, body := ts.apiSigned(t, "POST", "/apps/"+id+"/events", nil,
				`{"name":"e","channels":["c"],"data":"x"}`, id+"-key", secret, time.Now())
			if code != 401 {
				t.Fatalf("%s: signed with %q: %d %s, want 401", id, secret, code, body)
			}
		}
		if n := logs.count(id); n != 1 {
			t.Errorf("%s: logged %d times, want once", id, n)
		}
	}
	ts.dial(t) // the healthy app still connects
	if code, body := ts.api(t, "GET", "/apps/app-id/channels", url.Values{}, ""); code != 200 {
		t.Fatalf("healthy app API: %d %s", code, body)
	}
}
