package push_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/storage"
)

// beams sends a request to the Beams face with auth as the Authorization
// header ("" for none); body is JSON-encoded unless it is a string.
func (e *env) beams(method, path, auth string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, req)
	r := resp{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if len(r.raw) > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &r.body); err != nil {
			e.t.Fatalf("%s %s: body %q is not JSON: %v", method, path, r.raw, err)
		}
	}
	return r
}

const (
	beamsPub  = "/publish_api/v1/instances/app/publishes"
	bearerKey = "Bearer " + testBeamsKey
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// TestBeamsPublishReachesExactlyTheRightDevices publishes through each
// Beams publish route, with the Beams payload blocks, and checks who gets
// what, the answer and the status through the native API.
func TestBeamsPublishReachesExactlyTheRightDevices(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", []string{"news", "sport"}, nil)
	e.device("d2", "alice", []string{"news"}, nil)
	e.device("d3", "bob", []string{"sport"}, nil)
	e.device("d4", "", nil, nil)
	web := map[string]any{"notification": map[string]any{"title": "Hello", "body": "from Beams", "deep_link": "https://example.com/x"},
		"data": map[string]any{"k": "v"}}
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		want       []string
	}{
		{"interests", "/interests", map[string]any{"interests": []string{"news", "sport"}}, []string{"d1", "d2", "d3"}},
		{"legacy path (Go SDK)", "", map[string]any{"interests": []string{"sport"}}, []string{"d1", "d3"}},
		{"users", "/users", map[string]any{"users": []string{"alice"}}, []string{"d1", "d2"}},
		{"unknown interest", "/interests", map[string]any{"interests": []string{"nobody"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sender.mu.Lock()
			e.sender.sent, e.sender.msgs = nil, nil
			e.sender.mu.Unlock()
			tc.body["web"] = web
			tc.body["webhookUrl"] = "https://example.com/hook" // Beams' field: ignored
			r := e.beams("POST", beamsPub+tc.path, bearerKey, tc.body)
			e.expect(r, 200, "")
			id, _ := r.body["publishId"].(string)
			if id == "" || len(r.body) != 1 {
				t.Fatalf("answer %s, want {publishId}", r.raw)
			}
			e.drain()
			if got := e.sender.devices(); !slices.Equal(got, tc.want) {
				t.Fatalf("sent to %v, want %v", got, tc.want)
			}
			if len(tc.want) > 0 {
				var got, want any
				_ = json.Unmarshal(e.sender.msgs[0].Web.Payload, &got)
				b, _ := json.Marshal(web)
				_ = json.Unmarshal(b, &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("web payload %s, want the block as given %s", e.sender.msgs[0].Web.Payload, b)
				}
			}
			st := e.status(id)
			if counter(st, "sent") != len(tc.want) {
				t.Fatalf("status %s", st.raw)
			}
		})
	}
	if !e.audit.has(push.ActionDeviceRegistered) {
		t.Fatal("no device audit")
	}
}

// TestBeamsPublishRefusals: keys, instances and bodies the Beams publish
// API refuses, each in Beams' error shape.
func TestBeamsPublishRefusals(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", []string{"news"}, nil)
	note := map[string]any{"web": map[string]any{"notification": map[string]any{"title": "x"}}}
	body := func(kv ...any) map[string]any {
		m := map[string]any{"web": note["web"]}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	huge := strings.Repeat("a", push.MaxPublishBody)
	for _, tc := range []struct {
		name, path, auth string
		body             any
		status           int
		code             string
	}{
		{"no key", "/interests", "", body("interests", []string{"news"}), 401, "Unauthorized"},
		{"wrong key", "/interests", "Bearer " + strings.Repeat("0", len(testBeamsKey)), body("interests", []string{"news"}), 401, "Unauthorized"},
		{"key as Basic", "/interests", "Basic " + testBeamsKey, body("interests", []string{"news"}), 401, "Unauthorized"},
		{"key with a suffix", "/interests", bearerKey + "x", body("interests", []string{"news"}), 401, "Unauthorized"},
		{"the app secret", "/interests", "Bearer app-secret", body("interests", []string{"news"}), 401, "Unauthorized"},
		{"bad JSON", "/interests", bearerKey, `{"interests":["news"]`, 400, ""},
		{"no interests", "/interests", bearerKey, body("interests", []string{}), 400, ""},
		{"101 interests", "/interests", bearerKey, body("interests", names("i", 101)), 400, ""},
		{"100 interests", "/interests", bearerKey, body("interests", names("i", 100)), 200, ""},
		{"bad interest name", "/interests", bearerKey, body("interests", []string{"no spaces"}), 400, ""},
		{"1001 users", "/users", bearerKey, body("users", names("u", 1001)), 400, ""},
		{"1000 users", "/users", bearerKey, body("users", names("u", 1000)), 200, ""},
		{"users on the interests route", "/interests", bearerKey, body("users", []string{"alice"}), 400, ""},
		{"no payload", "/interests", bearerKey, map[string]any{"interests": []string{"news"}}, 400, ""},
		{"web block not an object", "/interests", bearerKey, map[string]any{"interests": []string{"news"}, "web": "x"}, 400, ""},
		{"oversize body", "/interests", bearerKey, `{"interests":["news"],"web":{"data":{"x":"` + huge + `"}}}`, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.beams("POST", beamsPub+tc.path, tc.auth, tc.body), tc.status, tc.code)
		})
	}
	t.Run("instances without a key", func(t *testing.T) {
		for _, app := range []string{"other", "nope"} {
			r := e.beams("POST", "/publish_api/v1/instances/"+app+"/publishes/interests", bearerKey, body("interests", []string{"news"}))
			e.expect(r, 404, "Not Found")
		}
	})
	if !e.audit.has(push.ActionBeamsAuthDenied) {
		t.Fatal("refused keys were not audited")
	}
	if strings.Contains(e.seen.String(), testBeamsKey) {
		t.Fatal("an answer carries the Beams key")
	}
}

