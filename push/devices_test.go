package push_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/webpush"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// testApps are two apps: "app" and "other", each with its own key and
// secret, and the push limit overrides in push.
type testApps struct {
	push map[string]storage.AppPushLimits
	// beams replaces the Beams keys: by default "app" has testBeamsKey
	// and "other" has none.
	beams map[string][]string
}

// testBeamsKey is the Beams secret key of "app" in the tests.
const testBeamsKey = "BEAMS0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"

func (a testApps) AppBeamsKeys(id string) []string {
	if a.beams != nil {
		return a.beams[id]
	}
	if id == "app" {
		return []string{testBeamsKey}
	}
	return nil
}

func (testApps) AppCredentials(id string) (string, []string, bool) {
	switch id {
	case "app":
		return "app-key", []string{"app-secret"}, true
	case "other":
		return "other-key", []string{"other-secret"}, true
	}
	return "", nil, false
}

func (a testApps) AppPushLimits(id string) storage.AppPushLimits { return a.push[id] }

type auditRecorder struct {
	mu      sync.Mutex
	entries []storage.AuditEntry
}

func (a *auditRecorder) Record(e storage.AuditEntry) {
	a.mu.Lock()
	a.entries = append(a.entries, e)
	a.mu.Unlock()
}

func (a *auditRecorder) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.entries {
		out = append(out, e.Action)
	}
	return out
}

func (a *auditRecorder) has(action string) bool {
	for _, x := range a.actions() {
		if x == action {
			return true
		}
	}
	return false
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     testing.TB
	db    *storage.DB
	svc   *push.Service
	mux   *http.ServeMux
	clock *testClock
	audit *auditRecorder
	// seen collects every response body, to prove secrets never come back.
	seen bytes.Buffer
}

func newEnv(t testing.TB, cfg push.Config) *env {
	t.Helper()
	return newEnvApps(t, cfg, testApps{})
}

// newEnvApps is newEnv with the apps' push limit overrides of apps.
func newEnvApps(t testing.TB, cfg push.Config, apps testApps, opts ...func(*push.Deps)) *env {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &env{t: t, mux: http.NewServeMux(), clock: &testClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)},
		audit: &auditRecorder{}}
	cfg.AllowLocalWebPush = true
	deps := push.Deps{DB: db, Apps: apps, Audit: e.audit, Now: e.clock.Now,
		ClientIP: func(*http.Request) string { return "127.0.0.1" },
		WebSubscription: func(endpoint, p256dh, auth string) ([]byte, []byte, error) {
			sub, err := webpush.ParseSubscription(endpoint, p256dh, auth)
			if err == nil {
				err = webpush.CheckEndpoint(endpoint, true)
			}
			return sub.P256dh, sub.Auth, err
		}}
	for _, o := range opts {
		o(&deps)
	}
	e.db = db
	e.svc, err = push.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	// Every route on one mux, as main mounts them: conflicting patterns
	// would panic here. Signed routes are called without a signature (the
	// server checks it before they run).
	for _, r := range e.svc.Routes() {
		e.mux.Handle(r.Pattern, r.Handler)
	}
	for _, r := range e.svc.SignedRoutes() {
		h := r.Handler
		e.mux.HandleFunc(r.Pattern, func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			h(w, req, req.PathValue("app_id"), body)
		})
	}
	return e
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request; body is JSON-encoded unless it is a string.
func (e *env) do(method, path, secret string, body any) resp {
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
	if secret != "" {
		req.Header.Set(push.DeviceSecretHeader, secret)
	}
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, req)
	r := resp{status: w.Code, header: w.Header(), raw: w.Body.String()}
	e.seen.WriteString(r.raw)
	if len(r.raw) > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &r.body); err != nil {
			e.t.Fatalf("%s %s: body %q is not JSON: %v", method, path, r.raw, err)
		}
	}
	return r
}

func (e *env) expect(r resp, status int, errCode string) {
	e.t.Helper()
	if r.status != status || errCode != "" && r.body["error"] != errCode {
		e.t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, errCode)
	}
	if r.status >= 400 && (r.body["error"] == nil || r.body["description"] == nil) {
		e.t.Fatalf("error body %s lacks error/description", r.raw)
	}
}

// webSubscription is a valid browser subscription at a loopback endpoint.
func webSubscription(t testing.TB, n int) map[string]any {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{"endpoint": fmt.Sprintf("http://127.0.0.1:9/wp/%d-endpointsecretpart", n),
		"keys": map[string]string{"p256dh": b64(k.PublicKey().Bytes()), "auth": b64(auth)}}
}

type device struct{ id, secret, socketID string }

