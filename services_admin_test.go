package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// TestWebhookQueuesAdapter: the admin socket's queues come from the
// dispatcher, for one app or every stored app.
func TestWebhookQueuesAdapter(t *testing.T) {
	const target = "https://hooks.example.com/in?token=t"
	db, err := storage.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []storage.App{
		{ID: "a1", Key: "k1", Secret: "s1", Enabled: true, Webhooks: []storage.Webhook{{URL: target}}},
		{ID: "a2", Key: "k2", Secret: "s2", Enabled: true},
	} {
		if err := db.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := db.EnqueueWebhooks([]storage.WebhookEntry{{App: "a1", URL: target,
		Event: []byte(`{"name":"channel_occupied","channel":"c"}`), CreatedAt: now, EnqueuedAt: now}}); err != nil {
		t.Fatal(err)
	}
	d, err := webhooks.New(webhooks.Config{}, db, nil) // not started: nothing is sent
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()); _ = db.Close() })
	q := webhookQueues{d, db}
	all, err := q.WebhookQueues("")
	if err != nil || len(all) != 1 || all[0].App != "a1" || all[0].URL != target {
		t.Fatalf("every app: %+v %v", all, err)
	}
	if none, err := q.WebhookQueues("a2"); err != nil || len(none) != 0 || none == nil {
		t.Fatalf("a2: %+v %v", none, err)
	}
}
