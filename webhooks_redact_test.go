package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// TestWebhookRoutesRedactURLs: the signed webhook API answers an app's
// backend, so the targets and dead letters it lists show no userinfo, query
// or fragment of the target URL (receivers' tokens live there).
func TestWebhookRoutesRedactURLs(t *testing.T) {
	const target = "http://user:pa55@127.0.0.1:1/in?token=t0ken-in-query#frag"
	db, err := storage.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	app := storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true, Webhooks: []storage.Webhook{{URL: target}}}
	if err := db.PutApp(app); err != nil {
		t.Fatal(err)
	}
	// One dead letter for the target, made the way the dispatcher makes them.
	entry := storage.WebhookEntry{App: "a1", URL: target, Event: []byte(`{"name":"channel_occupied","channel":"c"}`),
		CreatedAt: time.Now(), EnqueuedAt: time.Now()}
	if err := db.EnqueueWebhooks([]storage.WebhookEntry{entry}); err != nil {
		t.Fatal(err)
	}
	queued, err := db.WebhookHead("a1", target, 10)
	if err != nil || len(queued) != 1 {
		t.Fatalf("queued %v %v", queued, err)
	}
	if _, err := db.DeadLetterWebhooks(queued, "status 410 Gone", time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	// Not started (no Run): nothing is ever sent to the target.
	d, err := webhooks.New(webhooks.Config{AllowPrivateTargets: true}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	routeWebhooks(srv, d, func(app, action, reason string) {})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = d.Close(context.Background())
		_ = db.Close()
	})
	srv.MarkReady()

	for _, path := range []string{"/apps/a1/webhooks", "/apps/a1/webhooks/dead_letters"} {
		t.Run(path, func(t *testing.T) {
			q := url.Values{"auth_key": {app.Key}, "auth_timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "auth_version": {"1.0"}}
			q.Set("auth_signature", protocol.Sign(app.Secret, protocol.RequestString("GET", path, q)))
			resp, err := http.Get(hs.URL + path + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body := string(b)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"url":"http://127.0.0.1:1/in"`) {
				t.Fatalf("status %d, want 200 with the redacted url: %s", resp.StatusCode, body)
			}
			for _, secret := range []string{"t0ken", "pa55", "frag"} {
				if strings.Contains(body, secret) {
					t.Fatalf("%q leaks in %s", secret, body)
				}
			}
		})
	}
	// The operator's view (the dispatcher, which the admin socket serves) keeps the whole URL.
	dead, err := d.DeadLetters("a1", 0)
	if err != nil || len(dead) != 1 || dead[0].URL != target {
		t.Fatalf("operator view %+v %v", dead, err)
	}
}
