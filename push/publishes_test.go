package push_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/storage"
)

// fakeSender stands for the providers: it records each send and answers
// with answer (nil: Delivered).
type fakeSender struct {
	mu     sync.Mutex
	sent   []string // device ids, in order
	msgs   []*push.Message
	answer func(d *storage.Device, n int) push.Result
	// gate, when set, blocks each send until it is closed.
	gate chan struct{}
	// started is told of each send, when set.
	started chan string
}

func (f *fakeSender) send(ctx context.Context, c *push.LiveCredential, d *storage.Device, m *push.Message) push.Result {
	if f.started != nil {
		f.started <- d.ID
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, m)
	f.sent = append(f.sent, d.ID)
	n := 0
	for _, id := range f.sent {
		if id == d.ID {
			n++
		}
	}
	answer := f.answer
	f.mu.Unlock()
	if answer != nil {
		return answer(d, n)
	}
	return push.Result{Outcome: push.Delivered, Status: 201}
}

func (f *fakeSender) devices() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.sent)
	sort.Strings(out)
	return out
}

// events records what the pipeline reports.
type events struct {
	mu          sync.Mutex
	finished    []storage.PushPublish
	invalidated []string
	unhealthy   []string
}

func (e *events) PublishFinished(p storage.PushPublish) {
	e.mu.Lock()
	e.finished = append(e.finished, p)
	e.mu.Unlock()
}

func (e *events) DeviceInvalidated(app string, d storage.Device, reason string) {
	e.mu.Lock()
	e.invalidated = append(e.invalidated, d.ID+":"+reason)
	e.mu.Unlock()
}

func (e *events) CredentialUnhealthy(app string, p push.CredentialProvider, v uint64, reason string) {
	e.mu.Lock()
	e.unhealthy = append(e.unhealthy, fmt.Sprintf("%s/v%d:%s", p, v, reason))
	e.mu.Unlock()
}

type pubEnv struct {
	*env
	sender *fakeSender
	events *events
}

// newPubEnv is an env whose pipeline sends through a fakeSender, with a
// Web Push credential for "app".
func newPubEnv(t *testing.T, cfg push.Config, apps testApps) *pubEnv {
	t.Helper()
	return newPubEnvCfg(t, cfg, apps)
}

// newPubEnvTB is newPubEnv for benchmarks, without per-app limits.
func newPubEnvTB(tb testing.TB) *pubEnv { return newPubEnvCfg(tb, push.Config{}, testApps{}) }

