package fcm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/internal/h2"
)

const (
	testProject = "demo-project"
	testEmail   = "sender@demo-project.iam.gserviceaccount.com"
	testKeyID   = "kid-0001"
	testRegTok  = "dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
)

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func serviceAccount(t testing.TB, tokenURI string) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(testRSAKey())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     testProject,
		"private_key_id": testKeyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   testEmail,
		"token_uri":      tokenURI,
	})
	return b
}

// fakeGoogle is the token endpoint and the FCM send endpoint.
type fakeGoogle struct {
	t          testing.TB
	tokenURL   string
	fetches    atomic.Int64
	tokenFail  atomic.Pointer[[2]any] // status, body: the token endpoint fails
	sends      atomic.Int64
	mu         sync.Mutex
	lastMsg    map[string]json.RawMessage
	respond    func(w http.ResponseWriter, accessToken string)
	tokenSrv   *httptest.Server
	sendSrv    *httptest.Server
	checkToken bool
}

func newFake(t testing.TB) *fakeGoogle {
	f := &fakeGoogle{t: t, checkToken: true}
	f.tokenSrv = httptest.NewServer(http.HandlerFunc(f.token))
	f.sendSrv = httptest.NewServer(http.HandlerFunc(f.send))
	t.Cleanup(f.tokenSrv.Close)
	t.Cleanup(f.sendSrv.Close)
	f.tokenURL = f.tokenSrv.URL + "/token"
	return f
}

func (f *fakeGoogle) client(t testing.TB) *Client {
	t.Helper()
	c, err := New(Config{ServiceAccount: serviceAccount(t, f.tokenURL), Endpoint: f.sendSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// token is the OAuth2 token endpoint: it checks the JWT-bearer grant and
// the RS256 assertion, then issues tok-1, tok-2, ….
func (f *fakeGoogle) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		f.t.Errorf("token request %s %s", r.Method, r.URL.Path)
	}
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("token form: %v", err)
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("grant_type %q", g)
	}
	if err := verifyAssertion(r.PostForm.Get("assertion"), f.tokenURL); err != nil {
		f.t.Errorf("assertion: %v", err)
	}
	if fail := f.tokenFail.Load(); fail != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail[0].(int))
		io.WriteString(w, fail[1].(string))
		return
	}
	n := f.fetches.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":3600,"token_type":"Bearer"}`, n)
}

func verifyAssertion(a, aud string) error {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts", len(parts))
	}
	b64 := base64.RawURLEncoding
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testRSAKey().PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return err
	}
	var h struct{ Alg, Typ, Kid string }
	var c struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	hb, _ := b64.DecodeString(parts[0])
	cb, _ := b64.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return fmt.Errorf("undecodable %s %s", hb, cb)
	}
	if h.Alg != "RS256" || h.Typ != "JWT" || h.Kid != testKeyID {
		return fmt.Errorf("header %s", hb)
	}
	if c.Iss != testEmail || c.Scope != Scope || c.Aud != aud || c.Exp-c.Iat != 3600 {
		return fmt.Errorf("claims %s", cb)
	}
	return nil
}