func (e *env) register(app string, n int) device {
	e.t.Helper()
	r := e.do("POST", "/apps/"+app+"/push/client/devices", "", map[string]any{"platform": "web", "subscription": webSubscription(e.t, n)})
	e.expect(r, 201, "")
	d := device{id: r.body["id"].(string), secret: r.body["device_secret"].(string), socketID: r.body["socket_id"].(string)}
	if !protocol.ValidSocketID(d.socketID) || len(d.secret) < 40 {
		e.t.Fatalf("register answer %s", r.raw)
	}
	return d
}

func (e *env) challenge(app string, d device) string {
	e.t.Helper()
	r := e.do("POST", "/apps/"+app+"/push/client/devices/"+d.id+"/challenge", d.secret, nil)
	e.expect(r, 200, "")
	return r.body["socket_id"].(string)
}

func userAuth(key, secret, socketID, userData string) map[string]any {
	return map[string]any{"socket_id": socketID, "user_data": userData,
		"auth": key + ":" + protocol.Sign(secret, protocol.UserString(socketID, userData))}
}

func channelAuth(key, secret, socketID, channel, channelData string) map[string]any {
	return map[string]any{"socket_id": socketID, "channel_data": channelData,
		"auth": key + ":" + protocol.Sign(secret, protocol.ChannelString(socketID, channel, channelData))}
}

