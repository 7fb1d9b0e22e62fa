package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

func TestPushCredentialKey(t *testing.T) {
	key32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 ASCII bytes
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(key32+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tcs := []struct {
		name    string
		env     map[string]string
		wantKey bool
		// wantPrevious is the number of previous keys.
		wantPrevious int
		wantBad      string // the variable a problem names
	}{
		{name: "none: push credential writes are refused later, not a config error", env: map[string]string{}},
		{name: "base64 key", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": key32}, wantKey: true},
		{name: "key file wins", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": "short",
			"PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE": file}, wantKey: true},
		{name: "wrong length", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": "c2hvcnQ="}, wantBad: "PUSH_CREDENTIAL_ENCRYPTION_KEY"},
		{name: "missing file", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE": file + ".nope"}, wantBad: "PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE"},
		{name: "previous keys", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": key32,
			"PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS": key32 + ", " + key32}, wantKey: true, wantPrevious: 2},
		{name: "bad previous key", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": key32,
			"PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS": key32 + ",c2hvcnQ="}, wantBad: "PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS"},
		{name: "previous key without a key", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS": key32},
			wantBad: "PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS"},
		{name: "bad APNs endpoint", env: map[string]string{"PUSH_APNS_ENDPOINT": "staging"}, wantBad: "PUSH_APNS_ENDPOINT"},
		{name: "bad FCM endpoint", env: map[string]string{"PUSH_FCM_ENDPOINT": "fcm.example"}, wantBad: "PUSH_FCM_ENDPOINT"},
		{name: "no devices per user", env: map[string]string{"PUSH_MAX_DEVICES_PER_USER": "0"}, wantBad: "PUSH_MAX_DEVICES_PER_USER"},
		{name: "negative channel auth TTL", env: map[string]string{"PUSH_CHANNEL_AUTH_TTL_SECONDS": "-1"}, wantBad: "PUSH_CHANNEL_AUTH_TTL_SECONDS"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if tc.wantBad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantBad+":") {
					t.Fatalf("error %v, want a problem naming %s", err, tc.wantBad)
				}
				if strings.Contains(err.Error(), "c2hvcnQ") {
					t.Fatalf("the error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var memory []*ratelimit.Memory
			pc := c.PushConfig(&memory)
			if got := len(pc.CredentialKey) == 32; got != tc.wantKey {
				t.Fatalf("key of %d bytes", len(pc.CredentialKey))
			}
			if len(pc.PreviousCredentialKeys) != tc.wantPrevious {
				t.Fatalf("%d previous keys", len(pc.PreviousCredentialKeys))
			}
		})
	}
}

// TestPushFCMTokenURL: PUSH_FCM_TOKEN_URL reaches push.Config, and is
// empty unless set.
func TestPushFCMTokenURL(t *testing.T) {
	for env, want := range map[string]string{"": "", "http://127.0.0.1:9/token": "http://127.0.0.1:9/token"} {
		c, err := loadConfig(map[string]string{"PUSH_FCM_TOKEN_URL": env})
		if err != nil {
			t.Fatal(err)
		}
		var memory []*ratelimit.Memory
		if got := c.PushConfig(&memory).FCMTokenURL; got != want {
			t.Fatalf("PUSH_FCM_TOKEN_URL=%q: FCMTokenURL %q", env, got)
		}
	}
}

func TestPushDeviceSettings(t *testing.T) {
	c, err := loadConfig(map[string]string{"PUSH_MAX_DEVICES_PER_USER": "3", "PUSH_MAX_INTERESTS_PER_DEVICE": "7",
		"PUSH_MAX_CHANNELS_PER_DEVICE": "9", "PUSH_MAX_DEVICES_PER_APP": "11", "PUSH_CHANNEL_AUTH_TTL_SECONDS": "3600"})
	if err != nil {
		t.Fatal(err)
	}
	var memory []*ratelimit.Memory
	pc := c.PushConfig(&memory)
	d := pc.Devices
	if len(memory) != 3 || pc.Limits.DeviceRequests != memory[2] || pc.Limits.Publishes != memory[0] {
		t.Fatalf("%d limiters: want the registrations', the devices' and the publishes' in memory", len(memory))
	}
	if dec := pc.Limits.Publishes.Allow("app"); dec.Limit != 100 {
		t.Fatalf("PUSH_PUBLISH_RPS default: %+v", dec)
	}
	if dec := pc.Limits.DeviceRequests.Allow("app\x00d"); dec.Limit != 10 {
		t.Fatalf("PUSH_DEVICE_REQUESTS_PER_SECOND default: %+v", dec)
	}
	if d.MaxDevicesPerUser != 3 || d.MaxInterestsPerDevice != 7 || d.MaxChannelsPerDevice != 9 || d.MaxDevicesPerApp != 11 || d.ChannelAuthTTL != time.Hour {
		t.Fatalf("Devices = %+v", d)
	}
}

// TestPushCredentialRoutesSigned mounts push on a real server: the
// credential routes answer signed requests, refuse unsigned ones, and the
// client route needs no signature.
func TestPushCredentialRoutesSigned(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	app := storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}
	if err := db.PutApp(app); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	audit := storage.NewAuditWriter(db, storage.AuditWriterConfig{}, nil)
	if _, err := routePush(srv, push.Config{CredentialKey: bytes.Repeat([]byte{3}, 32)}, db, audit, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); _ = db.Close() })
	srv.MarkReady()

	call := func(method, path, body string, sign bool) (int, string) {
		t.Helper()
		q := url.Values{}
		if sign {
			q.Set("auth_key", app.Key)
			q.Set("auth_timestamp", strconv.FormatInt(time.Now().Unix(), 10))
			q.Set("auth_version", "1.0")
			if body != "" {
				sum := md5.Sum([]byte(body))
				q.Set("body_md5", hex.EncodeToString(sum[:]))
			}
			q.Set("auth_signature", protocol.Sign(app.Secret, protocol.RequestString(method, path, q)))
		}
		req, _ := http.NewRequest(method, hs.URL+path+"?"+q.Encode(), strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const base = "/apps/a1/push/credentials"
	if code, body := call("POST", base+"/webpush/generate", `{"subject":"mailto:ops@example.com"}`, false); code != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d %s", code, body)
	}
	code, body := call("POST", base+"/webpush/generate", `{"subject":"mailto:ops@example.com"}`, true)
	if code != http.StatusCreated || !strings.Contains(body, `"vapid_key_id":"v1"`) {
		t.Fatalf("generate: %d %s", code, body)
	}
	// A credential change is an operator change: written at once to the
	// changes (this test never runs the refusal writer).
	if entries, err := db.Audit(storage.AuditFilter{App: "a1", Action: "push_vapid_generated"}); err != nil || len(entries) != 1 {
		t.Fatalf("audit %v %v", entries, err)
	}
	if code, body = call("GET", base, "", true); code != http.StatusOK || !strings.Contains(body, `"current_version":1`) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body = call("GET", "/apps/a1/push/client/web-vapid-public-key", "", false); code != http.StatusOK ||
		!strings.Contains(body, `"key_id":"v1"`) {
		t.Fatalf("client key: %d %s", code, body)
	}
	if code, body = call("DELETE", base+"/webpush/versions/1", "", true); code != http.StatusOK || !strings.Contains(body, `"revoked":[1]`) {
		t.Fatalf("revoke: %d %s", code, body)
	}
}

