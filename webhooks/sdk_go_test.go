package webhooks

import (
	"testing"

	pusher "github.com/pusher/pusher-http-go/v5"

	"github.com/sockudo/sockudo/storage"
)

// TestValidatedByPusherHTTPGo: the official Go SDK accepts the webhooks
// (key header, signature over the exact body) and reads client_event data
// as a string (its WebhookEvent.Data is a Go string).
func TestValidatedByPusherHTTPGo(t *testing.T) {
	rcv := newReceiver(t)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL}))
	d := startDispatcher(t, testConfig(), db, testOpts{})
	d.Emit(clientEvent("private-c", `{"k":1}`))
	got := rcv.next(t)

	sdk := pusher.Client{AppID: testApp, Key: testKey, Secret: testSecret}
	hook, err := sdk.Webhook(got.header, got.body)
	if err != nil {
		t.Fatalf("pusher-http-go refused the webhook: %v", err)
	}
	if len(hook.Events) != 1 || hook.Events[0].Name != "client_event" || hook.Events[0].Data != `{"k":1}` {
		t.Fatalf("events %+v", hook.Events)
	}
	wrong := sdk
	wrong.Secret = "other"
	if _, err := wrong.Webhook(got.header, got.body); err == nil {
		t.Fatal("a webhook verified with the wrong secret")
	}
}

// TestPushEventValidatedByPusherHTTPGo: a push event, whose object has
// other keys than Pusher's (an object among them), is still a webhook the
// Go SDK verifies and reads (the name; its typed event has no room for the
// fields).
func TestPushEventValidatedByPusherHTTPGo(t *testing.T) {
	rcv := newReceiver(t)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL, EventTypes: []string{PushPublishFinished}}))
	d := startDispatcher(t, testConfig(), db, testOpts{})
	d.Emit(Event{App: testApp, Name: PushPublishFinished, Fields: map[string]any{"publish_id": "pub_1",
		"state": "finished", "counters": map[string]any{"planned": 1, "sent": 1}}})
	got := rcv.next(t)

	sdk := pusher.Client{AppID: testApp, Key: testKey, Secret: testSecret}
	hook, err := sdk.Webhook(got.header, got.body)
	if err != nil {
		t.Fatalf("pusher-http-go refused the webhook: %v", err)
	}
	if len(hook.Events) != 1 || hook.Events[0].Name != PushPublishFinished {
		t.Fatalf("events %+v", hook.Events)
	}
}