func TestClientBindUser(t *testing.T) {
	e := newEnv(t, push.Config{})
	d := e.register("app", 1)
	base := "/apps/app/push/client/devices/" + d.id
	e.seen.Reset() // the registration answer is the one that has the secret

	// A valid signature over the registration's challenge binds the user.
	ud := `{"id":"u1","user_info":{"name":"A"}}`
	r := e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", d.socketID, ud))
	e.expect(r, 200, "")
	if r.body["user_id"] != "u1" {
		t.Fatalf("bind = %s", r.raw)
	}
	// The same socket_id again, even signed right: a replay.
	e.expect(e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", d.socketID, ud)), 401, "invalid_challenge")

	sid := e.challenge("app", d)
	tcs := []struct {
		name, code string
		status     int
		body       map[string]any
		secret     string
	}{
		{"bad signature", "invalid_signature", 401, userAuth("app-key", "wrong-secret", sid, `{"id":"u2"}`), d.secret},
		{"signed for another socket id", "invalid_signature", 401,
			map[string]any{"socket_id": sid, "user_data": `{"id":"u2"}`, "auth": userAuth("app-key", "app-secret", "1.2", `{"id":"u2"}`)["auth"]}, d.secret},
		{"another app's key and secret", "invalid_signature", 401, userAuth("other-key", "other-secret", sid, `{"id":"u2"}`), d.secret},
		{"app key, other app's secret", "invalid_signature", 401, userAuth("app-key", "other-secret", sid, `{"id":"u2"}`), d.secret},
		{"not a socket id", "bad_request", 400, userAuth("app-key", "app-secret", "abc", `{"id":"u2"}`), d.secret},
		{"user_data without id", "invalid_user_data", 400, userAuth("app-key", "app-secret", sid, `{"name":"x"}`), d.secret},
		{"no device secret", "unauthorized", 401, userAuth("app-key", "app-secret", sid, `{"id":"u2"}`), ""},
		{"wrong device secret", "unauthorized", 401, userAuth("app-key", "app-secret", sid, `{"id":"u2"}`), "x" + d.secret[1:]},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.do("PUT", base+"/user", tc.secret, tc.body), tc.status, tc.code)
		})
	}
	// Refusals did not use up the challenge...
	e.expect(e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", sid, `{"id":"u1"}`)), 200, "")
	// ...and an expired one is refused.
	sid = e.challenge("app", d)
	e.clock.Add(push.DefaultChallengeTTL + time.Second)
	e.expect(e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", sid, `{"id":"u1"}`)), 401, "invalid_challenge")
	// Another app cannot see the device at all.
	e.expect(e.do("GET", "/apps/other/push/client/devices/"+d.id, d.secret, nil), 401, "unauthorized")
	e.expect(e.do("GET", "/apps/nope/push/client/devices/"+d.id, d.secret, nil), 404, "not_found")

	r = e.do("GET", base, d.secret, nil)
	e.expect(r, 200, "")
	if r.body["token_hash"] == nil || len(r.body["token_last6"].(string)) != 6 || strings.Contains(r.raw, "endpointsecretpart") {
		t.Fatalf("device view shows the token: %s", r.raw)
	}
	if strings.Contains(e.seen.String(), d.secret) {
		t.Fatal("the device secret came back after registration")
	}
	if !e.audit.has(push.ActionDeviceRegistered) || !e.audit.has(push.ActionDeviceUserBound) || !e.audit.has(push.ActionDeviceAuthDenied) {
		t.Fatalf("audit = %v", e.audit.actions())
	}
	for _, a := range e.audit.entries {
		if strings.Contains(fmt.Sprint(a), "endpointsecretpart") || strings.Contains(fmt.Sprint(a), d.secret) {
			t.Fatalf("audit entry holds a token or secret: %+v", a)
		}
	}
}

func TestClientChannelsAndUserSwitch(t *testing.T) {
	e := newEnv(t, push.Config{Devices: push.DeviceConfig{ChannelAuthTTL: time.Hour}})
	d := e.register("app", 1)
	base := "/apps/app/push/client/devices/" + d.id
	e.expect(e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", d.socketID, `{"id":"u1"}`)), 200, "")

	// Public: nothing to sign.
	e.expect(e.do("PUT", base+"/channels/news", d.secret, nil), 200, "")
	// Private: a signature over a challenge, as pusher:subscribe.
	e.expect(e.do("PUT", base+"/channels/private-orders", d.secret, nil), 400, "bad_request")
	sid := e.challenge("app", d)
	e.expect(e.do("PUT", base+"/channels/private-orders", d.secret, channelAuth("app-key", "app-secret", sid, "private-other", "")), 401, "invalid_signature")
	r := e.do("PUT", base+"/channels/private-orders", d.secret, channelAuth("app-key", "app-secret", sid, "private-orders", ""))
	e.expect(r, 200, "")
	if r.body["expires_at"] == nil {
		t.Fatalf("no expiry with ChannelAuthTTL: %s", r.raw)
	}
	e.expect(e.do("PUT", base+"/channels/private-orders", d.secret, channelAuth("app-key", "app-secret", sid, "private-orders", "")), 401, "invalid_challenge")
	// Presence: channel_data's user must be the bound user.
	sid = e.challenge("app", d)
	e.expect(e.do("PUT", base+"/channels/presence-room", d.secret, channelAuth("app-key", "app-secret", sid, "presence-room", `{"user_id":"u2"}`)), 403, "presence_user_mismatch")
	e.expect(e.do("PUT", base+"/channels/presence-room", d.secret, channelAuth("app-key", "app-secret", sid, "presence-room", "")), 400, "bad_request")
	e.expect(e.do("PUT", base+"/channels/presence-room", d.secret, channelAuth("app-key", "app-secret", sid, "presence-room", `{"user_id":"u1"}`)), 200, "")
	e.expect(e.do("PUT", base+"/channels/%23server-to-user-u1", d.secret, nil), 400, "invalid_channel")

	e.expect(e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": []string{"a", "b"}}), 200, "")
	r = e.do("GET", base+"/channels", d.secret, nil)
	e.expect(r, 200, "")
	if n := len(r.body["channels"].([]any)); n != 3 {
		t.Fatalf("channels = %s", r.raw)
	}
	// The trusted backend lists and revokes.
	r = e.do("GET", "/apps/app/push/channels/private-orders/devices", "", nil)
	if items := r.body["items"].([]any); len(items) != 1 {
		t.Fatalf("channel devices = %s", r.raw)
	}
	e.expect(e.do("DELETE", "/apps/app/push/channels/private-orders/subscriptions", "", nil), 400, "bad_request")
	r = e.do("DELETE", "/apps/app/push/channels/private-orders/subscriptions?user_id=u1", "", nil)
	if r.status != 200 || r.body["revoked"] != 1.0 || !e.audit.has(push.ActionChannelRevoked) {
		t.Fatalf("revoke = %s", r.raw)
	}
	// Switching users drops the previous user's channels and interests.
	sid = e.challenge("app", d)
	r = e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", sid, `{"id":"u2"}`))
	e.expect(r, 200, "")
	if len(r.body["channels"].([]any)) != 0 || r.body["interests"] != nil {
		t.Fatalf("after a user switch: %s", r.raw)
	}
	// Logout keeps public channels only.
	e.expect(e.do("PUT", base+"/channels/news", d.secret, nil), 200, "")
	r = e.do("DELETE", base+"/user", d.secret, nil)
	if r.status != 200 || r.body["user_id"] != nil || len(r.body["channels"].([]any)) != 1 {
		t.Fatalf("unbind = %s", r.raw)
	}
	e.expect(e.do("DELETE", base+"/channels/news", d.secret, nil), 204, "")
	e.expect(e.do("DELETE", base, d.secret, nil), 204, "")
	e.expect(e.do("GET", base, d.secret, nil), 401, "unauthorized")
}

// TestSignedChannelsNeedAUser: a private channel subscribed while the
// device had no user would escape the revocation by user and pass to the
// next user who binds the device.
func TestSignedChannelsNeedAUser(t *testing.T) {
	e := newEnv(t, push.Config{})
	d := e.register("app", 1)
	base := "/apps/app/push/client/devices/" + d.id

	// No user: refused even with a valid signature, and the challenge is
	// not used up.
	sid := e.challenge("app", d)
	e.expect(e.do("PUT", base+"/channels/private-room", d.secret, channelAuth("app-key", "app-secret", sid, "private-room", "")), 403, "user_required")
	e.expect(e.do("PUT", base+"/channels/private-encrypted-room", d.secret, channelAuth("app-key", "app-secret", sid, "private-encrypted-room", "")), 403, "user_required")
	e.expect(e.do("PUT", base+"/channels/news", d.secret, nil), 200, "")
	e.expect(e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": []string{"anon"}}), 200, "")
	r := e.do("DELETE", "/apps/app/push/channels/private-room/subscriptions?user_id=alice", "", nil)
	if r.status != 200 || r.body["revoked"] != 0.0 {
		t.Fatalf("revoke = %s", r.raw)
	}
	// A signed subscription the backend gave the anonymous device is
	// dropped when a user binds it.
	e.expect(e.do("PUT", "/apps/app/push/devices/"+d.id+"/channels/private-room", "", nil), 200, "")
	r = e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", d.socketID, `{"id":"bob"}`))
	e.expect(r, 200, "")
	if chs := r.body["channels"].([]any); len(chs) != 1 || chs[0].(map[string]any)["channel"] != "news" {
		t.Fatalf("bob inherited the anonymous device's private channel: %s", r.raw)
	}
	// Bound: the same signature now works.
	e.expect(e.do("PUT", base+"/channels/private-room", d.secret, channelAuth("app-key", "app-secret", sid, "private-room", "")), 200, "")
	// Logout drops the device's own interests and the signed channels.
	e.expect(e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": []string{"bobs"}}), 200, "")
	r = e.do("DELETE", base+"/user", d.secret, nil)
	e.expect(r, 200, "")
	if r.body["interests"] != nil || len(r.body["channels"].([]any)) != 1 {
		t.Fatalf("after logout: %s", r.raw)
	}
}

// TestTokenTakeover: knowing a device's token is not enough to register
// it again and take the device over.
func TestTokenTakeover(t *testing.T) {
	e := newEnv(t, push.Config{})
	sub := webSubscription(t, 1)
	body := map[string]any{"platform": "web", "subscription": sub}
	r := e.do("POST", "/apps/app/push/client/devices", "", body)
	e.expect(r, 201, "")
	d := device{id: r.body["id"].(string), secret: r.body["device_secret"].(string), socketID: r.body["socket_id"].(string)}
	base := "/apps/app/push/client/devices/" + d.id
	e.expect(e.do("PUT", base+"/user", d.secret, userAuth("app-key", "app-secret", d.socketID, `{"id":"alice"}`)), 200, "")
	e.expect(e.do("PUT", base+"/channels/news", d.secret, nil), 200, "")

	e.expect(e.do("POST", "/apps/app/push/client/devices", "", body), 409, "token_in_use")
	r = e.do("GET", base, d.secret, nil)
	e.expect(r, 200, "")
	if r.body["user_id"] != "alice" || len(r.body["channels"].([]any)) != 1 {
		t.Fatalf("the victim's device changed: %s", r.raw)
	}
	if !e.audit.has(push.ActionDeviceAuthDenied) {
		t.Fatalf("audit = %v", e.audit.actions())
	}
	// A device the backend registered has no secret: only the backend
	// registers its token again.
	apns := map[string]any{"platform": "apns", "token": strings.Repeat("0b", 32)}
	e.expect(e.do("POST", "/apps/app/push/devices", "", apns), 201, "")
	e.expect(e.do("POST", "/apps/app/push/client/devices", "", apns), 409, "token_in_use")
	e.expect(e.do("POST", "/apps/app/push/devices", "", apns), 200, "")
}

func TestInterests(t *testing.T) {
	e := newEnv(t, push.Config{})
	d := e.register("app", 1)
	base := "/apps/app/push/client/devices/" + d.id
	for _, name := range []string{"private-orders", "presence-room", "private-encrypted-x", "bad name", "%23server-to-user-1"} {
		e.expect(e.do("POST", base+"/interests/"+strings.ReplaceAll(name, " ", "%20"), d.secret, nil), 400, "invalid_interest")
	}
	e.expect(e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": []string{"ok", "private-x"}}), 400, "invalid_interest")
	e.expect(e.do("PUT", "/apps/app/push/devices/"+d.id+"/interests", "", map[string]any{"op": "add", "interests": []string{"presence-x"}}), 400, "invalid_interest")

	many := make([]string, push.DefaultMaxInterestsPerDevice)
	for i := range many {
		many[i] = fmt.Sprint("interest-", i)
	}
	e.expect(e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": many}), 200, "")
	e.expect(e.do("POST", base+"/interests/one-more", d.secret, nil), 409, "limit_exceeded")
	e.expect(e.do("DELETE", base+"/interests/interest-0", d.secret, nil), 204, "")
	e.expect(e.do("POST", base+"/interests/one-more", d.secret, nil), 204, "")
	r := e.do("GET", base+"/interests", d.secret, nil)
	if n := len(r.body["interests"].([]any)); n != push.DefaultMaxInterestsPerDevice {
		t.Fatalf("%d interests", n)
	}
	e.expect(e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": append(many, "x")}), 409, "limit_exceeded")
}

func TestLimits(t *testing.T) {
	t.Run("devices per user", func(t *testing.T) {
		e := newEnv(t, push.Config{})
		for i := range push.DefaultMaxDevicesPerUser {
			r := e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "fcm", "token": fmt.Sprint("tok-", i), "user_id": "u"})
			e.expect(r, 201, "")
		}
		e.expect(e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "fcm", "token": "tok-x", "user_id": "u"}), 409, "limit_exceeded")
		// Bound through the client API: refused the same way.
		d := e.register("app", 1)
		e.expect(e.do("PUT", "/apps/app/push/client/devices/"+d.id+"/user", d.secret, userAuth("app-key", "app-secret", d.socketID, `{"id":"u"}`)), 409, "limit_exceeded")
	})
	t.Run("devices per app", func(t *testing.T) {
		e := newEnv(t, push.Config{Devices: push.DeviceConfig{MaxDevicesPerApp: 2}})
		e.register("app", 1)
		e.expect(e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "fcm", "token": "tok"}), 201, "")
		e.expect(e.do("POST", "/apps/app/push/client/devices", "", map[string]any{"platform": "web", "subscription": webSubscription(t, 3)}), 409, "limit_exceeded")
		e.expect(e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "fcm", "token": "tok-2"}), 409, "limit_exceeded")
		e.expect(e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "fcm", "token": "tok"}), 200, "")
		e.register("other", 4)
	})
	t.Run("channels per device", func(t *testing.T) {
		e := newEnv(t, push.Config{})
		d := e.register("app", 1)
		base := "/apps/app/push/client/devices/" + d.id
		for i := range push.DefaultMaxChannelsPerDevice {
			e.expect(e.do("PUT", fmt.Sprint(base, "/channels/room-", i), d.secret, nil), 200, "")
		}
		e.expect(e.do("PUT", base+"/channels/one-more", d.secret, nil), 409, "limit_exceeded")
		e.expect(e.do("PUT", "/apps/app/push/devices/"+d.id+"/channels/one-more", "", nil), 409, "limit_exceeded")
		e.expect(e.do("PUT", base+"/channels/room-0", d.secret, nil), 200, "")
	})
	t.Run("registrations per IP", func(t *testing.T) {
		lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 2, Window: time.Minute})
		e := newEnv(t, push.Config{Limits: push.Limits{Registrations: lim}})
		e.register("app", 1)
		e.register("app", 2)
		r := e.do("POST", "/apps/app/push/client/devices", "", map[string]any{"platform": "web", "subscription": webSubscription(t, 3)})
		e.expect(r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Limit") != "2" {
			t.Fatalf("429 headers: %v", r.header)
		}
		// Another app has its own budget.
		e.register("other", 4)
	})
	t.Run("auth failures per IP", func(t *testing.T) {
		lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 2, Window: time.Minute})
		e := newEnv(t, push.Config{Limits: push.Limits{AuthFailures: lim}})
		d := e.register("app", 1)
		bad := userAuth("app-key", "wrong", d.socketID, `{"id":"u"}`)
		e.expect(e.do("PUT", "/apps/app/push/client/devices/"+d.id+"/user", d.secret, bad), 401, "invalid_signature")
		e.expect(e.do("GET", "/apps/app/push/client/devices/"+d.id, "wrong", nil), 401, "unauthorized")
		r := e.do("PUT", "/apps/app/push/client/devices/"+d.id+"/user", d.secret, bad)
		e.expect(r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("no Retry-After: %v", r.header)
		}
		// Successes are not counted.
		e.expect(e.do("GET", "/apps/app/push/client/devices/"+d.id, d.secret, nil), 200, "")
	})
	t.Run("requests per device", func(t *testing.T) {
		lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 2, Window: time.Minute})
		e := newEnv(t, push.Config{Limits: push.Limits{DeviceRequests: lim}})
		d, other := e.register("app", 1), e.register("app", 2)
		base := "/apps/app/push/client/devices/" + d.id
		// Requests without the secret do not spend the device's budget.
		for range 3 {
			e.expect(e.do("POST", base+"/challenge", "wrong", nil), 401, "unauthorized")
		}
		e.challenge("app", d)
		e.expect(e.do("PUT", base+"/channels/news", d.secret, nil), 200, "")
		r := e.do("PUT", base+"/interests", d.secret, map[string]any{"interests": []string{"a"}})
		e.expect(r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("no Retry-After: %v", r.header)
		}
		e.expect(e.do("POST", base+"/challenge", d.secret, nil), 429, "rate_limited")
		// Reads are not limited, and another device has its own budget.
		e.expect(e.do("GET", base, d.secret, nil), 200, "")
		e.challenge("app", other)
	})
	t.Run("secret before body", func(t *testing.T) {
		e := newEnv(t, push.Config{})
		d := e.register("app", 1)
		body := &countingReader{r: strings.NewReader(strings.Repeat("x", 2<<20))}
		req := httptest.NewRequest("PUT", "/apps/app/push/client/devices/"+d.id+"/interests", body)
		req.Header.Set(push.DeviceSecretHeader, "wrong")
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, req)
		if w.Code != 401 || body.n != 0 {
			t.Fatalf("wrong secret with a 2 MiB body: %d %s, %d bytes read", w.Code, w.Body, body.n)
		}
		big := map[string]any{"interests": []string{strings.Repeat("x", 1<<20)}}
		e.expect(e.do("PUT", "/apps/app/push/client/devices/"+d.id+"/interests", d.secret, big), 413, "body_too_large")
	})
	t.Run("body size", func(t *testing.T) {
		e := newEnv(t, push.Config{})
		big := `{"platform":"fcm","token":"t","metadata":{"x":"` + strings.Repeat("a", 17<<10) + `"}}`
		e.expect(e.do("POST", "/apps/app/push/client/devices", "", big), 413, "body_too_large")
		e.expect(e.do("POST", "/apps/app/push/client/devices", "", `{"platform":`), 400, "invalid_json")
	})
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestPerAppLimits: an app with overrides gets its own limits while the
// other app keeps the server-wide ones.
func TestPerAppLimits(t *testing.T) {
	tcs := []struct {
		name     string
		cfg      func() push.Config
		override storage.AppPushLimits
		// want is how many tries "app" gets, wantOther "other"'s.
		want, wantOther int
		// try is try i (from 1) against app; ok is its status when
		// allowed, refusal and code its answer past the limit.
		try         func(e *env, app string, i int) resp
		ok, refusal int
		code        string
	}{
		{
			name:     "devices per user",
			cfg:      func() push.Config { return push.Config{Devices: push.DeviceConfig{MaxDevicesPerUser: 5}} },
			override: storage.AppPushLimits{MaxDevicesPerUser: 3},
			want:     3, wantOther: 5,
			try: func(e *env, app string, i int) resp {
				return e.do("POST", "/apps/"+app+"/push/devices", "", map[string]any{"platform": "fcm", "token": fmt.Sprint("tok-", i), "user_id": "u"})
			},
			ok: 201, refusal: 409, code: "limit_exceeded",
		},
		{
			name:     "interests per device",
			cfg:      func() push.Config { return push.Config{Devices: push.DeviceConfig{MaxInterestsPerDevice: 4}} },
			override: storage.AppPushLimits{MaxInterestsPerDevice: 2},
			want:     2, wantOther: 4,
			try: func(e *env, app string, i int) resp {
				if i == 1 {
					e.expect(e.do("POST", "/apps/"+app+"/push/devices", "", map[string]any{"id": "d", "platform": "fcm", "token": "tok"}), 201, "")
				}
				return e.do("PUT", "/apps/"+app+"/push/devices/d/interests", "", map[string]any{"op": "add", "interests": []string{fmt.Sprint("i-", i)}})
			},
			ok: 200, refusal: 409, code: "limit_exceeded",
		},
		{
			name: "registrations per IP",
			cfg: func() push.Config {
				return push.Config{Limits: push.Limits{Registrations: ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 5, Window: time.Minute})}}
			},
			override: storage.AppPushLimits{RegistrationsPerMinute: 2},
			want:     2, wantOther: 5,
			try: func(e *env, app string, i int) resp {
				return e.do("POST", "/apps/"+app+"/push/client/devices", "", map[string]any{"platform": "web", "subscription": webSubscription(e.t, i)})
			},
			ok: 201, refusal: 429, code: "rate_limited",
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvApps(t, tc.cfg(), testApps{push: map[string]storage.AppPushLimits{"app": tc.override}})
			for app, n := range map[string]int{"app": tc.want, "other": tc.wantOther} {
				for i := 1; i <= n; i++ {
					e.expect(tc.try(e, app, i), tc.ok, "")
				}
				r := tc.try(e, app, n+1)
				e.expect(r, tc.refusal, tc.code)
				if tc.refusal == 429 && (r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Limit") != fmt.Sprint(n)) {
					t.Fatalf("%s: 429 headers %v, want Retry-After and RateLimit-Limit %d", app, r.header, n)
				}
			}
		})
	}
}

