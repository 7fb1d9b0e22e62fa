package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// fakePush is a PushFallback that records its calls.
type fakePush struct {
	mu       sync.Mutex // guards the fields below
	checkErr error      // answered by CheckPush
	pushErr  error      // answered by Push
	// sub, when set, is a subscriber Push waits on: it records whether the
	// event had reached it, which it cannot if Push came first.
	sub   *testClient
	calls []pushCall
}

type pushCall struct {
	kind     string // "check" or "push"
	app      string
	channels []string
	raw      string
	online   func(context.Context, []string) ([]bool, error)
	sawEvent string // the event the subscriber had received when Push ran
}

func (f *fakePush) CheckPush(appID string, raw json.RawMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, pushCall{kind: "check", app: appID, raw: string(raw)})
	return f.checkErr
}

func (f *fakePush) Push(_ context.Context, appID string, channels []string, raw json.RawMessage,
	online func(context.Context, []string) ([]bool, error)) error {
	c := pushCall{kind: "push", app: appID, channels: channels, raw: string(raw), online: online}
	f.mu.Lock()
	sub := f.sub
	f.mu.Unlock()
	if sub != nil {
		select {
		case fr := <-sub.frames:
			c.sawEvent = fr.Event
		case <-time.After(waitTimeout):
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.pushErr
}

func (f *fakePush) recorded() []pushCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakePush) kinds() string {
	var k []string
	for _, c := range f.recorded() {
		k = append(k, c.kind)
	}
	return strings.Join(k, ",")
}

// newPushServer starts a test server with f as its PushFallback.
func newPushServer(t *testing.T, f *fakePush) *testServer {
	t.Helper()
	store := &memStore{apps: []storage.App{testApp()}}
	s, err := New(Config{}, store, nil, WithPushFallback(f))
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, s, store)
}

// expectNothingPublished proves that no event reached c before a marker
// event triggered after the refused request.
func expectNothingPublished(t *testing.T, ts *testServer, c *testClient, channel string) {
	t.Helper()
	ts.trigger(t, channel, "marker", "m")
	if f := c.next(); f.Event != "marker" {
		t.Fatalf("a refused request published %s", f.raw)
	}
}

const pushObject = `{"notification":{"title":"Hi","body":"New message"},"when":"offline"}`

func TestTriggerPushIsHandedOnAfterPublishing(t *testing.T) {
	f := &fakePush{}
	ts := newPushServer(t, f)
	c := ts.dial(t)
	c.subscribe("pub")
	f.mu.Lock()
	f.sub = c
	f.mu.Unlock()
	// Whitespace inside the object is kept: push gets the caller's bytes.
	push := `{"notification": {"title":"Hi"} ,"when":"always"}`
	code, body := ts.api(t, "POST", "/apps/app-id/events", nil,
		`{"name":"e","channels":["pub","other","pub"],"data":"x","push":`+push+`}`)
	if code != 200 || body != "{}" {
		t.Fatalf("got %d %s", code, body)
	}
	calls := f.recorded()
	if f.kinds() != "check,push" {
		t.Fatalf("calls %s, want check,push", f.kinds())
	}
	if calls[0].app != "app-id" || calls[0].raw != push {
		t.Fatalf("CheckPush(%q, %s)", calls[0].app, calls[0].raw)
	}
	p := calls[1]
	if p.app != "app-id" || p.raw != push || !slices.Equal(p.channels, []string{"pub", "other"}) {
		t.Fatalf("Push(%q, %q, %s)", p.app, p.channels, p.raw)
	}
	if p.sawEvent != "e" {
		t.Fatalf("Push ran before the event reached the subscriber (it saw %q)", p.sawEvent)
	}
}

func TestTriggerWithoutPushMakesNoCalls(t *testing.T) {
	f := &fakePush{}
	ts := newPushServer(t, f)
	c := ts.dial(t)
	c.subscribe("pub")
	for _, tc := range []struct{ name, path, body, want string }{
		{"trigger", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x"}`, `{}`},
		{"null push is absent", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":null}`, `{}`},
		{"batch", "/apps/app-id/batch_events", `{"batch":[{"name":"e","channel":"pub","data":"x"}]}`, `{}`},
		{"info", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","info":"subscription_count"}`, `{"channels":{"pub":{"subscription_count":1}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := ts.api(t, "POST", tc.path, nil, tc.body); code != 200 || body != tc.want {
				t.Fatalf("got %d %s, want 200 %s", code, body, tc.want)
			}
			c.expect("e")
			if k := f.kinds(); k != "" {
				t.Fatalf("calls %s, want none", k)
			}
		})
	}
}