// send is the FCM messages:send endpoint.
func (f *fakeGoogle) send(w http.ResponseWriter, r *http.Request) {
	f.sends.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+testProject+"/messages:send" {
		f.t.Errorf("send request %s %s", r.Method, r.URL.Path)
	}
	access, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		f.t.Errorf("authorization %q", r.Header.Get("Authorization"))
	}
	var req struct {
		ValidateOnly bool                       `json:"validate_only"`
		Message      map[string]json.RawMessage `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.t.Errorf("send body: %v", err)
	}
	f.mu.Lock()
	f.lastMsg = req.Message
	respond := f.respond
	f.mu.Unlock()
	if respond == nil {
		io.WriteString(w, `{"name":"projects/demo-project/messages/0:1764583200%31bd1c9631bd1c96"}`)
		return
	}
	respond(w, access)
}

func (f *fakeGoogle) setRespond(fn func(w http.ResponseWriter, accessToken string)) {
	f.mu.Lock()
	f.respond = fn
	f.mu.Unlock()
}

func testBody(t testing.TB) json.RawMessage {
	b, err := Content{
		Notification: &Notification{Title: "Hi", Body: "there"},
		Data:         map[string]string{"k": "v"},
		Android:      json.RawMessage(`{"priority":"HIGH","ttl":"3600s"}`),
	}.Body()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// One access token, fetched with a verified JWT-bearer assertion, serves
// many concurrent sends.
func TestSendFetchesTokenOnce(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Go(func() {
			r := c.Send(context.Background(), Message{Token: testRegTok, Body: testBody(t)})
			if r.Outcome != push.Delivered || r.Status != 200 || !strings.HasPrefix(r.MessageID, "projects/demo-project/messages/") {
				t.Errorf("result %+v", r)
			}
		})
	}
	wg.Wait()
	if got := f.fetches.Load(); got != 1 {
		t.Fatalf("%d token fetches, want 1", got)
	}
	if got := f.sends.Load(); got != 32 {
		t.Fatalf("%d sends", got)
	}
	msg := f.lastMsg
	want := map[string]string{
		"token":        `"` + testRegTok + `"`,
		"notification": `{"title":"Hi","body":"there"}`,
		"data":         `{"k":"v"}`,
		"android":      `{"priority":"HIGH","ttl":"3600s"}`,
	}
	if len(msg) != len(want) {
		t.Fatalf("message %v", msg)
	}
	for k, v := range want {
		if string(msg[k]) != v {
			t.Errorf("%s: %s, want %s", k, msg[k], v)
		}
	}
}

func fcmErr(httpCode int, status, message, errorCode string, fields ...string) string {
	var details []string
	if errorCode != "" {
		details = append(details, `{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"`+errorCode+`"}`)
	}
	if len(fields) > 0 {
		var fv []string
		for _, f := range fields {
			fv = append(fv, `{"field":"`+f+`","description":"Invalid value"}`)
		}
		details = append(details, `{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[`+strings.Join(fv, ",")+`]}`)
	}
	return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q,"details":[%s]}}`, httpCode, message, status, strings.Join(details, ","))
}