func TestClientRegisterValidation(t *testing.T) {
	e := newEnv(t, push.Config{})
	tcs := []struct {
		name string
		body map[string]any
		code string
	}{
		{"unknown platform", map[string]any{"platform": "sms", "token": "x"}, "invalid_platform"},
		{"apns token not hex", map[string]any{"platform": "apns", "token": "zz"}, "invalid_token"},
		{"apns token too short", map[string]any{"platform": "apns", "token": strings.Repeat("ab", 31)}, "invalid_token"},
		{"apns token too long", map[string]any{"platform": "apns", "token": strings.Repeat("ab", 101)}, "invalid_token"},
		{"apns environment", map[string]any{"platform": "apns", "token": strings.Repeat("ab", 32), "environment": "dev"}, "invalid_environment"},
		{"fcm empty", map[string]any{"platform": "fcm"}, "invalid_token"},
		{"web without subscription", map[string]any{"platform": "web"}, "invalid_subscription"},
		{"web bad keys", map[string]any{"platform": "web", "subscription": map[string]any{"endpoint": "https://push.example.com/x",
			"keys": map[string]string{"p256dh": "AAAA", "auth": "AAAA"}}}, "invalid_subscription"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.do("POST", "/apps/app/push/client/devices", "", tc.body), 400, tc.code)
		})
	}
	for _, n := range []int{32, 100} {
		e.expect(e.do("POST", "/apps/app/push/client/devices", "", map[string]any{"platform": "apns", "token": strings.Repeat("cd", n)}), 201, "")
	}
	// Registering the same token again needs the device's secret: then
	// the same id, a fresh secret, a reset state.
	sub := webSubscription(t, 1)
	body := map[string]any{"platform": "web", "subscription": sub}
	r1 := e.do("POST", "/apps/app/push/client/devices", "", body)
	e.expect(r1, 201, "")
	e.expect(e.do("POST", "/apps/app/push/client/devices", "", body), 409, "token_in_use")
	e.expect(e.do("POST", "/apps/app/push/client/devices", "x"+r1.body["device_secret"].(string)[1:], body), 409, "token_in_use")
	r2 := e.do("POST", "/apps/app/push/client/devices", r1.body["device_secret"].(string), body)
	if r2.status != 200 || r1.body["id"] != r2.body["id"] || r1.body["device_secret"] == r2.body["device_secret"] {
		t.Fatalf("re-registration: %s then %s", r1.raw, r2.raw)
	}
	base := "/apps/app/push/client/devices/" + r1.body["id"].(string)
	e.expect(e.do("GET", base, r1.body["device_secret"].(string), nil), 401, "unauthorized")
	// A token refresh keeps the id.
	r := e.do("PUT", base+"/token", r2.body["device_secret"].(string), map[string]any{"subscription": webSubscription(t, 2)})
	e.expect(r, 200, "")
	if r.body["id"] != r1.body["id"] || r.body["token_hash"] == nil {
		t.Fatalf("token refresh: %s", r.raw)
	}
}