func TestTriggerPushRefusals(t *testing.T) {
	f := &fakePush{}
	ts := newPushServer(t, f)
	c := ts.dial(t)
	c.subscribe("pub")
	for _, tc := range []struct {
		name, path, body string
		checkErr         error
		want             string // in the error message
		wantCalls        string
	}{
		{"array", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":[1]}`, nil, "push must be a JSON object", ""},
		{"string", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":"{}"}`, nil, "push must be a JSON object", ""},
		{"number", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":1}`, nil, "push must be a JSON object", ""},
		{"bool", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":true}`, nil, "push must be a JSON object", ""},
		{"CheckPush error", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":{"when":"sometimes"}}`,
			errors.New("push.when must be offline or always"), "push.when must be offline or always", "check"},
		{"batch with one bad push", "/apps/app-id/batch_events",
			`{"batch":[{"name":"e","channel":"pub","data":"1","push":` + pushObject + `},{"name":"e","channel":"pub","data":"2","push":[]}]}`,
			nil, "batch[1]: push must be a JSON object", "check"},
		{"batch refused by CheckPush", "/apps/app-id/batch_events",
			`{"batch":[{"name":"e","channel":"pub","data":"1"},{"name":"e","channel":"pub","data":"2","push":{}}]}`,
			errors.New("push.notification is required"), "batch[1]: push.notification is required", "check"},
		{"invalid event with a push", "/apps/app-id/events", `{"name":"e","data":"x","push":{}}`, nil, "missing channel", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.calls, f.checkErr = nil, tc.checkErr
			f.mu.Unlock()
			code, body := ts.api(t, "POST", tc.path, nil, tc.body)
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Code != 400 || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("got %d %s, want 400 with %q", code, body, tc.want)
			}
			if k := f.kinds(); k != tc.wantCalls {
				t.Fatalf("calls %q, want %q", k, tc.wantCalls)
			}
			f.mu.Lock()
			f.checkErr = nil
			f.mu.Unlock()
			expectNothingPublished(t, ts, c, "pub")
		})
	}
}

func TestTriggerPushWithoutFallbackIsRefused(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dial(t)
	c.subscribe("pub")
	for _, tc := range []struct{ name, path, body, want string }{
		{"trigger", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":` + pushObject + `}`,
			`{"error":"push notifications are not enabled","code":400}`},
		{"not an object either", "/apps/app-id/events", `{"name":"e","channel":"pub","data":"x","push":1}`,
			`{"error":"push notifications are not enabled","code":400}`},
		{"batch", "/apps/app-id/batch_events", `{"batch":[{"name":"e","channel":"pub","data":"1"},{"name":"e","channel":"pub","data":"2","push":{}}]}`,
			`{"error":"batch[1]: push notifications are not enabled","code":400}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := ts.api(t, "POST", tc.path, nil, tc.body); code != 400 || body != tc.want {
				t.Fatalf("got %d %s, want 400 %s", code, body, tc.want)
			}
			expectNothingPublished(t, ts, c, "pub")
		})
	}
	// Bodies without push are unchanged, null included.
	if code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":null}`); code != 200 || body != "{}" {
		t.Fatalf("null push: %d %s", code, body)
	}
	c.expect("e")
}

func TestBatchPushesEveryEventAfterPublishingAll(t *testing.T) {
	f := &fakePush{}
	ts := newPushServer(t, f)
	c := ts.dial(t)
	c.subscribe("a")
	c.subscribe("b")
	code, body := ts.api(t, "POST", "/apps/app-id/batch_events", nil, `{"batch":[`+
		`{"name":"e1","channel":"a","data":"1","push":{"n":1}},`+
		`{"name":"e2","channel":"b","data":"2"},`+
		`{"name":"e3","channel":"b","data":"3","push":{"n":3}}]}`)
	if code != 200 || body != "{}" {
		t.Fatalf("got %d %s", code, body)
	}
	for _, e := range []string{"e1", "e2", "e3"} {
		c.expect(e)
	}
	calls := f.recorded()
	if f.kinds() != "check,check,push,push" {
		t.Fatalf("calls %s: every check comes before any push", f.kinds())
	}
	if !slices.Equal(calls[2].channels, []string{"a"}) || calls[2].raw != `{"n":1}` ||
		!slices.Equal(calls[3].channels, []string{"b"}) || calls[3].raw != `{"n":3}` {
		t.Fatalf("pushes %+v %+v", calls[2], calls[3])
	}
}

func TestTriggerPushFailureKeepsTheAnswer(t *testing.T) {
	f := &fakePush{pushErr: errors.New("storage closed")}
	ts := newPushServer(t, f)
	c := ts.dial(t)
	c.subscribe("pub")
	code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":`+pushObject+`}`)
	if code != 200 || body != "{}" {
		t.Fatalf("got %d %s: a failed push does not undo the published event", code, body)
	}
	c.expect("e")
	// One refused and one accepted, for the counts.
	ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":[]}`)
	f.mu.Lock()
	f.pushErr = nil
	f.mu.Unlock()
	ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":{}}`)

	rec := httptest.NewRecorder()
	ts.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`sockudo_trigger_push_total{result="failed"} 1`,
		`sockudo_trigger_push_total{result="refused"} 1`,
		`sockudo_trigger_push_total{result="accepted"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestTriggerPushOnline(t *testing.T) {
	f := &fakePush{}
	ts := newPushServer(t, f)
	signedIn := ts.dial(t)
	signedIn.signin(`{"id":"u1"}`)
	member := ts.dial(t) // in the presence channel, not signed in
	member.subscribeAuth("presence-room", `{"user_id":"u2"}`, "app-secret")
	member.expect("pusher_internal:subscription_succeeded")
	other := ts.dial(t) // u3 signed in, then signed out by closing
	other.signin(`{"id":"u3"}`)
	_ = other.ws.NetConn().Close()
	<-other.closed

	users := []string{"u1", "u2", "u3", "u4"}
	for _, tc := range []struct {
		name     string
		channels string
		want     []bool
	}{
		{"presence channel", `["presence-room"]`, []bool{true, true, false, false}},
		{"presence channel among others", `["pub","presence-room"]`, []bool{true, true, false, false}},
		{"public channel", `["pub"]`, []bool{true, false, false, false}},
		{"another presence channel", `["presence-lobby"]`, []bool{true, false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.calls = nil
			f.mu.Unlock()
			code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channels":`+tc.channels+`,"data":"x","push":{}}`)
			if code != 200 {
				t.Fatalf("got %d %s", code, body)
			}
			calls := f.recorded()
			if len(calls) != 2 || calls[1].online == nil {
				t.Fatalf("calls %s", f.kinds())
			}
			// The signout of u3 is asynchronous to the closed socket: poll.
			deadline := time.Now().Add(waitTimeout)
			for {
				got, err := calls[1].online(context.Background(), users)
				if err == nil && slices.Equal(got, tc.want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("online(%q) = %v, %v; want %v", users, got, err, tc.want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// A second call (the push service paging) answers the same.
			if got, err := calls[1].online(context.Background(), users[:2]); err != nil || !slices.Equal(got, tc.want[:2]) {
				t.Fatalf("second call: %v, %v", got, err)
			}
		})
	}
	member.expect("e")
	member.expect("e")
}

// TestTriggerPushAdversarial: the push object is bounded only by the body
// limit, and its content is not parsed beyond being valid JSON.
func TestTriggerPushAdversarial(t *testing.T) {
	f := &fakePush{}
	ts := newPushServer(t, f)

	huge := `{"name":"e","channel":"pub","data":"x","push":{"pad":"` + strings.Repeat("x", maxBodyBytes) + `"}}`
	if code, body := ts.api(t, "POST", "/apps/app-id/events", nil, huge); code != 413 {
		t.Fatalf("huge push: %d %s, want 413", code, body)
	}
	// Below the body limit, the push object is not held to the event data
	// limit (10 KB): it is push's to bound.
	large := `{"pad":"` + strings.Repeat("x", 100<<10) + `"}`
	if code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":`+large+`}`); code != 200 {
		t.Fatalf("large push: %d %s", code, body)
	}

	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
	if code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":`+deep+`}`); code != 200 {
		t.Fatalf("deep push: %d %s", code, body)
	}
	calls := f.recorded()
	if len(calls) != 2 || calls[0].raw != deep || calls[1].raw != deep {
		t.Fatalf("the deep object was not passed through as is (%s)", f.kinds())
	}
	// Past encoding/json's nesting limit the body is invalid JSON, as any
	// body that deep is today.
	deeper := strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001)
	if code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"pub","data":"x","push":{"a":`+deeper+`}}`); code != 400 {
		t.Fatalf("too deep: %d %s", code, body)
	}
}