func newPubEnvCfg(t testing.TB, cfg push.Config, apps testApps) *pubEnv {
	t.Helper()
	f := &fakeSender{}
	ev := &events{}
	cfg.CredentialKey = bytes.Repeat([]byte{7}, 32)
	e := newEnvApps(t, cfg, apps, func(d *push.Deps) {
		d.Sender = f.send
		d.Events = ev
		d.ClientBuilder = func(push.OpenedCredential) (any, error) { return "client", nil }
	})
	if _, err := e.svc.Credentials().GenerateVAPID("app", "mailto:ops@example.com", push.CredentialActor{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	return &pubEnv{env: e, sender: f, events: ev}
}

// device registers a web device through the server API.
func (e *pubEnv) device(id, user string, interests, channels []string) {
	e.t.Helper()
	n := len(id) * 7919
	for _, c := range id {
		n = n*31 + int(c)
	}
	body := map[string]any{"id": id, "platform": "web", "subscription": webSubscription(e.t, n)}
	if user != "" {
		body["user_id"] = user
	}
	if interests != nil {
		body["interests"] = interests
	}
	if channels != nil {
		body["channels"] = channels
	}
	r := e.do("POST", "/apps/app/push/devices", "", body)
	if r.status != 201 && r.status != 200 {
		e.t.Fatalf("register %s: %d %s", id, r.status, r.raw)
	}
}

func (e *pubEnv) publish(path string, body any) resp {
	e.t.Helper()
	return e.do("POST", "/apps/app/push/publishes"+path, "", body)
}

// drain dispatches until nothing is due now.
func (e *pubEnv) drain() {
	e.t.Helper()
	for range 100 {
		n, err := e.svc.DispatchOnce(context.Background(), 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	e.t.Fatal("still dispatching after 100 rounds")
}

func (e *pubEnv) status(id string) resp {
	e.t.Helper()
	r := e.do("GET", "/apps/app/push/publishes/"+id, "", nil)
	e.expect(r, 200, "")
	return r
}

func counter(r resp, name string) int {
	c, _ := r.body["counters"].(map[string]any)
	n, _ := c[name].(float64)
	return int(n)
}

var note = map[string]any{"title": "Hi", "body": "There"}

// TestPublishReachesExactlyTheRightDevices publishes to each recipient kind
// and checks that each device in it gets one notification and no other
// device gets any.
func TestPublishReachesExactlyTheRightDevices(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", []string{"news", "sport"}, []string{"private-orders"})
	e.device("d2", "alice", []string{"news"}, nil)
	e.device("d3", "bob", []string{"sport"}, []string{"private-orders"})
	e.device("d4", "", nil, nil)

	for _, tc := range []struct {
		name, path string
		body       map[string]any
		want       []string
	}{
		{"interests, deduplicated", "/interests", map[string]any{"interests": []string{"news", "sport"}}, []string{"d1", "d2", "d3"}},
		{"users", "/users", map[string]any{"users": []string{"alice"}}, []string{"d1", "d2"}},
		{"devices, unknown ids skipped", "/devices", map[string]any{"device_ids": []string{"d4", "nope"}}, []string{"d4"}},
		{"channels", "/channels", map[string]any{"channels": []string{"private-orders"}}, []string{"d1", "d3"}},
		{"unified recipient", "", map[string]any{"recipient": map[string]any{"users": []string{"bob"}}}, []string{"d3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sender.mu.Lock()
			e.sender.sent, e.sender.msgs = nil, nil
			e.sender.mu.Unlock()
			tc.body["notification"] = note
			r := e.publish(tc.path, tc.body)
			e.expect(r, 202, "")
			id := r.body["publish_id"].(string)
			if r.body["publishId"] != id || r.body["state"] != "queued" || int(r.body["expected_recipients"].(float64)) != len(tc.want) {
				t.Fatalf("answer %s", r.raw)
			}
			e.drain()
			if got := e.sender.devices(); !slices.Equal(got, tc.want) {
				t.Fatalf("sent to %v, want %v", got, tc.want)
			}
			// What the service worker reads: the notification's mapping.
			if p := string(e.sender.msgs[0].Web.Payload); p != `{"notification":{"title":"Hi","body":"There"}}` {
				t.Fatalf("web payload %s", p)
			}
			st := e.status(id)
			if st.body["state"] != "succeeded" || counter(st, "sent") != len(tc.want) || counter(st, "planned") != len(tc.want) {
				t.Fatalf("status %s", st.raw)
			}
		})
	}
	// Every finished publish was reported once.
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	if len(e.events.finished) != 5 {
		t.Fatalf("%d publish_finished events, want 5", len(e.events.finished))
	}
}

func TestPublishSkipsPlatformsWithoutPayload(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("w1", "", []string{"news"}, nil)
	// Only an APNs block: web devices are not planned at all.
	r := e.publish("/interests", map[string]any{"interests": []string{"news"}, "apns": map[string]any{"aps": map[string]any{"alert": "x"}}})
	e.expect(r, 202, "")
	if r.body["expected_recipients"].(float64) != 0 || r.body["state"] != "succeeded" {
		t.Fatalf("answer %s", r.raw)
	}
}

// TestScheduledPublishFiresOnTimeAfterRestart schedules a publish, restarts
// the service on the same database, and checks that it is listed while it
// waits and sent when its time comes, not before.
func TestScheduledPublishFiresOnTimeAfterRestart(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", nil, nil)
	at := e.clock.Now().Add(time.Hour)
	r := e.publish("/users", map[string]any{"users": []string{"alice"}, "notification": note, "send_at": at.Unix()})
	e.expect(r, 202, "")
	id := r.body["publish_id"].(string)
	if r.body["state"] != "scheduled" || int64(r.body["send_at"].(float64)) != at.Unix() {
		t.Fatalf("answer %s", r.raw)
	}

	// A second service on the same database, as after a restart.
	f2 := &fakeSender{}
	e2, err := push.New(push.Config{CredentialKey: bytes.Repeat([]byte{7}, 32)}, push.Deps{DB: e.db, Apps: testApps{}, Now: e.clock.Now,
		Sender: f2.send, ClientBuilder: func(push.OpenedCredential) (any, error) { return "client", nil }})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(59 * time.Minute)
	if n, _ := e2.DispatchOnce(context.Background(), 100); n != 0 {
		t.Fatalf("%d deliveries claimed a minute early", n)
	}
	l := e.do("GET", "/apps/app/push/publishes?state=scheduled", "", nil)
	e.expect(l, 200, "")
	if items := l.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["publish_id"] != id {
		t.Fatalf("scheduled list %s", l.raw)
	}
	e.clock.Add(time.Minute)
	if n, _ := e2.DispatchOnce(context.Background(), 100); n != 1 || !slices.Equal(f2.devices(), []string{"d1"}) {
		t.Fatalf("at send_at: claimed %d, sent %v", n, f2.devices())
	}
	if st := e.status(id); st.body["state"] != "succeeded" {
		t.Fatalf("status %s", st.raw)
	}
}

// TestRetriesHonourRetryAfterThenDeadLetter: a 429 with Retry-After waits
// that long; transient failures back off until MaxAttempts, then the
// delivery is a dead letter that can be replayed.
func TestRetriesHonourRetryAfterThenDeadLetter(t *testing.T) {
	e := newPubEnv(t, push.Config{Dispatch: push.DispatchConfig{MaxAttempts: 3, RetryInitial: time.Second, RetryMax: 4 * time.Second}}, testApps{})
	e.device("quota", "u", nil, nil)
	e.device("broken", "u", nil, nil)
	e.sender.answer = func(d *storage.Device, n int) push.Result {
		switch {
		case d.ID == "quota" && n == 1:
			return push.Result{Outcome: push.ProviderQuota, Status: 429, Reason: "TooManyRequests", RetryAfter: 30 * time.Second}
		case d.ID == "broken":
			return push.Result{Outcome: push.ProviderTransient, Status: 503, Reason: "ServiceUnavailable"}
		}
		return push.Result{Outcome: push.Delivered}
	}
	r := e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	e.expect(r, 202, "")
	id := r.body["publish_id"].(string)
	e.drain()
	e.clock.Add(29 * time.Second)
	e.drain()
	if got := e.sender.devices(); countOf(got, "quota") != 1 {
		t.Fatalf("quota device retried before its Retry-After: %v", got)
	}
	e.clock.Add(2 * time.Second)
	e.drain()
	e.clock.Add(10 * time.Second)
	e.drain()
	st := e.status(id)
	if st.body["state"] != "partially_succeeded" || counter(st, "sent") != 1 || counter(st, "failed") != 1 || counter(st, "retried") != 3 {
		t.Fatalf("status %s", st.raw)
	}
	if st.body["errors_by_reason"].(map[string]any)["ServiceUnavailable"] != 1.0 {
		t.Fatalf("errors_by_reason %s", st.raw)
	}
	dl := e.do("GET", "/apps/app/push/dead_letters", "", nil)
	e.expect(dl, 200, "")
	dead := dl.body["dead_letters"].([]any)
	if len(dead) != 1 || dead[0].(map[string]any)["device_id"] != "broken" {
		t.Fatalf("dead letters %s", dl.raw)
	}
	// Replay once the device's provider is back.
	e.sender.answer = nil
	rp := e.do("POST", "/apps/app/push/dead_letters/replay", "", map[string]any{})
	e.expect(rp, 200, "")
	e.drain()
	if st := e.status(id); st.body["state"] != "succeeded" || counter(st, "sent") != 2 {
		t.Fatalf("after replay %s", st.raw)
	}
}

func TestCancelPublish(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	for i := range 4 {
		e.device(fmt.Sprintf("d%d", i), "u", nil, nil)
	}
	// Scheduled: cancelled, never sent.
	r := e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note, "send_at": e.clock.Now().Add(time.Hour).Unix()})
	sched := r.body["publish_id"].(string)
	c := e.do("DELETE", "/apps/app/push/publishes/"+sched, "", nil)
	e.expect(c, 200, "")
	if c.body["state"] != "cancelled" {
		t.Fatalf("cancel %s", c.raw)
	}
	e.clock.Add(2 * time.Hour)
	e.drain()
	if len(e.sender.devices()) != 0 {
		t.Fatalf("a cancelled publish was sent to %v", e.sender.devices())
	}
	e.expect(e.do("DELETE", "/apps/app/push/publishes/"+sched, "", nil), 409, "already_finished")
	e.expect(e.do("DELETE", "/apps/app/push/publishes/pub_nope", "", nil), 404, "")

	// Dispatching: 409 unless partial, which stops what is not sent yet.
	r = e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	id := r.body["publish_id"].(string)
	if n, _ := e.svc.DispatchOnce(context.Background(), 1); n != 1 {
		t.Fatal("first delivery not claimed")
	}
	e.expect(e.do("DELETE", "/apps/app/push/publishes/"+id, "", nil), 409, "already_dispatching")
	c = e.do("DELETE", "/apps/app/push/publishes/"+id+"?partial=true", "", nil)
	e.expect(c, 200, "")
	if c.body["state"] != "partially_cancelled" || counter(c, "cancelled") != 3 {
		t.Fatalf("partial cancel %s", c.raw)
	}
	e.drain()
	if got := e.sender.devices(); len(got) != 1 {
		t.Fatalf("after a partial cancel %d devices were sent to", len(got))
	}
}

// TestGoneDevicesAndSpikeGuard: a device the provider calls gone is
// removed (and reported) once its publish shows no spike; when most
// devices of a publish come back gone the guard keeps them all.
func TestGoneDevicesAndSpikeGuard(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("dead", "u", nil, nil)
	e.device("alive", "u", nil, nil)
	e.sender.answer = func(d *storage.Device, _ int) push.Result {
		if d.ID == "alive" {
			return push.Result{Outcome: push.Delivered}
		}
		return push.Result{Outcome: push.DeviceGone, Status: 410, Reason: "Unregistered"}
	}
	r := e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	e.drain()
	st := e.status(r.body["publish_id"].(string))
	if counter(st, "invalidated") != 1 || counter(st, "sent") != 1 {
		t.Fatalf("status %s", st.raw)
	}
	if _, err := e.db.Device("app", "dead"); err == nil {
		t.Fatal("the gone device is still stored")
	}
	if e.events.invalidated[0] != "dead:Unregistered" {
		t.Fatalf("invalidated events %v", e.events.invalidated)
	}

	// 60 devices, every one "gone": a credential or environment mistake.
	for i := range 60 {
		e.device(fmt.Sprintf("s%02d", i), "many", nil, nil)
	}
	e.sender.answer = func(*storage.Device, int) push.Result {
		return push.Result{Outcome: push.DeviceGone, Status: 410, Reason: "Unregistered"}
	}
	e.publish("/users", map[string]any{"users": []string{"many"}, "notification": note})
	e.drain()
	page, _, err := e.db.ListDevices("app", storage.DeviceFilter{UserID: "many"}, "", 1000)
	if err != nil || len(page) != 60 {
		t.Fatalf("the guard let %d of 60 devices go (err %v)", 60-len(page), err)
	}
	if len(e.events.unhealthy) != 1 || !strings.Contains(e.events.unhealthy[0], "invalidation spike") {
		t.Fatalf("unhealthy events %v", e.events.unhealthy)
	}
}

// TestCredentialProblemFailsWithoutTouchingDevices: the provider refusing
// our credential fails the deliveries, keeps the devices, and reports the
// credential once.
func TestCredentialProblemFailsWithoutTouchingDevices(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	for i := range 3 {
		e.device(fmt.Sprintf("d%d", i), "u", nil, nil)
	}
	e.sender.answer = func(*storage.Device, int) push.Result {
		return push.Result{Outcome: push.CredentialProblem, Status: 403, Reason: "BadJwtToken"}
	}
	r := e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	e.drain()
	st := e.status(r.body["publish_id"].(string))
	if st.body["state"] != "failed" || counter(st, "failed") != 3 {
		t.Fatalf("status %s", st.raw)
	}
	if len(e.events.unhealthy) != 1 || e.events.unhealthy[0] != "webpush/v1:BadJwtToken" {
		t.Fatalf("unhealthy events %v", e.events.unhealthy)
	}
	if page, _, _ := e.db.ListDevices("app", storage.DeviceFilter{UserID: "u"}, "", 10); len(page) != 3 {
		t.Fatalf("%d devices left, want 3", len(page))
	}
}

func TestPublishLimits(t *testing.T) {
	clock := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rps := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 2, Window: time.Second, Now: func() time.Time { return clock }})
	defer rps.Close()
	e := newPubEnv(t, push.Config{Publish: push.PublishConfig{MaxRecipients: 3, PerSecond: 2, PerDay: 5},
		Limits: push.Limits{Publishes: rps}}, testApps{})
	for i := range 4 {
		e.device(fmt.Sprintf("d%d", i), "u", nil, nil)
	}
	for i := range 2 {
		e.device(fmt.Sprintf("v%d", i), "v", nil, nil)
	}
	// Recipients per publish: 4 devices > 3.
	e.expect(e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note}), 400, "too_many_recipients")
	// Publishes per second: the third within a second is refused.
	e.expect(e.publish("/users", map[string]any{"users": []string{"v"}, "notification": note}), 202, "")
	r := e.publish("/users", map[string]any{"users": []string{"v"}, "notification": note})
	e.expect(r, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Limit") != "2" || r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("429 headers %v", r.header)
	}
	l := e.do("GET", "/apps/app/push/publishes?state=rate_limited", "", nil)
	if items := l.body["items"].([]any); len(items) != 2 {
		t.Fatalf("rate_limited publishes %s, want the recipients and the rps refusals", l.raw)
	}
}

