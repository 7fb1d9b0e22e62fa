package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func TestAPIErrors(t *testing.T) {
	off := testApp()
	off.ID, off.Key, off.Secret, off.Enabled = "off", "off-key", "off-secret", false
	ts := newTestServer(t, Config{}, testApp(), off)
	big := strings.Repeat("x", 10241)
	many := make([]string, 101)
	for i := range many {
		many[i] = "c" + strings.Repeat("x", i%5)
	}
	manyJSON, _ := json.Marshal(many)
	tcs := []struct {
		name   string
		method string
		path   string
		query  url.Values
		body   string
		key    string
		secret string
		when   time.Time
		status int
	}{
		{name: "unknown app", method: "GET", path: "/apps/nope/channels", status: 401}, // like a wrong key: ids stay private
		{name: "bad secret", method: "GET", path: "/apps/app-id/channels", secret: "wrong", status: 401},
		{name: "key of another app", method: "GET", path: "/apps/app-id/channels", key: "off-key", secret: "off-secret", status: 401},
		{name: "stale timestamp", method: "GET", path: "/apps/app-id/channels", when: time.Now().Add(-601 * time.Second), status: 401},
		{name: "disabled app", method: "GET", path: "/apps/off/channels", key: "off-key", secret: "off-secret", status: 403},
		{name: "bad json", method: "POST", path: "/apps/app-id/events", body: `{`, status: 400},
		{name: "no channels", method: "POST", path: "/apps/app-id/events", body: `{"name":"e","data":"x"}`, status: 400},
		{name: "data too large", method: "POST", path: "/apps/app-id/events", body: `{"name":"e","channel":"c","data":"` + big + `"}`, status: 413},
		{name: "too many channels", method: "POST", path: "/apps/app-id/events", body: `{"name":"e","channels":` + string(manyJSON) + `,"data":"x"}`, status: 400},
		{name: "event name too long", method: "POST", path: "/apps/app-id/events", body: `{"name":"` + strings.Repeat("e", 201) + `","channel":"c","data":"x"}`, status: 400},
		{name: "reserved event name", method: "POST", path: "/apps/app-id/events", body: `{"name":"pusher:x","channel":"c","data":"x"}`, status: 400},
		{name: "bad channel name", method: "POST", path: "/apps/app-id/events", body: `{"name":"e","channel":"a b","data":"x"}`, status: 400},
		{name: "bad socket_id", method: "POST", path: "/apps/app-id/events", body: `{"name":"e","channel":"c","data":"x","socket_id":"abc"}`, status: 400},
		{name: "encrypted with another channel", method: "POST", path: "/apps/app-id/events", body: `{"name":"e","channels":["private-encrypted-a","b"],"data":"x"}`, status: 400},
		{name: "batch too large", method: "POST", path: "/apps/app-id/batch_events", body: `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"name":"e","channel":"c","data":"x"},`, 11), ",") + `]}`, status: 400},
		{name: "user_count without presence prefix", method: "GET", path: "/apps/app-id/channels", query: url.Values{"info": {"user_count"}}, status: 400},
		{name: "user_count on a public channel", method: "GET", path: "/apps/app-id/channels/pub", query: url.Values{"info": {"user_count"}}, status: 400},
		{name: "users of a public channel", method: "GET", path: "/apps/app-id/channels/pub/users", status: 400},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			key, secret, when := tc.key, tc.secret, tc.when
			if key == "" {
				key = "app-key"
			}
			if secret == "" {
				secret = "app-secret"
			}
			if when.IsZero() {
				when = time.Now()
			}
			status, body := ts.apiSigned(t, tc.method, tc.path, tc.query, tc.body, key, secret, when)
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if status != tc.status || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || e.Code != tc.status {
				t.Fatalf("got %d %s, want %d with a JSON error body", status, body, tc.status)
			}
		})
	}
}

