package server

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

type recordingSink struct {
	mu     sync.Mutex
	events []Event
	ch     chan struct{}
}

func (r *recordingSink) Emit(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

// summary lists the events as "name channel detail".
func (r *recordingSink) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		s := e.Name + " " + e.Channel
		switch e.Name {
		case EventMemberAdded, EventMemberRemoved:
			s += " " + e.UserID
		case EventSubscriptionCount:
			s += fmt.Sprint(" ", e.SubscriptionCount)
		case EventClientEvent:
			s += " " + e.Event + " " + e.Data + " " + e.UserID
		}
		out = append(out, s)
	}
	return out
}

func TestLifecycleEvents(t *testing.T) {
	ts := newTestServer(t, Config{})
	sink := &recordingSink{ch: make(chan struct{}, 1)}
	ts.SetEventSink(sink)
	a, b := ts.dial(t), ts.dial(t)
	a.subscribe("pub")
	b.subscribe("pub")
	a.subscribe("cache-c")
	a.expect("pusher:cache_miss")
	a.subscribeAuth("presence-p", `{"user_id":"u1"}`, "app-secret")
	a.expect("pusher_internal:subscription_succeeded")
	b.subscribeAuth("presence-p", `{"user_id":"u2"}`, "app-secret")
	b.expect("pusher_internal:subscription_succeeded")
	b.sendJSON(`{"event":"client-x","channel":"presence-p","data":{"k":1}}`)
	a.expect("pusher_internal:member_added")
	a.expect("client-x")
	b.sendJSON(`{"event":"pusher:unsubscribe","data":{"channel":"pub"}}`)
	b.ping()
	_ = a.ws.NetConn().Close()
	waitFor(t, "vacated events", func() bool { return len(sink.summary()) >= 14 })

	want := []string{
		"channel_occupied pub", "subscription_count pub 1",
		"subscription_count pub 2",
		"channel_occupied cache-c", "subscription_count cache-c 1", "cache_miss cache-c",
		"channel_occupied presence-p", "member_added presence-p u1",
		"member_added presence-p u2",
		`client_event presence-p client-x {"k":1} u2`,
		"subscription_count pub 1",
	}
	got := sink.summary()
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("event %d = %q, want %q\nall: %q", i, got[i], w, got)
		}
	}
	// a's close: pub and cache-c vacate, u1 leaves presence-p (order of
	// channels is the socket's map order).
	rest := map[string]bool{}
	for _, s := range got[len(want):] {
		rest[s] = true
	}
	for _, w := range []string{"channel_vacated pub", "channel_vacated cache-c", "member_removed presence-p u1"} {
		if !rest[w] {
			t.Fatalf("missing %q in %q", w, got[len(want):])
		}
	}
}

type recordingAudit struct {
	mu      sync.Mutex
	records []AuditRecord
}

func (r *recordingAudit) Record(a AuditRecord) {
	r.mu.Lock()
	r.records = append(r.records, a)
	r.mu.Unlock()
}

func (r *recordingAudit) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.records {
		out = append(out, a.Action+" "+a.App+" "+a.Channel+" "+a.Reason)
	}
	return out
}

func TestAuditRecords(t *testing.T) {
	app := testApp()
	app.AllowedOrigins = []string{"https://good.example.com"}
	ts := newTestServer(t, Config{}, app)
	audit := &recordingAudit{}
	ts.SetAuditLog(audit)
	c := ts.dial(t)
	c.subscribeAuth("private-a", "", "wrong")
	c.expect("pusher:subscription_error")
	ts.dialRaw(t, "", http.Header{"Origin": {"https://evil.example.com"}}).expectClose()
	ts.apiSigned(t, "GET", "/apps/app-id/channels", nil, "", "app-key", "wrong", time.Now())
	got := audit.actions()
	want := []string{
		"auth_denied app-id private-a channel_signature",
		"origin_refused app-id  https://evil.example.com",
		"api_signature_denied app-id  signature",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit %q, want %q", got, want)
	}
	for _, r := range audit.records {
		if r.IP != "127.0.0.1" {
			t.Fatalf("audit ip %q", r.IP)
		}
	}
}