// TestDailyNotificationQuota counts devices reached, not publishes: a
// publish that does not fit what is left of the day is refused whole, and
// the count survives a new Window over the same store (a restart).
func TestDailyNotificationQuota(t *testing.T) {
	counters, err := storage.Open(filepath.Join(t.TempDir(), "counters.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer counters.Close()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	daily := ratelimit.NewWindow(counters, 0, 24*time.Hour, func() time.Time { return now })
	e := newPubEnv(t, push.Config{Publish: push.PublishConfig{PerDay: 5}, Limits: push.Limits{Notifications: daily}}, testApps{})
	for i := range 3 {
		e.device(fmt.Sprintf("d%d", i), "u", nil, nil)
	}
	e.expect(e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note}), 202, "")
	r := e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	e.expect(r, 429, "rate_limited")
	if r.header.Get("RateLimit-Remaining") != "2" || r.header.Get("Retry-After") == "" {
		t.Fatalf("429 headers %v", r.header)
	}
	if err := daily.Close(); err != nil {
		t.Fatal(err)
	}
	again := ratelimit.NewWindow(counters, 0, 24*time.Hour, func() time.Time { return now })
	if d := again.AllowN("push_notifications:app", 0, 5); d.Remaining != 2 {
		t.Fatalf("after a restart %d left, want 2", d.Remaining)
	}
	lim := e.do("GET", "/apps/app/push/limits", "", nil)
	e.expect(lim, 200, "")
	if lim.body["limits"].(map[string]any)["notifications_per_day"] != 5.0 {
		t.Fatalf("limits %s", lim.raw)
	}
}

