package webhooks

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func TestClassify(t *testing.T) {
	for status, want := range map[int]outcome{
		200: delivered, 201: delivered, 204: delivered, 299: delivered,
		301: giveUp, 302: giveUp, 400: giveUp, 401: giveUp, 403: giveUp, 404: giveUp, 410: giveUp, 413: giveUp,
		408: retry, 425: retry, 429: retry, 500: retry, 502: retry, 503: retry, 504: retry,
	} {
		if got := classify(status); got != want {
			t.Errorf("classify(%d) = %d, want %d", status, got, want)
		}
	}
}

// failingFixture is a dispatcher on a fake clock whose receiver answers
// status; the receiver stamps requests with the fake time.
func failingFixture(t *testing.T, cfg Config, status int, header http.Header) (*Dispatcher, *receiver, *fakeClock) {
	t.Helper()
	rcv := newReceiver(t)
	fc := newFakeClock()
	rcv.clock = fc
	rcv.respond(status, header)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL}))
	d := startDispatcher(t, cfg, db, testOpts{clock: fc})
	return d, rcv, fc
}

// TestBackoffSchedule follows one event through a receiver that always
// answers 503: attempts at 0, 1, 3, 7, 15, 31, 63, 123, 183, 243 s and a
// last one when the 300 s retry window ends; then a dead letter.
func TestBackoffSchedule(t *testing.T) {
	var logs logBuffer
	rcv := newReceiver(t)
	fc := newFakeClock()
	rcv.clock = fc
	rcv.respond(http.StatusServiceUnavailable, nil)
	db, _ := openDB(t, app(storage.Webhook{URL: rcv.URL}))
	d := startDispatcher(t, testConfig(), db, testOpts{clock: fc, log: &logs})

	start := fc.Now()
	d.Emit(clientEvent("private-c", "x"))
	var offsets []time.Duration
	for {
		r := rcv.next(t)
		offsets = append(offsets, r.at.Sub(start))
		if r.at.Sub(start) >= DefaultRetryMax {
			break
		}
		// The loop now sleeps until its next attempt: one armed timer.
		next := fc.waitArmed(t, 1)[0]
		fc.AdvanceTo(next)
	}
	var want []time.Duration
	for _, s := range []int{0, 1, 3, 7, 15, 31, 63, 123, 183, 243, 300} {
		want = append(want, time.Duration(s)*time.Second)
	}
	if !reflect.DeepEqual(offsets, want) {
		t.Fatalf("attempts at %v\nwant        %v", offsets, want)
	}
	waitFor(t, "the dead letter", func() bool { return d.Stats().DeadLettered == 1 })
	dead, _ := d.DeadLetters(testApp, 0)
	if len(dead) != 1 || dead[0].Attempts != 11 || dead[0].Reason != "gave up after 11 attempts: status 503 Service Unavailable" {
		t.Fatalf("dead letter = %+v", dead)
	}
	if s := d.Stats(); s.Failed != 11 || s.Retried != 10 || s.QueueDepth != 0 || s.Sent != 0 {
		t.Fatalf("stats = %+v", s)
	}
	// Eleven failures, but warnings are rate limited (one per 30 s).
	if n := strings.Count(logs.String(), "webhook delivery failed"); n < 2 || n > 8 {
		t.Errorf("%d failure warnings logged, want rate limited:\n%s", n, logs.String())
	}
}