func TestCLIPushSettings(t *testing.T) {
	key32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	s := cliSettings(map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": key32, "PUSH_FCM_ENDPOINT": "http://127.0.0.1:9",
		"PUSH_FCM_TOKEN_URL":                      "http://127.0.0.1:9/token",
		"PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS": "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="})
	if len(s.Push.CredentialKey) != 32 || s.Push.CredentialKeyErr != nil || s.Push.FCMEndpoint != "http://127.0.0.1:9" ||
		len(s.Push.PreviousCredentialKeys) != 32 || s.Push.FCMTokenURL != "http://127.0.0.1:9/token" ||
		s.Push.APNsEndpoint != "production" {
		t.Fatalf("push settings %+v", s.Push)
	}
	s = cliSettings(map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": "c2hvcnQ="})
	if s.Push.CredentialKey != "" || s.Push.CredentialKeyErr == nil || strings.Contains(s.Push.CredentialKeyErr.Error(), "c2hvcnQ") {
		t.Fatalf("bad key: %+v", s.Push)
	}
	if s = cliSettings(nil); s.Push.CredentialKey != "" || s.Push.CredentialKeyErr != nil {
		t.Fatalf("no key: %+v", s.Push)
	}
}

func TestWebPushAllowedHosts(t *testing.T) {
	for _, tc := range []struct {
		env      string
		endpoint string
		ok       bool
	}{
		{"", "https://push.example.net/x", true},
		{"browsers", "https://fcm.googleapis.com/fcm/send/x", true},
		{"browsers", "https://push.example.net/x", false},
		{"push.example.net, *.example.org", "https://push.example.net/x", true},
		{"push.example.net, *.example.org", "https://a.example.org/x", true},
		{"push.example.net, *.example.org", "https://example.org/x", false},
	} {
		c, err := loadConfig(map[string]string{"PUSH_WEB_PUSH_ALLOWED_HOSTS": tc.env})
		if err != nil {
			t.Fatal(err)
		}
		pc := c.PushConfig(new([]*ratelimit.Memory))
		p256dh := "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
		_, _, err = webSubscription(false, pc.WebAllowedHosts)(tc.endpoint, p256dh, "BTBZMqHH6r4Tts7J_aSIgg")
		if (err == nil) != tc.ok {
			t.Errorf("PUSH_WEB_PUSH_ALLOWED_HOSTS=%q, %s: err %v, want ok %v", tc.env, tc.endpoint, err, tc.ok)
		}
	}
}
