package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// TestWebhookRoutesRejectBadInput covers the error paths of the signed
// webhook routes: a bad limit and a bad replay body get 400 with the API's
// JSON error, and a good request still works.
func TestWebhookRoutesRejectBadInput(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	app := storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}
	if err := db.PutApp(app); err != nil {
		t.Fatal(err)
	}
	d, err := webhooks.New(webhooks.Config{AllowPrivateTargets: true}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	routeWebhooks(srv, d, func(app, action, reason string) {
		_ = db.AppendAudit([]storage.AuditEntry{{Time: time.Now(), App: app, Action: action, Reason: reason}})
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = d.Close(context.Background())
		_ = db.Close()
	})
	srv.MarkReady()

	call := func(method, path string, query url.Values, body string) (int, string) {
		t.Helper()
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("auth_key", app.Key)
		q.Set("auth_timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		q.Set("auth_version", "1.0")
		if body != "" {
			sum := md5.Sum([]byte(body))
			q.Set("body_md5", hex.EncodeToString(sum[:]))
		}
		q.Set("auth_signature", protocol.Sign(app.Secret, protocol.RequestString(method, path, q)))
		req, _ := http.NewRequest(method, hs.URL+path+"?"+q.Encode(), strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tcs := []struct {
		name, method, path string
		query              url.Values
		body               string
		status             int
		want               string
	}{
		{"limit not a number", "GET", "/apps/a1/webhooks/dead_letters", url.Values{"limit": {"x"}}, "", 400, `"error":"limit must be 1-10000"`},
		{"limit too large", "GET", "/apps/a1/webhooks/dead_letters", url.Values{"limit": {"10001"}}, "", 400, `"code":400`},
		{"replay body not JSON", "POST", "/apps/a1/webhooks/dead_letters/replay", nil, "{", 400, `"code":400`},
		{"replay unknown field", "POST", "/apps/a1/webhooks/dead_letters/replay", nil, `{"id":[1]}`, 400, `"code":400`},
		{"list ok", "GET", "/apps/a1/webhooks/dead_letters", url.Values{"limit": {"10"}}, "", 200, `{"dead_letters":[]}`},
		{"replay all ok", "POST", "/apps/a1/webhooks/dead_letters/replay", nil, "{}", 200, `"replayed":0`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(tc.method, tc.path, tc.query, tc.body)
			if code != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want %d with %s", code, body, tc.status, tc.want)
			}
		})
	}
	// The replay that went through is audited, as a change.
	if entries, _ := db.Audit(storage.AuditFilter{Action: "dead_letters_replayed"}); len(entries) != 1 ||
		entries[0].App != "a1" || entries[0].Reason != "0 replayed (HTTP API)" {
		t.Fatalf("audit %+v", entries)
	}
}

// TestWebhookMetricsCountQueueFull: events pushed out of a full queue are
// exported as sockudo_webhook_dropped_total{reason="queue_full"}.
func TestWebhookMetricsCountQueueFull(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A receiver that is down: nothing listens on port 1 of loopback.
	app := storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true,
		Webhooks: []storage.Webhook{{URL: "http://127.0.0.1:1/down", EventTypes: []string{webhooks.ChannelOccupied}}}}
	if err := db.PutApp(app); err != nil {
		t.Fatal(err)
	}
	d, err := webhooks.New(webhooks.Config{AllowPrivateTargets: true, MaxQueueDepth: 100}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Close(context.Background())
		_ = db.Close()
	})
	for i := range 150 {
		d.Emit(webhooks.Event{App: "a1", Name: webhooks.ChannelOccupied, Channel: "anon-" + strconv.Itoa(i)})
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Stats().QueueFull < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", d.Stats())
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newWebhookCollector(d))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sockudo_webhook_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["queue_full"] != 50 || got["not_persisted"] != 0 {
		t.Fatalf("sockudo_webhook_dropped_total = %v, want queue_full 50", got)
	}
}