func TestMaxAttempts(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAttempts = 3
	d, rcv, fc := failingFixture(t, cfg, http.StatusInternalServerError, nil)
	d.Emit(clientEvent("private-c", "x"))
	for i := range 3 {
		rcv.next(t)
		if i < 2 {
			fc.AdvanceTo(fc.waitArmed(t, 1)[0])
		}
	}
	waitFor(t, "the dead letter", func() bool { return d.Stats().DeadLettered == 1 })
	if dead, _ := d.DeadLetters(testApp, 0); len(dead) != 1 || dead[0].Attempts != 3 {
		t.Fatalf("dead letters = %+v", dead)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	d, rcv, fc := failingFixture(t, testConfig(), http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}})
	start := fc.Now()
	d.Emit(clientEvent("private-c", "x"))
	rcv.next(t)
	if next := fc.waitArmed(t, 1)[0]; next.Sub(start) != 7*time.Second {
		t.Fatalf("next attempt after %s, want the 7 s of Retry-After (not the 1 s backoff)", next.Sub(start))
	}
	if q := d.Queues(testApp); len(q) != 1 || q[0].Failures != 1 || !q[0].NextAttempt.Equal(start.Add(7*time.Second)) ||
		q[0].Pending != 1 {
		t.Fatalf("Queues = %+v", q)
	}
	rcv.respond(http.StatusOK, nil)
	fc.Advance(7 * time.Second)
	if r := rcv.next(t); r.at.Sub(start) != 7*time.Second {
		t.Fatalf("retried after %s", r.at.Sub(start))
	}
	waitFor(t, "delivery", func() bool { return d.Stats().Sent == 1 })
}

// TestNoRetryOn4xx: a 400 is the receiver's final word; the event becomes a
// dead letter at once and the next event is not delayed.
func TestNoRetryOn4xx(t *testing.T) {
	d, rcv, _ := failingFixture(t, testConfig(), http.StatusBadRequest, nil)
	d.Emit(clientEvent("private-c", "refused"))
	rcv.next(t)
	waitFor(t, "the dead letter", func() bool { return d.Stats().DeadLettered == 1 })
	rcv.respond(http.StatusOK, nil)
	d.Emit(clientEvent("private-c", "next"))
	// No clock advance: no backoff after a 4xx.
	if r := rcv.next(t); *r.Events[0].Data != "next" {
		t.Fatalf("got %s, want the next event (the refused one is not retried)", r.body)
	}
	if s := d.Stats(); s.Retried != 0 || s.Failed != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// TestFailingTargetDoesNotDelayOthers: one target hangs until its timeout;
// another app's target is served meanwhile.
func TestFailingTargetDoesNotDelayOthers(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	fast := newReceiver(t)
	other := storage.App{ID: "other", Key: "other-key", Secret: "s", Enabled: true,
		Webhooks: []storage.Webhook{{URL: fast.URL}}}
	db, _ := openDB(t, app(storage.Webhook{URL: slow.URL}), other)
	cfg := testConfig()
	cfg.MaxConcurrency = 2
	d := startDispatcher(t, cfg, db, testOpts{})
	d.Emit(clientEvent("private-c", "stuck"))
	for i := range 5 {
		d.Emit(Event{App: "other", Name: ChannelOccupied, Channel: "c" + string(rune('0'+i))})
	}
	if got := fast.nextEvents(t, 5); len(got) != 5 {
		t.Fatalf("other target got %v", got)
	}
}

// TestRetriesPacedPerTarget: a failing target's attempts are also held to
// RecoveryRate, so a receiver coming back is not flooded. With one token
// per 4 s the third attempt waits for its token (at 5 s) after its 2 s
// backoff ran out (at 3 s).
func TestRetriesPacedPerTarget(t *testing.T) {
	cfg := testConfig()
	cfg.RecoveryRate = 0.25
	d, rcv, fc := failingFixture(t, cfg, http.StatusServiceUnavailable, nil)
	start := fc.Now()
	d.Emit(clientEvent("private-c", "x"))
	rcv.next(t)
	fc.AdvanceTo(fc.waitArmed(t, 1)[0]) // backoff 1 s; the bucket is still full
	if at := rcv.next(t).at.Sub(start); at != time.Second {
		t.Fatalf("second attempt at %s, want 1s", at)
	}
	backoff := fc.waitArmed(t, 1)[0]
	if backoff.Sub(start) != 3*time.Second {
		t.Fatalf("backoff ends at %s, want 3s", backoff.Sub(start))
	}
	fc.AdvanceTo(backoff)
	paced := fc.waitArmed(t, 1)[0]
	if paced.Sub(start) != 5*time.Second {
		t.Fatalf("pacing ends at %s, want 5s (one token per 4 s after the attempt at 1 s)", paced.Sub(start))
	}
	fc.AdvanceTo(paced)
	if at := rcv.next(t).at.Sub(start); at != 5*time.Second {
		t.Fatalf("third attempt at %s, want 5s", at)
	}
}