// TestBeamsKeyLimits: wrong keys spend the per-IP auth-failure budget
// (then 429), the previous key works during its grace period, and Beams
// publishes spend the app's publish budget like native ones.
func TestBeamsKeyLimits(t *testing.T) {
	pub := map[string]any{"interests": []string{"news"}, "web": map[string]any{"notification": map[string]any{"title": "x"}}}
	t.Run("auth failures per IP", func(t *testing.T) {
		lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 2, Window: time.Minute})
		e := newPubEnv(t, push.Config{Limits: push.Limits{AuthFailures: lim}}, testApps{})
		e.expect(e.beams("POST", beamsPub+"/interests", "Bearer wrong", pub), 401, "Unauthorized")
		e.expect(e.beams("DELETE", "/user_api/v1/instances/app/users/alice", "", nil), 401, "Unauthorized")
		r := e.beams("POST", beamsPub+"/interests", "Bearer wrong", pub)
		e.expect(r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("no Retry-After: %v", r.header)
		}
		// The right key still works; successes are not counted.
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 200, "")
	})
	t.Run("previous key during grace", func(t *testing.T) {
		apps := testApps{beams: map[string][]string{"app": {"NEW-KEY-0123456789abcdef0123456789ab", testBeamsKey}}}
		e := newPubEnv(t, push.Config{}, apps)
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 200, "")
		e.expect(e.beams("POST", beamsPub+"/interests", "Bearer NEW-KEY-0123456789abcdef0123456789ab", pub), 200, "")
	})
	t.Run("publishes per second", func(t *testing.T) {
		rps := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 1, Window: time.Second})
		e := newPubEnv(t, push.Config{Limits: push.Limits{Publishes: rps}}, testApps{})
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 200, "")
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 429, "rate_limited")
	})
}

// TestBeamsDeleteUser removes exactly the user's devices.
func TestBeamsDeleteUser(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", nil, nil)
	e.device("d2", "alice", nil, nil)
	e.device("d3", "bob", nil, nil)
	const users = "/user_api/v1/instances/app/users/"
	e.expect(e.beams("DELETE", users+"alice", "Bearer wrong", nil), 401, "Unauthorized")
	r := e.beams("DELETE", users+"alice", bearerKey, nil)
	e.expect(r, 200, "")
	if r.raw != "" {
		t.Fatalf("answer %q, want none (Beams)", r.raw)
	}
	for id, want := range map[string]int{"d1": 404, "d2": 404, "d3": 200} { // before bob's delete below
		e.expect(e.do("GET", "/apps/app/push/devices/"+id, "", nil), want, "")
	}
	// The path the Go, PHP, Python and Ruby SDKs use.
	e.expect(e.beams("DELETE", "/customer_api/v1/instances/app/users/bob", "Bearer wrong", nil), 401, "Unauthorized")
	e.expect(e.beams("DELETE", "/customer_api/v1/instances/app/users/bob", bearerKey, nil), 200, "")
	e.expect(e.do("GET", "/apps/app/push/devices/d3", "", nil), 404, "")
	// Unknown users are fine; the other instance has no key.
	e.expect(e.beams("DELETE", users+"nobody", bearerKey, nil), 200, "")
	e.expect(e.beams("DELETE", "/user_api/v1/instances/other/users/bob", bearerKey, nil), 404, "Not Found")
	e.expect(e.beams("DELETE", users+strings.Repeat("u", 300), bearerKey, nil), 400, "")
}

