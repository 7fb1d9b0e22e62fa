package webhooks

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestObserverReportsDeliveries: the observer hears a failure and then a
// delivery, with the target's URL redacted.
func TestObserverReportsDeliveries(t *testing.T) {
	rcv := newReceiver(t)
	rcv.respond(http.StatusInternalServerError, nil)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL + "/hook?token=receiver-token"}))
	cfg := testConfig()
	cfg.MaxAttempts = 1
	d := startDispatcher(t, cfg, db, testOpts{})
	var mu sync.Mutex
	var got []Delivery
	d.SetObserver(func(dl Delivery) {
		mu.Lock()
		got = append(got, dl)
		mu.Unlock()
	})
	seen := func(outcome string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, dl := range got {
			if dl.Outcome == outcome {
				return true
			}
		}
		return false
	}
	d.Emit(clientEvent("private-c", "x"))
	waitFor(t, "a failure", func() bool { return seen(DeliveryRetry) || seen(DeliveryGaveUp) })
	waitFor(t, "the dead letter", func() bool { return d.Stats().DeadLettered == 1 })
	rcv.respond(http.StatusOK, nil)
	if _, _, err := d.Replay(testApp, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a delivery", func() bool { return seen(DeliveryDelivered) })
	mu.Lock()
	defer mu.Unlock()
	for _, dl := range got {
		if dl.App != testApp || strings.Contains(dl.URL, "receiver-token") || dl.Events != 1 {
			t.Fatalf("delivery %+v", dl)
		}
	}
}