func TestIdempotencyAndDryRun(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "u", nil, nil)
	body := map[string]any{"users": []string{"u"}, "notification": note}
	req := func(key string) resp {
		req := httptest.NewRequest("POST", "/apps/app/push/publishes/users", strings.NewReader(`{"users":["u"],"notification":{"title":"t"}}`))
		req.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, req)
		return resp{status: w.Code, raw: w.Body.String()}
	}
	a, b := req("k1"), req("k1")
	if a.status != 202 || a.raw != b.raw {
		t.Fatalf("same key: %d %s / %d %s", a.status, a.raw, b.status, b.raw)
	}
	if c := req("k2"); c.raw == a.raw {
		t.Fatal("another key answered the same publish")
	}
	body["dry_run"] = true
	d := e.publish("/users", body)
	e.expect(d, 200, "")
	rendered := d.body["rendered"].(map[string]any)
	if d.body["expected_recipients"] != 1.0 || rendered["web"] == nil || rendered["apns"] == nil {
		t.Fatalf("dry run %s", d.raw)
	}
	e.drain()
	if n := len(e.sender.devices()); n != 2 {
		t.Fatalf("%d sends, want 2 (k1 once, k2 once, the dry run none)", n)
	}
}

// A retry with the same Idempotency-Key is answered before the limits:
// it sends nothing, so it spends none of the app's budget.
func TestIdempotentRetryCostsNoBudget(t *testing.T) {
	clock := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	rps := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 1, Window: time.Second, Now: func() time.Time { return clock }})
	defer rps.Close()
	e := newPubEnv(t, push.Config{Limits: push.Limits{Publishes: rps}}, testApps{})
	e.device("d1", "u", nil, nil)
	send := func(key string) resp {
		req := httptest.NewRequest("POST", "/apps/app/push/publishes/users", strings.NewReader(`{"users":["u"],"notification":{"title":"t"}}`))
		req.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, req)
		return resp{status: w.Code, raw: w.Body.String()}
	}
	first := send("k1")
	for range 3 {
		if again := send("k1"); again.status != 202 || again.raw != first.raw {
			t.Fatalf("retry: %d %s, want 202 %s", again.status, again.raw, first.raw)
		}
	}
	if other := send("k2"); other.status != 429 {
		t.Fatalf("a new publish over the limit: %d %s", other.status, other.raw)
	}
}

