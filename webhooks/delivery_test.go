package webhooks

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestSSRFRefused: with private targets not allowed, a receiver on
// 127.0.0.1 (by address or by a name resolving to it) is never contacted,
// and the events become dead letters without retries.
func TestSSRFRefused(t *testing.T) {
	rcv := newReceiver(t)
	byName := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL + "/ip"}, storage.Webhook{URL: byName + "/name"}))
	d := startDispatcher(t, Config{Batching: Batching{Disabled: true}}, db, testOpts{})
	d.Emit(clientEvent("private-c", "x"))
	waitFor(t, "two dead letters", func() bool { return d.Stats().DeadLettered == 2 })
	dead, _ := d.DeadLetters(testApp, 0)
	for _, dl := range dead {
		if !strings.Contains(dl.Reason, "target address not allowed") {
			t.Errorf("dead letter reason %q", dl.Reason)
		}
		if strings.Contains(dl.Reason, "/ip") || strings.Contains(dl.Reason, "/name") {
			t.Errorf("reason quotes the URL: %q", dl.Reason)
		}
	}
	if s := d.Stats(); s.Retried != 0 {
		t.Errorf("refused address retried: %+v", s)
	}
	if n := len(rcv.reqs); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
}

// TestRedirectNotFollowed: a 3xx is a failure; the Location is not visited.
func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t)
	rcv := newReceiver(t)
	rcv.respond(http.StatusFound, http.Header{"Location": {target.URL + "/elsewhere"}})
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL}))
	d := startDispatcher(t, testConfig(), db, testOpts{})
	d.Emit(clientEvent("private-c", "x"))
	rcv.next(t)
	waitFor(t, "the dead letter", func() bool { return d.Stats().DeadLettered == 1 })
	dead, _ := d.DeadLetters(testApp, 0)
	if len(dead) != 1 || !strings.Contains(dead[0].Reason, "redirects are not followed") {
		t.Fatalf("dead letters = %+v", dead)
	}
	if n := len(target.reqs); n != 0 {
		t.Fatal("the redirect was followed")
	}
}