// beamsToken is a Beams user token as the server SDKs' generateToken
// makes it (HS256 JWT: iss, sub, exp), with the given issuer instance,
// expiry and key.
func beamsToken(t *testing.T, user, instance string, exp time.Time, key string) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"iat": exp.Add(-24 * time.Hour).Unix(), "exp": exp.Unix(), "iss": push.BeamsIssuer(instance), "sub": user})
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// webToken is the web SDK's device token: btoa(JSON.stringify(sub)).
func webToken(t *testing.T, n int) string {
	b, _ := json.Marshal(webSubscription(t, n))
	return base64.StdEncoding.EncodeToString(b)
}

const beamsDev = "/device_api/v1/instances/app"

// TestBeamsWebSDKSequence replays what the web SDK sends (start: VAPID
// key, register; interests; metadata; setUserId with a token; stop:
// delete) and checks each answer's shape and that publishes reach the
// device by interest and by user.
func TestBeamsWebSDKSequence(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	pre := e.beams("OPTIONS", beamsDev+"/devices/web", "", nil)
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight %d %v", pre.status, pre.header)
	}
	r := e.beams("GET", beamsDev+"/web-vapid-public-key", "", nil)
	e.expect(r, 200, "")
	if _, pub, _ := e.svc.Credentials().VAPIDPublicKey("app"); r.body["vapidPublicKey"] != pub || pub == "" {
		t.Fatalf("vapid answer %s", r.raw)
	}
	token := webToken(t, 1)
	r = e.beams("POST", beamsDev+"/devices/web", "", map[string]any{"token": token, "metadata": map[string]any{"sdkVersion": "2.1.0"}})
	e.expect(r, 200, "")
	id, _ := r.body["id"].(string)
	if !strings.HasPrefix(id, "web-") || len(id) != 40 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("register answer %s", r.raw)
	}
	if s, ok := r.body["initialInterestSet"].([]any); !ok || len(s) != 0 {
		t.Fatalf("initialInterestSet in %s", r.raw)
	}
	// Registering the same subscription again answers the same device.
	again := e.beams("POST", beamsDev+"/devices/web", "", map[string]any{"token": token})
	e.expect(again, 200, "")
	if again.body["id"] != id {
		t.Fatalf("second registration %s, want id %s", again.raw, id)
	}
	dev := beamsDev + "/devices/web/" + id
	e.expect(e.beams("POST", dev+"/interests/news", "", nil), 200, "")
	e.expect(e.beams("POST", dev+"/interests/sport", "", nil), 200, "")
	e.expect(e.beams("DELETE", dev+"/interests/sport", "", nil), 200, "")
	r = e.beams("GET", dev+"/interests?limit=100", "", nil)
	e.expect(r, 200, "")
	if fmt.Sprint(r.body["interests"]) != "[news]" {
		t.Fatalf("interests %s", r.raw)
	}
	e.expect(e.beams("PUT", dev+"/interests", "", map[string]any{"interests": []string{"a", "b", "c", "a"}}), 200, "")
	r = e.beams("GET", dev+"/interests?limit=2", "", nil)
	meta, _ := r.body["responseMetadata"].(map[string]any)
	if fmt.Sprint(r.body["interests"]) != "[a b]" || meta["nextCursor"] != "2" {
		t.Fatalf("page 1 %s", r.raw)
	}
	r = e.beams("GET", dev+"/interests?limit=2&cursor=2", "", nil)
	if meta, _ := r.body["responseMetadata"].(map[string]any); fmt.Sprint(r.body["interests"]) != "[c]" || len(meta) != 0 {
		t.Fatalf("page 2 %s", r.raw)
	}
	e.expect(e.beams("PUT", dev+"/metadata", "", map[string]any{"sdkVersion": "2.1.1"}), 200, "")
	tok := beamsToken(t, "alice", "app", e.clock.Now().Add(24*time.Hour), testBeamsKey)
	e.expect(e.beams("PUT", dev+"/user", "Bearer "+tok, nil), 200, "")
	stored, err := e.db.Device("app", id)
	if err != nil || stored.UserID != "alice" || string(stored.Metadata) != `{"sdkVersion":"2.1.1"}` || stored.VAPIDKeyVersion != 1 {
		t.Fatalf("stored %+v %v", stored, err)
	}
	if !e.audit.has(push.ActionDeviceUserBound) {
		t.Fatal("binding not audited")
	}
	// The same token again (the SDK calls setUserId on every page load).
	e.expect(e.beams("PUT", dev+"/user", "Bearer "+tok, nil), 200, "")

	for _, tc := range []struct{ path, body string }{
		{"/users", `{"users":["alice"],"web":{"notification":{"title":"u"}}}`},
		{"/interests", `{"interests":["b"],"web":{"notification":{"title":"i"}}}`},
	} {
		e.sender.mu.Lock()
		e.sender.sent = nil
		e.sender.mu.Unlock()
		e.expect(e.beams("POST", beamsPub+tc.path, bearerKey, tc.body), 200, "")
		e.drain()
		if got := e.sender.devices(); fmt.Sprint(got) != "["+id+"]" {
			t.Fatalf("%s reached %v", tc.path, got)
		}
	}
	// stop(): delete, then the device is gone.
	e.expect(e.beams("DELETE", dev, "", nil), 200, "")
	e.expect(e.beams("GET", dev+"/interests", "", nil), 404, "Not Found")
	if _, err := e.db.Device("app", id); err == nil {
		t.Fatal("device not deleted")
	}
}