// TestRunResumesAfterCrash: deliveries a dead process had claimed are sent
// at once by the next one, and nothing else is sent twice.
func TestRunResumesAfterCrash(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	for i := range 20 {
		e.device(fmt.Sprintf("d%02d", i), "u", nil, nil)
	}
	e.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	// The crashed process: it claimed 5 (with a long lease) and died.
	if ds, err := e.db.ClaimPushDeliveries(e.clock.Now(), 5, time.Hour); err != nil || len(ds) != 5 {
		t.Fatalf("claim %d %v", len(ds), err)
	}
	started := make(chan string, 20)
	e.sender.started = started
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Run(ctx) }()
	for range 20 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 20 sent", len(e.sender.devices()))
		}
	}
	cancel()
	<-done
	if got := e.sender.devices(); len(slices.Compact(got)) != 20 || len(got) != 20 {
		t.Fatalf("sent %d (%d distinct), want 20 once each", len(got), len(slices.Compact(got)))
	}
	l := e.do("GET", "/apps/app/push/publishes", "", nil)
	if st := l.body["items"].([]any)[0].(map[string]any); st["state"] != "succeeded" {
		t.Fatalf("after Run: %s", l.raw)
	}
}

func TestPublishRefusals(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	big := strings.Repeat("x", push.MaxPublishBody)
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"unknown kind", "/segments", map[string]any{"notification": note}, 404, "not_found"},
		{"not JSON", "/users", "{", 400, "invalid_json"},
		{"too large", "/users", `{"users":["u"],"notification":{"title":"` + big + `"}}`, 413, "body_too_large"},
		{"no recipients", "/users", map[string]any{"users": []string{}, "notification": note}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.publish(tc.path, tc.body)
			e.expect(r, tc.status, tc.code)
		})
	}
	r := e.do("GET", "/apps/app/push/publishes?state=bogus", "", nil)
	e.expect(r, 400, "invalid_state")
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// BenchmarkPublishFanOut1000 is the pipeline's own cost per delivery:
// accept a publish to 1,000 web devices, claim, render, send to a sender
// that answers at once, record. Storage fsyncs included.
func BenchmarkPublishFanOut1000(b *testing.B) {
	e := newPubEnvTB(b)
	for i := range 1000 {
		e.device(fmt.Sprintf("d%04d", i), "", []string{"all"}, nil)
	}
	body := map[string]any{"interests": []string{"all"}, "notification": note}
	b.ResetTimer()
	for range b.N {
		r := e.publish("/interests", body)
		if r.status != 202 {
			b.Fatalf("publish %d %s", r.status, r.raw)
		}
		for {
			n, err := e.svc.DispatchOnce(context.Background(), 256)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/delivery")
}

// TestPublishesInTheAuditTrail: publishes, schedules, cancels, limit trips,
// invalidations and finishes are chained entries of the app's trail.
func TestPublishesInTheAuditTrail(t *testing.T) {
	var trail *push.AuditTrail
	f := &fakeSender{}
	rps := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 3, Window: time.Hour})
	defer rps.Close()
	cfg := push.Config{CredentialKey: bytes.Repeat([]byte{7}, 32), Limits: push.Limits{Publishes: rps}}
	e := newEnvApps(t, cfg, testApps{}, func(d *push.Deps) {
		trail = push.NewAuditTrail(d.DB, 0, nil)
		d.Trail, d.Sender = trail.Record, f.send
		d.ClientBuilder = func(push.OpenedCredential) (any, error) { return "client", nil }
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); trail.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pe := &pubEnv{env: e, sender: f, events: &events{}}
	if _, err := e.svc.Credentials().GenerateVAPID("app", "mailto:ops@example.com", push.CredentialActor{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	pe.device("gone", "u", nil, nil)
	f.answer = func(*storage.Device, int) push.Result {
		return push.Result{Outcome: push.DeviceGone, Reason: "Unregistered"}
	}
	pe.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	pe.drain()
	pe.device("later", "u", nil, nil) // the first one is gone
	r := pe.publish("/users", map[string]any{"users": []string{"u"}, "notification": note, "send_at": e.clock.Now().Add(time.Hour).Unix()})
	e.do("DELETE", "/apps/app/push/publishes/"+r.body["publish_id"].(string)+"?auth_key=app-key", "", nil)
	pe.publish("/users", map[string]any{"users": []string{"u"}, "notification": note})
	pe.publish("/users", map[string]any{"users": []string{"u"}, "notification": note}) // the 4th: refused
	trail.Flush()

	a := e.do("GET", "/apps/app/push/audit?limit=100", "", nil)
	e.expect(a, 200, "")
	var actions []string
	for _, it := range a.body["items"].([]any) {
		actions = append(actions, it.(map[string]any)["action"].(string))
	}
	for _, want := range []string{"credential.put", "publish.create", "device.invalidated", "publish.finish", "publish.schedule",
		"publish.cancel", "limit.exceeded"} {
		if !slices.Contains(actions, want) {
			t.Errorf("no %s entry in %v", want, actions)
		}
	}
	v := e.do("GET", "/apps/app/push/audit/verify", "", nil)
	if v.body["ok"] != true {
		t.Fatalf("verify %s", v.raw)
	}
}