func TestServerAPI(t *testing.T) {
	e := newEnv(t, push.Config{})
	apnsTok := strings.Repeat("0a", 32)
	r := e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "apns", "token": apnsTok, "environment": "sandbox",
		"topic": "com.example", "user_id": "u1", "interests": []string{"news"}, "channels": []string{"private-orders"}})
	e.expect(r, 201, "")
	id, secret := r.body["id"].(string), r.body["device_secret"].(string)
	if r.body["token_last6"] != apnsTok[len(apnsTok)-6:] || strings.Contains(r.raw, apnsTok) {
		t.Fatalf("register answer: %s", r.raw)
	}
	// The upsert by token: same id, no new secret.
	r = e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "apns", "token": apnsTok, "user_id": "u1"})
	if r.status != 200 || r.body["id"] != id || r.body["device_secret"] != nil {
		t.Fatalf("upsert: %s", r.raw)
	}
	for i := range 4 {
		e.expect(e.do("POST", "/apps/app/push/devices", "", map[string]any{"platform": "fcm", "token": fmt.Sprint("f", i), "user_id": "u2"}), 201, "")
	}
	// Pages of the user's devices.
	var got []string
	cursor := ""
	for {
		r = e.do("GET", "/apps/app/push/users/u2/devices?limit=3&cursor="+cursor, "", nil)
		e.expect(r, 200, "")
		for _, it := range r.body["items"].([]any) {
			got = append(got, it.(map[string]any)["id"].(string))
		}
		c, _ := r.body["next_cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
	}
	if len(got) != 4 {
		t.Fatalf("user pages: %v", got)
	}
	r = e.do("GET", "/apps/app/push/devices?platform=apns", "", nil)
	if items := r.body["items"].([]any); len(items) != 1 {
		t.Fatalf("by platform: %s", r.raw)
	}
	e.expect(e.do("GET", "/apps/app/push/devices?limit=0", "", nil), 400, "bad_request")
	e.expect(e.do("GET", "/apps/app/push/devices?cursor=%21", "", nil), 400, "bad_request")

	// User interests reach the user's devices.
	r = e.do("PUT", "/apps/app/push/users/u1/interests", "", map[string]any{"op": "add", "interests": []string{"promo"}})
	e.expect(r, 200, "")
	r = e.do("GET", "/apps/app/push/devices?interest=promo", "", nil)
	if items := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Fatalf("by user interest: %s", r.raw)
	}
	r = e.do("PUT", "/apps/app/push/devices/"+id+"/interests", "", map[string]any{"op": "add", "interests": []string{"sport"}})
	if r.status != 200 || len(r.body["interests"].([]any)) != 1 {
		t.Fatalf("device interests: %s", r.raw)
	}
	r = e.do("PATCH", "/apps/app/push/devices/"+id, "", map[string]any{"user_id": "u3"})
	if r.status != 200 || r.body["user_id"] != "u3" || r.body["user_interests"] != nil {
		t.Fatalf("patch user: %s", r.raw)
	}
	e.expect(e.do("PUT", "/apps/app/push/devices/"+id+"/channels/presence-x", "", map[string]any{"expires_at": 1900000000}), 200, "")
	r = e.do("GET", "/apps/app/push/devices/"+id+"/channels", "", nil)
	if len(r.body["channels"].([]any)) != 1 {
		t.Fatalf("channels: %s", r.raw)
	}
	e.expect(e.do("DELETE", "/apps/app/push/devices/"+id+"/channels/presence-x", "", nil), 204, "")
	e.expect(e.do("GET", "/apps/app/push/devices/nope", "", nil), 404, "not_found")

	// The provider says the token is gone: removed and audited.
	if ok, err := e.svc.InvalidateDevice("app", storage.PlatformAPNs, apnsTok, push.Result{Outcome: push.ProviderTransient}); err != nil || ok {
		t.Fatalf("a transient failure removed the device: %v, %v", ok, err)
	}
	gone := push.Result{Outcome: push.DeviceGone, Status: 410, Reason: "Unregistered", InvalidSince: e.clock.Now().Add(-time.Hour)}
	if ok, err := e.svc.InvalidateDevice("app", storage.PlatformAPNs, apnsTok, gone); err != nil || ok {
		t.Fatalf("a token registered after its 410 timestamp was removed: %v, %v", ok, err)
	}
	gone.InvalidSince = e.clock.Now().Add(time.Second)
	if ok, err := e.svc.InvalidateDevice("app", storage.PlatformAPNs, apnsTok, gone); err != nil || !ok {
		t.Fatalf("InvalidateDevice = %v, %v", ok, err)
	}
	e.expect(e.do("GET", "/apps/app/push/devices/"+id, "", nil), 404, "not_found")
	if !e.audit.has(push.ActionDeviceInvalidated) {
		t.Fatalf("audit = %v", e.audit.actions())
	}
	r = e.do("DELETE", "/apps/app/push/users/u2", "", nil)
	if r.status != 200 || r.body["deleted"] != 4.0 {
		t.Fatalf("delete user: %s", r.raw)
	}
	if strings.Contains(e.seen.String()[strings.Index(e.seen.String(), secret)+len(secret):], secret) {
		t.Fatal("the device secret came back after registration")
	}
}