func TestClassifyErrors(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	tcs := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		outcome    push.Outcome
		reason     string
		wait       time.Duration
	}{
		{"UNREGISTERED", 404, fcmErr(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"), "", push.DeviceGone, "UNREGISTERED", 0},
		{"INVALID_ARGUMENT bad token message", 400, fcmErr(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT"), "", push.DeviceGone, "INVALID_ARGUMENT (registration token)", 0},
		{"INVALID_ARGUMENT message.token field", 400, fcmErr(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT", "message.token"), "", push.DeviceGone, "INVALID_ARGUMENT (registration token)", 0},
		{"INVALID_ARGUMENT other field", 400, fcmErr(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT", "message.android.ttl"), "", push.CallerError, "INVALID_ARGUMENT", 0},
		{"INVALID_ARGUMENT status only", 400, fcmErr(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", ""), "", push.CallerError, "INVALID_ARGUMENT", 0},
		{"SENDER_ID_MISMATCH", 403, fcmErr(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"), "", push.DeviceFailing, "SENDER_ID_MISMATCH", 0},
		{"QUOTA_EXCEEDED", 429, fcmErr(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED"), "30", push.ProviderQuota, "QUOTA_EXCEEDED", 30 * time.Second},
		{"RESOURCE_EXHAUSTED status only", 429, fcmErr(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", ""), "", push.ProviderQuota, "RESOURCE_EXHAUSTED", 0},
		{"429 without body", 429, "", "7", push.ProviderQuota, "HTTP 429", 7 * time.Second},
		{"UNAVAILABLE", 503, fcmErr(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"), "10", push.ProviderTransient, "UNAVAILABLE", 10 * time.Second},
		{"INTERNAL", 500, fcmErr(500, "INTERNAL", "Internal error encountered.", "INTERNAL"), "", push.ProviderTransient, "INTERNAL", 0},
		{"UNSPECIFIED_ERROR", 500, fcmErr(500, "UNKNOWN", "Unknown error.", "UNSPECIFIED_ERROR"), "", push.ProviderTransient, "UNSPECIFIED_ERROR", 0},
		{"THIRD_PARTY_AUTH_ERROR", 401, fcmErr(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR"), "", push.CredentialProblem, "THIRD_PARTY_AUTH_ERROR", 0},
		{"PERMISSION_DENIED status only", 403, fcmErr(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", ""), "", push.CredentialProblem, "PERMISSION_DENIED", 0},
		{"NOT_FOUND status only", 404, fcmErr(404, "NOT_FOUND", "Requested entity was not found.", ""), "", push.CallerError, "NOT_FOUND", 0},
		{"413 without body", 413, "", "", push.CallerError, "HTTP 413", 0},
		{"502 html", 502, "<html>bad gateway</html>", "", push.ProviderTransient, "HTTP 502", 0},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			f.setRespond(func(w http.ResponseWriter, _ string) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			before := f.sends.Load()
			r := c.Send(context.Background(), Message{Token: testRegTok, Body: testBody(t)})
			if r.Outcome != tc.outcome || r.Status != tc.status || r.Reason != tc.reason || r.RetryAfter != tc.wait {
				t.Fatalf("result %+v, want %v %q wait %v", r, tc.outcome, tc.reason, tc.wait)
			}
			if got := f.sends.Load() - before; got != 1 {
				t.Fatalf("%d requests, want 1", got)
			}
		})
	}
	if f.fetches.Load() != 1 {
		t.Fatalf("%d token fetches", f.fetches.Load())
	}
}

// HTTP 401 without an FcmError: a new access token and one retry, shared
// by concurrent senders; then CredentialProblem.
func TestRejectedAccessToken(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	var rejected sync.Map
	rejected.Store("tok-1", true)
	f.setRespond(func(w http.ResponseWriter, access string) {
		if _, bad := rejected.Load(access); bad {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, fcmErr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", ""))
			return
		}
		io.WriteString(w, `{"name":"projects/demo-project/messages/1"}`)
	})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			if r := c.Send(context.Background(), Message{Token: testRegTok}); r.Outcome != push.Delivered {
				t.Errorf("result %+v", r)
			}
		})
	}
	wg.Wait()
	if got := f.fetches.Load(); got != 2 {
		t.Fatalf("%d token fetches, want 2", got)
	}

	rejected.Store("tok-2", true)
	rejected.Store("tok-3", true)
	before := f.sends.Load()
	r := c.Send(context.Background(), Message{Token: testRegTok})
	if r.Outcome != push.CredentialProblem || r.Status != 401 || r.Reason != "UNAUTHENTICATED" {
		t.Fatalf("result %+v", r)
	}
	if got := f.sends.Load() - before; got != 2 || f.fetches.Load() != 3 {
		t.Fatalf("%d requests (want 2), %d fetches (want 3)", got, f.fetches.Load())
	}
}

// Token endpoint failures: a refused assertion is a credential problem,
// an outage is transient; nothing is sent.
func TestTokenEndpointFailures(t *testing.T) {
	tcs := []struct {
		name    string
		status  int
		body    string
		outcome push.Outcome
		reason  string
	}{
		{"invalid_grant", 400, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`, push.CredentialProblem, "token endpoint: HTTP 400 invalid_grant"},
		{"unauthorized_client", 401, `{"error":"unauthorized_client"}`, push.CredentialProblem, "token endpoint: HTTP 401 unauthorized_client"},
		{"503", 503, `oops`, push.ProviderTransient, "token endpoint: HTTP 503"},
		{"429", 429, `{}`, push.ProviderTransient, "token endpoint: HTTP 429"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.tokenFail.Store(&[2]any{tc.status, tc.body})
			c := f.client(t)
			r := c.Send(context.Background(), Message{Token: testRegTok})
			if r.Outcome != tc.outcome || r.Reason != tc.reason || f.sends.Load() != 0 {
				t.Fatalf("result %+v, %d sends", r, f.sends.Load())
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		f := newFake(t)
		f.tokenSrv.Close()
		r := f.client(t).Send(context.Background(), Message{Token: testRegTok})
		if r.Outcome != push.ProviderTransient || f.sends.Load() != 0 {
			t.Fatalf("result %+v", r)
		}
	})
}

// Invalid messages are refused locally, before any token or request.
func TestValidateLocally(t *testing.T) {
	f := newFake(t)
	c := f.client(t)
	big := json.RawMessage(`{"data":{"k":"` + strings.Repeat("x", MaxMessage) + `"}}`)
	fits := json.RawMessage(`{"data":{"k":"` + strings.Repeat("x", MaxMessage-17) + `"}}`)
	if len(fits) != MaxMessage {
		t.Fatalf("fits is %d bytes", len(fits))
	}
	tcs := []struct {
		name    string
		m       Message
		outcome push.Outcome
		reason  string
	}{
		{"4096 bytes", Message{Token: testRegTok, Body: fits}, push.Delivered, ""},
		{"too large", Message{Token: testRegTok, Body: big}, push.CallerError, "message too large"},
		{"no token", Message{Body: testBody(t)}, push.CallerError, "missing registration token"},
		{"body with topic", Message{Token: testRegTok, Body: json.RawMessage(`{"topic":"news"}`)}, push.CallerError, errTarget.Error()},
		{"body with token", Message{Token: testRegTok, Body: json.RawMessage(`{"token":"other"}`)}, push.CallerError, errTarget.Error()},
		{"body not an object", Message{Token: testRegTok, Body: json.RawMessage(`[1]`)}, push.CallerError, "the message body is not a JSON object"},
		{"body not JSON", Message{Token: testRegTok, Body: json.RawMessage(`{"a":`)}, push.CallerError, "the message body is not a JSON object"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			before := f.sends.Load()
			r := c.Send(context.Background(), tc.m)
			if r.Outcome != tc.outcome || r.Reason != tc.reason {
				t.Fatalf("result %+v, want %v %q", r, tc.outcome, tc.reason)
			}
			if sent := f.sends.Load() - before; (tc.outcome == push.Delivered) != (sent == 1) {
				t.Fatalf("%d requests", sent)
			}
		})
	}
}

func TestRequestBody(t *testing.T) {
	tcs := []struct {
		name string
		body string
		want string
	}{
		{"nil body", "", `{"message":{"token":"t\"1"}}`},
		{"empty object", ` { } `, `{"message":{"token":"t\"1"}}`},
		{"fields", `{"data":{"a":"b"}}`, `{"message":{"token":"t\"1","data":{"a":"b"}}}`},
		{"whitespace", " {\n \"data\": {}\n} ", `{"message":{"token":"t\"1",` + "\n \"data\": {}\n" + `}}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := request(Message{Token: `t"1`, Body: json.RawMessage(tc.body)})
			if err != nil || string(got) != tc.want || !json.Valid(got) {
				t.Fatalf("%s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	sa := serviceAccount(t, "http://127.0.0.1:9/token")
	tcs := []struct {
		name    string
		cfg     Config
		sendURL string
	}{
		{"defaults", Config{ServiceAccount: sa}, "https://fcm.googleapis.com/v1/projects/demo-project/messages:send"},
		{"endpoint and project override", Config{ServiceAccount: sa, Endpoint: "http://127.0.0.1:8/", ProjectID: "other"}, "http://127.0.0.1:8/v1/projects/other/messages:send"},
		{"not JSON", Config{ServiceAccount: []byte("{")}, ""},
		{"not a service account", Config{ServiceAccount: []byte(`{"type":"authorized_user"}`)}, ""},
		{"bad project", Config{ServiceAccount: sa, ProjectID: "a/b"}, ""},
		{"endpoint with path", Config{ServiceAccount: sa, Endpoint: "https://fcm.googleapis.com/v1"}, ""},
		{"endpoint not http", Config{ServiceAccount: sa, Endpoint: "file:///etc"}, ""},
		{"token url not http", Config{ServiceAccount: sa, TokenURL: "gopher://x"}, ""},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if tc.sendURL == "" {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil || c.sendURL != tc.sendURL {
				t.Fatalf("%v, %v", c, err)
			}
		})
	}
}

// Config.TokenURL overrides the JSON's token_uri, and the token fetch
// goes through Config.TokenHTTPClient.
func TestTokenURLOverride(t *testing.T) {
	f := newFake(t)
	var used atomic.Int64
	tokenHC := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err := New(Config{
		ServiceAccount:  serviceAccount(t, "https://oauth2.invalid/token"),
		TokenURL:        f.tokenURL,
		Endpoint:        f.sendSrv.URL,
		TokenHTTPClient: tokenHC,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Send(context.Background(), Message{Token: testRegTok}); r.Outcome != push.Delivered {
		t.Fatalf("result %+v", r)
	}
	if f.fetches.Load() != 1 || used.Load() != 1 {
		t.Fatalf("%d fetches, %d through the token client", f.fetches.Load(), used.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkSend measures Send against loopback fakes (HTTP/1.1, as FCM
// fakes are; the real endpoint is HTTP/2).
func BenchmarkSend(b *testing.B) {
	f := newFake(b)
	c := f.client(b)
	m := Message{Token: testRegTok, Body: testBody(b)}
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := c.Send(context.Background(), m); r.Outcome != push.Delivered {
				b.Errorf("result %+v", r)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
}

// newHTTP2Client serves f's send endpoint over HTTP/2 with TLS and returns
// a Client on the dedicated transport trusting it.
func newHTTP2Client(t testing.TB, f *fakeGoogle) *Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			f.t.Errorf("send over HTTP/%d, want 2", r.ProtoMajor)
		}
		f.send(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := h2.Transport(h2.Config{})
	tr.TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	tr.TLSClientConfig.RootCAs.AddCert(srv.Certificate())
	t.Cleanup(tr.CloseIdleConnections)
	c, err := New(Config{ServiceAccount: serviceAccount(t, f.tokenURL), Endpoint: srv.URL, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The dedicated transport speaks HTTP/2 to an https endpoint.
func TestSendHTTP2(t *testing.T) {
	f := newFake(t)
	c := newHTTP2Client(t, f)
	for i := 0; i < 3; i++ {
		if r := c.Send(context.Background(), Message{Token: testRegTok, Body: testBody(t)}); r.Outcome != push.Delivered {
			t.Fatalf("result %+v", r)
		}
	}
	if f.sends.Load() != 3 || f.fetches.Load() != 1 {
		t.Fatalf("%d sends, %d fetches", f.sends.Load(), f.fetches.Load())
	}
}

// BenchmarkSendHTTP2 measures Send through the dedicated transport against
// a loopback HTTP/2 TLS send endpoint, as FCM is.
func BenchmarkSendHTTP2(b *testing.B) {
	f := newFake(b)
	c := newHTTP2Client(b, f)
	m := Message{Token: testRegTok, Body: testBody(b)}
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := c.Send(context.Background(), m); r.Outcome != push.Delivered {
				b.Errorf("result %+v", r)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
	if f.fetches.Load() != 1 {
		b.Fatalf("%d token fetches", f.fetches.Load())
	}
}