// TestBeamsUserTokenRefusals: tokens the user binding refuses, each
// audited and counted against the per-IP auth-failure budget.
func TestBeamsUserTokenRefusals(t *testing.T) {
	lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 100, Window: time.Minute})
	e := newPubEnv(t, push.Config{Limits: push.Limits{AuthFailures: lim}}, testApps{})
	r := e.beams("POST", beamsDev+"/devices/web", "", map[string]any{"token": webToken(t, 1)})
	e.expect(r, 200, "")
	dev := beamsDev + "/devices/web/" + r.body["id"].(string)
	later := e.clock.Now().Add(time.Hour)
	for _, tc := range []struct{ name, auth string }{
		{"no token", ""},
		{"not bearer", "Basic " + beamsToken(t, "alice", "app", later, testBeamsKey)},
		{"the Beams key itself", bearerKey},
		{"signed with another key", "Bearer " + beamsToken(t, "alice", "app", later, "another-key")},
		{"signed with the app secret", "Bearer " + beamsToken(t, "alice", "app", later, "app-secret")},
		{"another instance's issuer", "Bearer " + beamsToken(t, "alice", "other", later, testBeamsKey)},
		{"expired", "Bearer " + beamsToken(t, "alice", "app", e.clock.Now().Add(-time.Second), testBeamsKey)},
		{"garbage", "Bearer a.b.c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.beams("PUT", dev+"/user", tc.auth, nil), 401, "Unauthorized")
		})
	}
	if d, _ := e.db.Device("app", strings.TrimPrefix(dev, beamsDev+"/devices/web/")); d.UserID != "" {
		t.Fatalf("a refused token bound %q", d.UserID)
	}
	if !e.audit.has(push.ActionBeamsAuthDenied) {
		t.Fatal("refusals not audited")
	}
	// A token replayed after it expired is refused too.
	tok := beamsToken(t, "alice", "app", e.clock.Now().Add(time.Minute), testBeamsKey)
	e.expect(e.beams("PUT", dev+"/user", "Bearer "+tok, nil), 200, "")
	e.clock.Add(time.Minute)
	e.expect(e.beams("PUT", dev+"/user", "Bearer "+tok, nil), 401, "Unauthorized")
}