func TestAPIBodyMD5Mismatch(t *testing.T) {
	ts := newTestServer(t, Config{})
	// Sign one body, send another.
	q := url.Values{"auth_key": {"app-key"}, "auth_timestamp": {"1"}}
	_ = q
	status, _ := ts.apiSigned(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channel":"c","data":"x"}`, "app-key", "app-secret", time.Now())
	if status != 200 {
		t.Fatalf("control request failed: %d", status)
	}
	req, _ := http.NewRequest("POST", "http://"+ts.addr+"/apps/app-id/events?auth_key=app-key&auth_timestamp=1&auth_version=1.0&body_md5=00&auth_signature=00", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestAPIChannelsAndInfo(t *testing.T) {
	ts := newTestServer(t, Config{})
	if _, body := ts.api(t, "GET", "/apps/app-id/channels", nil, ""); body != `{"channels":{}}` {
		t.Fatalf("empty channels %s", body)
	}
	a, b := ts.dial(t), ts.dial(t)
	a.subscribe("pub")
	b.subscribe("pub")
	a.subscribeAuth("presence-p", `{"user_id":"1"}`, "app-secret")
	a.expect("pusher_internal:subscription_succeeded")

	tcs := []struct {
		name  string
		path  string
		query url.Values
		want  string
	}{
		{"list", "/apps/app-id/channels", nil, `{"channels":{"presence-p":{},"pub":{}}}`},
		{"prefix", "/apps/app-id/channels", url.Values{"filter_by_prefix": {"pu"}}, `{"channels":{"pub":{}}}`},
		{"user_count", "/apps/app-id/channels", url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, `{"channels":{"presence-p":{"user_count":1}}}`},
		{"subscription_count", "/apps/app-id/channels", url.Values{"info": {"subscription_count"}}, `{"channels":{"presence-p":{"subscription_count":1},"pub":{"subscription_count":2}}}`},
		{"one channel", "/apps/app-id/channels/pub", url.Values{"info": {"subscription_count"}}, `{"occupied":true,"subscription_count":2}`},
		{"presence channel", "/apps/app-id/channels/presence-p", url.Values{"info": {"user_count,subscription_count"}}, `{"occupied":true,"user_count":1,"subscription_count":1}`},
		{"empty channel", "/apps/app-id/channels/none", nil, `{"occupied":false}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := ts.api(t, "GET", tc.path, tc.query, ""); code != 200 || body != tc.want {
				t.Fatalf("got %d %s, want %s", code, body, tc.want)
			}
		})
	}

	code, body := ts.api(t, "POST", "/apps/app-id/events", nil, `{"name":"e","channels":["pub","presence-p"],"data":"x","info":"subscription_count,user_count"}`)
	if code != 200 || body != `{"channels":{"pub":{"subscription_count":2},"presence-p":{"user_count":1,"subscription_count":1}}}` {
		t.Fatalf("trigger info %d %s", code, body)
	}
	code, body = ts.api(t, "POST", "/apps/app-id/batch_events", nil, `{"batch":[{"name":"e","channel":"pub","data":"1","info":"subscription_count"},{"name":"e","channel":"x","data":"2"}]}`)
	if code != 200 || body != `{"batch":[{"subscription_count":2},{}]}` {
		t.Fatalf("batch info %d %s", code, body)
	}
	a.expect("e")
	a.expect("e") // the trigger to presence-p, then pub from the batch (order per channel)
	// PHP style: single "channel" and an escaped query string are accepted.
	if code, body := ts.api(t, "POST", "/apps/app-id/events", url.Values{"x": {"a b,c"}}, `{"name":"php","channel":"pub","data":"y"}`); code != 200 {
		t.Fatalf("php trigger %d %s", code, body)
	}
	b.expect("e")
	b.expect("e")
	b.expect("php")
}

func TestReadiness(t *testing.T) {
	ts := newTestServer(t, Config{})
	get := func(p string) int {
		resp, err := http.Get("http://" + ts.addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/up") != 200 || get("/live") != 200 {
		t.Fatal("not ready")
	}
	ts.ready.Store(false) // as before main calls MarkReady
	if get("/up") != 503 || get("/live") != 200 {
		t.Fatal("ready while starting")
	}
	ts.MarkReady()
	ts.draining.Store(true) // as during Shutdown
	if get("/up") != 503 || get("/live") != 200 {
		t.Fatal("ready while draining")
	}
	ts.draining.Store(false)
	ts.store.mu.Lock()
	ts.store.down = true
	ts.store.mu.Unlock()
	if get("/up") != 503 || get("/live") != 200 {
		t.Fatal("readiness ignores storage")
	}
}

func TestHandleSigned(t *testing.T) {
	store := &memStore{apps: []storage.App{testApp()}}
	s, err := New(Config{}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.HandleSigned("GET /apps/{app_id}/extra", func(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
		WriteJSON(w, http.StatusOK, []byte(`{"app":"`+appID+`"}`))
	})
	ts := serveTest(t, s, store)
	if code, body := ts.api(t, "GET", "/apps/app-id/extra", nil, ""); code != 200 || body != `{"app":"app-id"}` {
		t.Fatalf("extra route %d %s", code, body)
	}
	if code, _ := ts.apiSigned(t, "GET", "/apps/app-id/extra", nil, "", "app-key", "bad", time.Now()); code != 401 {
		t.Fatalf("extra route unsigned: %d", code)
	}
}

func TestSecretRotation(t *testing.T) {
	app := testApp().RotateSecret("new-secret", time.Hour, time.Now())
	expired := testApp()
	expired.ID, expired.Key = "exp", "exp-key"
	expired = expired.RotateSecret("new-secret", time.Hour, time.Now().Add(-2*time.Hour))
	ts := newTestServer(t, Config{}, app, expired)
	tcs := []struct {
		name, path, key, secret string
		want                    int
	}{
		{"new secret", "/apps/app-id/channels", "app-key", "new-secret", 200},
		{"previous secret within grace", "/apps/app-id/channels", "app-key", "app-secret", 200},
		{"unrelated secret", "/apps/app-id/channels", "app-key", "nope", 401},
		{"previous secret after grace", "/apps/exp/channels", "exp-key", "app-secret", 401},
		{"new secret after grace", "/apps/exp/channels", "exp-key", "new-secret", 200},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := ts.apiSigned(t, "GET", tc.path, nil, "", tc.key, tc.secret, time.Now()); code != tc.want {
				t.Fatalf("got %d %s, want %d", code, body, tc.want)
			}
		})
	}
	// Channel auth accepts both while the grace lasts.
	c := ts.dial(t)
	c.subscribeAuth("private-old", "", "app-secret")
	c.expect("pusher_internal:subscription_succeeded")
	c.subscribeAuth("private-new", "", "new-secret")
	c.expect("pusher_internal:subscription_succeeded")
}

func TestWrongMethodAndUnknownPathAreJSON(t *testing.T) {
	ts := newTestServer(t, Config{})
	tcs := []struct {
		method, path string
		status       int
	}{
		{"GET", "/apps/app-id/events", 405},
		{"DELETE", "/apps/app-id/channels", 405},
		{"POST", "/apps/app-id/channels/x/users", 405},
		{"GET", "/nope", 404},
		{"GET", "/apps/app-id/nope", 404},
	}
	for _, tc := range tcs {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+ts.addr+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error string `json:"error"`
			}
			if resp.StatusCode != tc.status || json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error == "" {
				t.Fatalf("got %d, want %d with a JSON error", resp.StatusCode, tc.status)
			}
		})
	}
}

func TestReloadClosesSocketsOfDisabledAndDeletedApps(t *testing.T) {
	other := testApp()
	other.ID, other.Key = "other", "other-key"
	ts := newTestServer(t, Config{}, testApp(), other)
	keep := ts.dial(t)
	gone := ts.dialRaw(t, "/app/other-key", nil)
	gone.expect("pusher:connection_established")

	// Disable app-id and delete other.
	off := testApp()
	off.Enabled = false
	ts.store.mu.Lock()
	ts.store.apps = []storage.App{off}
	ts.store.mu.Unlock()
	if err := ts.ReloadApps(); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[*testClient]uint16{keep: 4003, gone: 4001} {
		for f := c.next(); f.Event != "pusher:error"; f = c.next() {
		}
		if code := c.expectClose(); code != want {
			t.Fatalf("close %d, want %d", code, want)
		}
	}
}