// FuzzClientBodies sends arbitrary bodies to the client routes that parse
// one: never a 5xx, always the JSON error shape.
func FuzzClientBodies(f *testing.F) {
	for _, seed := range []string{
		`{"platform":"web","subscription":{"endpoint":"http://127.0.0.1:9/x","keys":{"p256dh":"","auth":""}}}`,
		`{"platform":"fcm","token":"t","metadata":{"a":1}}`, `{"platform":"apns","token":"00ff","environment":"sandbox"}`,
		`{"socket_id":"1.2","auth":"app-key:00","user_data":"{\"id\":\"u\"}"}`, `{"socket_id":"1.2","auth":":","channel_data":"{}"}`,
		`{"interests":["a","private-b"]}`, `[]`, `null`, ``, `{"token":` + strings.Repeat(`"x`, 10),
	} {
		f.Add(seed)
	}
	e := newEnv(f, push.Config{})
	d := e.register("app", 0)
	base := "/apps/app/push/client/devices/" + d.id
	f.Fuzz(func(t *testing.T, body string) {
		for _, rt := range [][2]string{{"POST", "/apps/app/push/client/devices"}, {"PUT", base + "/user"}, {"PUT", base + "/token"},
			{"PUT", base + "/channels/private-x"}, {"PUT", base + "/channels/presence-x"}, {"PUT", base + "/interests"}} {
			req := httptest.NewRequest(rt[0], rt[1], strings.NewReader(body))
			req.Header.Set(push.DeviceSecretHeader, d.secret)
			w := httptest.NewRecorder()
			e.mux.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s %s %q: %d %s", rt[0], rt[1], body, w.Code, w.Body)
			}
			if w.Code >= 400 {
				var eb struct{ Error, Description string }
				if json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Error == "" || eb.Description == "" {
					t.Fatalf("%s %s %q: error body %s", rt[0], rt[1], body, w.Body)
				}
			}
		}
	})
}