// TestBeamsDeviceRefusals: devices, platforms, instances and bodies the
// device API refuses.
func TestBeamsDeviceRefusals(t *testing.T) {
	apps := testApps{push: map[string]storage.AppPushLimits{"app": {MaxInterestsPerDevice: 3}}}
	e := newPubEnv(t, push.Config{}, apps)
	e.device("native", "", nil, nil) // registered through the server API
	r := e.beams("POST", beamsDev+"/devices/web", "", map[string]any{"token": webToken(t, 1)})
	e.expect(r, 200, "")
	web := r.body["id"].(string)
	nativeSub, _ := json.Marshal(webSubscription(t, 77))
	e.do("PATCH", "/apps/app/push/devices/native", "", `{"subscription":`+string(nativeSub)+`}`)
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"unknown device", "GET", beamsDev + "/devices/web/web-00000000-0000-4000-8000-000000000000/interests", nil, 404},
		{"a native device", "POST", beamsDev + "/devices/web/native/interests/x", nil, 404},
		{"another platform's path", "GET", beamsDev + "/devices/fcm/" + web + "/interests", nil, 404},
		{"unknown platform", "POST", beamsDev + "/devices/sms", map[string]any{"token": "x"}, 404},
		{"instance without a key", "POST", "/device_api/v1/instances/other/devices/web", map[string]any{"token": webToken(t, 2)}, 404},
		{"bad JSON", "POST", beamsDev + "/devices/web", `{"token":`, 400},
		{"token not base64", "POST", beamsDev + "/devices/web", map[string]any{"token": "%%%"}, 400},
		{"token not a subscription", "POST", beamsDev + "/devices/web", map[string]any{"token": base64.StdEncoding.EncodeToString([]byte(`{"x":1}`))}, 400},
		{"a native device's subscription", "POST", beamsDev + "/devices/web", map[string]any{"token": base64.StdEncoding.EncodeToString(nativeSub)}, 409},
		{"bad fcm token", "POST", beamsDev + "/devices/fcm", map[string]any{"token": ""}, 400},
		{"bad apns token", "POST", beamsDev + "/devices/apns", map[string]any{"token": "zz"}, 400},
		{"bad interest", "POST", beamsDev + "/devices/web/" + web + "/interests/no%20space", nil, 400},
		{"private- is a channel", "POST", beamsDev + "/devices/web/" + web + "/interests/private-x", nil, 400},
		{"over the interest limit", "PUT", beamsDev + "/devices/web/" + web + "/interests", map[string]any{"interests": []string{"a", "b", "c", "d"}}, 409},
		{"interests missing", "PUT", beamsDev + "/devices/web/" + web + "/interests", map[string]any{}, 400},
		{"oversize interests body", "PUT", beamsDev + "/devices/web/" + web + "/interests", `{"interests":["` + strings.Repeat("a", 2<<20) + `"]}`, 413},
		{"metadata not an object", "PUT", beamsDev + "/devices/web/" + web + "/metadata", `[1]`, 400},
		{"bad cursor", "GET", beamsDev + "/devices/web/" + web + "/interests?cursor=-1", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.beams(tc.method, tc.path, "", tc.body), tc.status, "")
		})
	}
	for _, tc := range []struct{ platform, token, extra string }{
		{"fcm", "fcm-token-1", ""},
		{"apns", strings.Repeat("ab", 32), "com.example.app"},
	} {
		r := e.beams("POST", beamsDev+"/devices/"+tc.platform, "", map[string]any{"token": tc.token, "bundleIdentifier": tc.extra})
		e.expect(r, 200, "")
		id := r.body["id"].(string)
		if !strings.HasPrefix(id, tc.platform+"-") {
			t.Fatalf("%s id %q", tc.platform, id)
		}
		d, err := e.db.Device("app", id)
		if err != nil || d.Platform != tc.platform || d.Topic != tc.extra {
			t.Fatalf("%s stored %+v %v", tc.platform, d, err)
		}
	}
}

// Anyone holding the app id can call the Beams device API: registrations
// from one client address spend its registration budget (then 429 with
// Retry-After), and the app's device cap bounds what is stored.
func TestBeamsRegistrationFloodIsBounded(t *testing.T) {
	lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 8, Window: time.Minute})
	e := newPubEnv(t, push.Config{Limits: push.Limits{Registrations: lim}, Devices: push.DeviceConfig{MaxDevicesPerApp: 5}}, testApps{})
	var ok, full, limited int
	for i := 0; i < 30; i++ {
		r := e.beams("POST", beamsDev+"/devices/web", "", map[string]any{"token": webToken(t, 100+i)})
		switch {
		case r.status == 200:
			ok++
		case r.status == 429:
			limited++
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %s", r.raw)
			}
		case r.status >= 400 && r.status < 500:
			full++
		default:
			t.Fatalf("registration %d: %d %s", i, r.status, r.raw)
		}
	}
	if ok != 5 || full != 3 || limited != 22 {
		t.Fatalf("stored %d, refused as full %d, rate limited %d; want 5, 3, 22", ok, full, limited)
	}
}
