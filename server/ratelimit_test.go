package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

func limiter(n int) ratelimit.Limiter {
	return ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: n, Window: time.Minute})
}

func TestWSConnectLimitPerIP(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{WSConnect: limiter(2)}})
	ts.dial(t)
	ts.dial(t)
	c := ts.dialRaw(t, "", nil)
	f := c.expect("pusher:error")
	if !strings.Contains(f.raw, `"code":4100`) {
		t.Fatalf("refusal %s", f.raw)
	}
	if code := c.expectClose(); code != 4100 {
		t.Fatalf("close %d, want 4100", code)
	}
}

// TestAuthFailureLimit: past the per-IP limit on failed channel auths, the
// refusal is a 429 subscription_error and the socket is closed with 4009
// (pusher-js does not reconnect into the same failing auth, §1.4); other
// sockets of the IP keep working until they fail too.
func TestAuthFailureLimit(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{AuthFailures: limiter(2)}})
	status := func(c *testClient, channel string) int {
		c.subscribeAuth(channel, "", "wrong")
		f := c.expect("pusher:subscription_error")
		var d struct{ Status int }
		_ = json.Unmarshal(f.Data, &d)
		return d.Status
	}
	c := ts.dial(t)
	for i, want := range []int{401, 401, 429} {
		if got := status(c, "private-x"+string(rune('a'+i))); got != want {
			t.Fatalf("failure %d: status %d, want %d", i+1, got, want)
		}
	}
	if f := c.expect("pusher:error"); !strings.Contains(f.raw, `"code":4009`) {
		t.Fatalf("error before the close %s", f.raw)
	}
	if code := c.expectClose(); code != 4009 {
		t.Fatalf("close %d, want 4009", code)
	}

	other := ts.dial(t)
	other.subscribe("public-still-works")
	if got := status(other, "private-y"); got != 429 {
		t.Fatalf("status %d, want 429", got)
	}
	if code := other.expectClose(); code != 4009 {
		t.Fatalf("close %d, want 4009", code)
	}
}

func TestAPILimitHeaders(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{APIPublish: limiter(2), APIRead: limiter(100)}})
	body := `{"name":"e","channel":"c","data":"x"}`
	for i := 0; i < 2; i++ {
		if code, b := ts.api(t, "POST", "/apps/app-id/events", nil, body); code != 200 {
			t.Fatalf("publish %d: %d %s", i, code, b)
		}
	}
	// Reads have their own budget.
	if code, _ := ts.api(t, "GET", "/apps/app-id/channels", nil, ""); code != 200 {
		t.Fatal("read refused by the publish budget")
	}
	req := signedRequest(t, ts, "POST", "/apps/app-id/events", body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 429 || h.Get("Retry-After") == "" || h.Get("RateLimit-Limit") != "2" ||
		h.Get("RateLimit-Remaining") != "0" || h.Get("RateLimit-Reset") == "" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("over the limit: %d %v", resp.StatusCode, h)
	}
}

func TestPerAppOverrides(t *testing.T) {
	strict := testApp()
	strict.ID, strict.Key = "strict", "strict-key"
	strict.RateLimits.APIMaxRequests = 1
	strict.RateLimits.WSMaxRequests = 1
	ts := newTestServer(t, Config{Limits: Limits{APIPublish: limiter(100), WSConnect: limiter(100)}}, testApp(), strict)
	body := `{"name":"e","channel":"c","data":"x"}`
	for i := 0; i < 3; i++ { // the default app uses the server-wide 100
		if code, _ := ts.api(t, "POST", "/apps/app-id/events", nil, body); code != 200 {
			t.Fatalf("default app publish %d refused", i)
		}
	}
	if code, _ := ts.apiSigned(t, "POST", "/apps/strict/events", nil, body, "strict-key", "app-secret", time.Now()); code != 200 {
		t.Fatal("first strict publish refused")
	}
	if code, _ := ts.apiSigned(t, "POST", "/apps/strict/events", nil, body, "strict-key", "app-secret", time.Now()); code != 429 {
		t.Fatalf("second strict publish: %d, want 429", code)
	}
	ts.dialRaw(t, "/app/strict-key", nil).expect("pusher:connection_established")
	if code := ts.dialRaw(t, "/app/strict-key", nil).expectClose(); code != 4100 {
		t.Fatalf("second strict socket: close %d, want 4100", code)
	}
	ts.dial(t) // the default app still admits this IP
}

// TestAppPushLimits: push reads an app's push overrides from the live
// config, which a reload replaces; an unknown app has none.
func TestAppPushLimits(t *testing.T) {
	a := testApp()
	a.PushLimits = storage.AppPushLimits{MaxDevicesPerUser: 3, RegistrationsPerMinute: 5}
	ts := newTestServer(t, Config{}, a)
	if got := ts.AppPushLimits("app-id"); got != a.PushLimits {
		t.Fatalf("AppPushLimits = %+v, want %+v", got, a.PushLimits)
	}
	if got := ts.AppPushLimits("nope"); got != (storage.AppPushLimits{}) {
		t.Fatalf("unknown app: %+v", got)
	}
	ts.store.mu.Lock()
	ts.store.apps[0].PushLimits = storage.AppPushLimits{MaxInterestsPerDevice: 7}
	ts.store.mu.Unlock()
	if err := ts.ReloadApps(); err != nil {
		t.Fatal(err)
	}
	if got := ts.AppPushLimits("app-id"); got != (storage.AppPushLimits{MaxInterestsPerDevice: 7}) {
		t.Fatalf("after reload: %+v", got)
	}
}

func TestSigninLimitPerUser(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{Signin: limiter(2)}})
	signin := func(userID string) uint16 {
		c := ts.dial(t)
		ud := `{"id":"` + userID + `"}`
		auth := "app-key:" + protocol.Sign("app-secret", protocol.UserString(c.socketID, ud))
		b, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": auth, "user_data": ud}})
		c.sendJSON(string(b))
		f := c.next()
		if f.Event == "pusher:signin_success" {
			return 0
		}
		return c.expectClose()
	}
	for i := 0; i < 2; i++ {
		if code := signin("u1"); code != 0 {
			t.Fatalf("signin %d within the limit closed with %d", i+1, code)
		}
	}
	if code := signin("u1"); code != 4100 {
		t.Fatalf("third signin of u1: close %d, want 4100", code)
	}
	if signin("u2") != 0 {
		t.Fatal("another user shares u1's budget")
	}
}
