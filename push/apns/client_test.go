package apns

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
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
	testTeam   = "TEAM123456"
	testKeyID  = "KEY1234567"
	testDevice = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	testTopic  = "com.example.app"
)

// clock is a settable clock for token ages.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// verifyJWT checks the ES256 provider token with pub and returns its
// header and claims.
func verifyJWT(pub *ecdsa.PublicKey, tok string) (header, claims map[string]any, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, false
	}
	b64 := base64.RawURLEncoding
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, nil, false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, nil, false
	}
	h, _ := b64.DecodeString(parts[0])
	c, _ := b64.DecodeString(parts[1])
	if json.Unmarshal(h, &header) != nil || json.Unmarshal(c, &claims) != nil {
		return nil, nil, false
	}
	return header, claims, true
}

// fakeAPNs is an APNs stand-in. It checks every request's protocol and
// provider token and answers with respond.
type fakeAPNs struct {
	t        testing.TB
	pub      *ecdsa.PublicKey
	requests atomic.Int64
	mu       sync.Mutex
	jwts     map[string]int // provider tokens seen, with counts
	last     *http.Request
	lastBody []byte
	respond  func(w http.ResponseWriter, r *http.Request, jwt string)
}

func (f *fakeAPNs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.ProtoMajor != 2 {
		f.t.Errorf("request over HTTP/%d, want 2", r.ProtoMajor)
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	if !ok {
		f.t.Errorf("authorization %q", r.Header.Get("Authorization"))
	}
	if _, _, ok := verifyJWT(f.pub, jwt); !ok {
		f.t.Errorf("provider token does not verify")
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.jwts[jwt]++
	f.last, f.lastBody = r, body
	respond := f.respond
	f.mu.Unlock()
	if respond == nil {
		w.Header().Set("apns-id", "11111111-2222-3333-4444-555555555555")
		return
	}
	respond(w, r, jwt)
}

func (f *fakeAPNs) setRespond(fn func(w http.ResponseWriter, r *http.Request, jwt string)) {
	f.mu.Lock()
	f.respond = fn
	f.mu.Unlock()
}

func (f *fakeAPNs) distinctJWTs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jwts)
}

// newTLSFake starts an HTTP/2 TLS fake and a Client for it using the
// server's test client.
func newTLSFake(t testing.TB, clk *clock) (*fakeAPNs, *Client) {
	return newTLSFakeWith(t, clk, false)
}

// newTLSFakeWith starts an HTTP/2 TLS fake; ownTransport gives the Client
// its dedicated transport, trusting the fake's certificate.
func newTLSFakeWith(t testing.TB, clk *clock, ownTransport bool) (*fakeAPNs, *Client) {
	t.Helper()
	key, p8 := testKey(t)
	f := &fakeAPNs{t: t, pub: &key.PublicKey, jwts: map[string]int{}}
	srv := httptest.NewUnstartedServer(f)
	srv.EnableHTTP2 = true
	// Closing the server mid-handshake logs; the tests check results.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	now := time.Now
	if clk != nil {
		now = clk.Now
	}
	hc := srv.Client()
	if ownTransport {
		tr := h2.Transport(h2.Config{Only: true})
		tr.TLSClientConfig.RootCAs = x509.NewCertPool()
		tr.TLSClientConfig.RootCAs.AddCert(srv.Certificate())
		hc = &http.Client{Transport: tr}
		t.Cleanup(tr.CloseIdleConnections)
	}
	c, err := New(Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: srv.URL, HTTPClient: hc, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func note() *Notification {
	return &Notification{Token: testDevice, Topic: testTopic, Payload: []byte(`{"aps":{"alert":"hi"}}`)}
}

// Through the Client's own transport (HTTP/2 forced over TLS): every
// header and the provider token.
func TestSendHeadersAndProviderToken(t *testing.T) {
	clk := newClock()
	f, c := newTLSFakeWith(t, clk, true)
	n := &Notification{
		Token:      testDevice,
		Topic:      testTopic,
		PushType:   "alert",
		Priority:   5,
		Expiration: clk.Now().Add(time.Hour),
		CollapseID: "score",
		ID:         "123e4567-e89b-12d3-a456-426614174000",
		Payload:    []byte(`{"aps":{"alert":"hello"}}`),
	}
	f.setRespond(func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("apns-id", r.Header.Get("apns-id"))
	})
	r := c.Send(context.Background(), n)
	if r.Outcome != push.Delivered || r.Status != 200 || r.MessageID != n.ID {
		t.Fatalf("result %+v", r)
	}
	req := f.last
	if req.Method != http.MethodPost || req.URL.Path != "/3/device/"+testDevice {
		t.Fatalf("%s %s", req.Method, req.URL.Path)
	}
	want := map[string]string{
		"apns-push-type":   "alert",
		"apns-topic":       testTopic,
		"apns-priority":    "5",
		"apns-expiration":  "1796122800",
		"apns-collapse-id": "score",
		"apns-id":          n.ID,
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if string(f.lastBody) != string(n.Payload) {
		t.Errorf("body %s", f.lastBody)
	}
	jwt := strings.TrimPrefix(req.Header.Get("authorization"), "bearer ")
	header, claims, ok := verifyJWT(f.pub, jwt)
	if !ok {
		t.Fatal("provider token does not verify")
	}
	if len(header) != 2 || header["alg"] != "ES256" || header["kid"] != testKeyID {
		t.Errorf("header %v", header)
	}
	if len(claims) != 2 || claims["iss"] != testTeam || claims["iat"] != float64(clk.Now().Unix()) {
		t.Errorf("claims %v", claims)
	}

	// Optional headers are left out; a zero Expiration is "0".
	if r := c.Send(context.Background(), note()); r.Outcome != push.Delivered {
		t.Fatalf("result %+v", r)
	}
	for _, k := range []string{"apns-push-type", "apns-priority", "apns-collapse-id", "apns-id"} {
		if v, ok := f.last.Header[http.CanonicalHeaderKey(k)]; ok {
			t.Errorf("%s sent as %q", k, v)
		}
	}
	if got := f.last.Header.Get("apns-expiration"); got != "0" {
		t.Errorf("apns-expiration %q, want 0", got)
	}
}

// http:// endpoints speak HTTP/2 cleartext through the Client's own
// transport.
func TestSendH2C(t *testing.T) {
	key, p8 := testKey(t)
	f := &fakeAPNs{t: t, pub: &key.PublicKey, jwts: map[string]int{}}
	srv := httptest.NewUnstartedServer(f)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("server at %s", srv.URL)
	}
	c, err := New(Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if r := c.Send(context.Background(), note()); r.Outcome != push.Delivered || r.MessageID == "" {
			t.Fatalf("result %+v", r)
		}
	}
	if f.requests.Load() != 3 {
		t.Fatalf("%d requests", f.requests.Load())
	}
}

func TestClassifyReasons(t *testing.T) {
	clk := newClock()
	f, c := newTLSFake(t, clk)
	const ts = 1764583200123
	tcs := []struct {
		name       string
		status     int
		body       string
		retryAfter string
		outcome    push.Outcome
		reason     string
		wait       time.Duration
		since      time.Time
	}{
		{"200", 200, "", "", push.Delivered, "", 0, time.Time{}},
		{"400 BadDeviceToken", 400, `{"reason":"BadDeviceToken"}`, "", push.DeviceGone, "BadDeviceToken", 0, time.Time{}},
		{"400 DeviceTokenNotForTopic", 400, `{"reason":"DeviceTokenNotForTopic"}`, "", push.DeviceFailing, "DeviceTokenNotForTopic", 0, time.Time{}},
		{"400 BadTopic", 400, `{"reason":"BadTopic"}`, "", push.CallerError, "BadTopic", 0, time.Time{}},
		{"400 MissingTopic", 400, `{"reason":"MissingTopic"}`, "", push.CallerError, "MissingTopic", 0, time.Time{}},
		{"400 TopicDisallowed", 400, `{"reason":"TopicDisallowed"}`, "", push.CallerError, "TopicDisallowed", 0, time.Time{}},
		{"400 BadCollapseId", 400, `{"reason":"BadCollapseId"}`, "", push.CallerError, "BadCollapseId", 0, time.Time{}},
		{"400 BadExpirationDate", 400, `{"reason":"BadExpirationDate"}`, "", push.CallerError, "BadExpirationDate", 0, time.Time{}},
		{"400 BadMessageId", 400, `{"reason":"BadMessageId"}`, "", push.CallerError, "BadMessageId", 0, time.Time{}},
		{"400 BadPriority", 400, `{"reason":"BadPriority"}`, "", push.CallerError, "BadPriority", 0, time.Time{}},
		{"400 InvalidPushType", 400, `{"reason":"InvalidPushType"}`, "", push.CallerError, "InvalidPushType", 0, time.Time{}},
		{"400 DuplicateHeaders", 400, `{"reason":"DuplicateHeaders"}`, "", push.CallerError, "DuplicateHeaders", 0, time.Time{}},
		{"400 IdleTimeout", 400, `{"reason":"IdleTimeout"}`, "", push.ProviderTransient, "IdleTimeout", 0, time.Time{}},
		{"400 MissingDeviceToken", 400, `{"reason":"MissingDeviceToken"}`, "", push.CallerError, "MissingDeviceToken", 0, time.Time{}},
		{"400 PayloadEmpty", 400, `{"reason":"PayloadEmpty"}`, "", push.CallerError, "PayloadEmpty", 0, time.Time{}},
		{"400 without body", 400, ``, "", push.CallerError, "HTTP 400", 0, time.Time{}},
		{"403 ExpiredProviderToken young token", 403, `{"reason":"ExpiredProviderToken"}`, "", push.CredentialProblem, "ExpiredProviderToken", 0, time.Time{}},
		{"403 InvalidProviderToken", 403, `{"reason":"InvalidProviderToken"}`, "", push.CredentialProblem, "InvalidProviderToken", 0, time.Time{}},
		{"403 MissingProviderToken", 403, `{"reason":"MissingProviderToken"}`, "", push.CredentialProblem, "MissingProviderToken", 0, time.Time{}},
		{"403 BadCertificate", 403, `{"reason":"BadCertificate"}`, "", push.CredentialProblem, "BadCertificate", 0, time.Time{}},
		{"403 BadCertificateEnvironment", 403, `{"reason":"BadCertificateEnvironment"}`, "", push.CredentialProblem, "BadCertificateEnvironment", 0, time.Time{}},
		{"403 Forbidden", 403, `{"reason":"Forbidden"}`, "", push.CredentialProblem, "Forbidden", 0, time.Time{}},
		{"404 BadPath", 404, `{"reason":"BadPath"}`, "", push.CallerError, "BadPath", 0, time.Time{}},
		{"405 MethodNotAllowed", 405, `{"reason":"MethodNotAllowed"}`, "", push.CallerError, "MethodNotAllowed", 0, time.Time{}},
		{"410 Unregistered", 410, `{"reason":"Unregistered","timestamp":1764583200123}`, "", push.DeviceGone, "Unregistered", 0, time.UnixMilli(ts).UTC()},
		{"410 ExpiredToken", 410, `{"reason":"ExpiredToken","timestamp":1764583200123}`, "", push.DeviceGone, "ExpiredToken", 0, time.UnixMilli(ts).UTC()},
		{"410 without timestamp", 410, `{"reason":"Unregistered"}`, "", push.DeviceGone, "Unregistered", 0, time.Time{}},
		{"413 PayloadTooLarge", 413, `{"reason":"PayloadTooLarge"}`, "", push.CallerError, "PayloadTooLarge", 0, time.Time{}},
		{"429 TooManyRequests", 429, `{"reason":"TooManyRequests"}`, "", push.DeviceRetryLater, "TooManyRequests", 0, time.Time{}},
		{"429 TooManyRequests Retry-After", 429, `{"reason":"TooManyRequests"}`, "30", push.DeviceRetryLater, "TooManyRequests", 30 * time.Second, time.Time{}},
		{"429 TooManyProviderTokenUpdates", 429, `{"reason":"TooManyProviderTokenUpdates"}`, "", push.ProviderQuota, "TooManyProviderTokenUpdates", tokenUpdatesBackoff, time.Time{}},
		{"429 TooManyProviderTokenUpdates Retry-After", 429, `{"reason":"TooManyProviderTokenUpdates"}`, "120", push.ProviderQuota, "TooManyProviderTokenUpdates", 2 * time.Minute, time.Time{}},
		{"500 InternalServerError", 500, `{"reason":"InternalServerError"}`, "", push.ProviderTransient, "InternalServerError", 0, time.Time{}},
		{"500 Retry-After date", 500, `{"reason":"InternalServerError"}`, "Tue, 01 Dec 2026 10:15:00 GMT", push.ProviderTransient, "InternalServerError", 15 * time.Minute, time.Time{}},
		{"503 ServiceUnavailable", 503, `{"reason":"ServiceUnavailable"}`, "60", push.ProviderTransient, "ServiceUnavailable", time.Minute, time.Time{}},
		{"503 Shutdown", 503, `{"reason":"Shutdown"}`, "", push.ProviderTransient, "Shutdown", 0, time.Time{}},
		{"502 without body", 502, ``, "", push.ProviderTransient, "HTTP 502", 0, time.Time{}},
		{"418 unknown 4xx", 418, `{"reason":"Teapot"}`, "", push.CallerError, "Teapot", 0, time.Time{}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			f.setRespond(func(w http.ResponseWriter, _ *http.Request, _ string) {
				w.Header().Set("apns-id", "11111111-2222-3333-4444-555555555555")
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			before := f.requests.Load()
			r := c.Send(context.Background(), note())
			if r.Outcome != tc.outcome || r.Status != tc.status || r.Reason != tc.reason ||
				r.RetryAfter != tc.wait || !r.InvalidSince.Equal(tc.since) {
				t.Fatalf("result %+v, want %v %q wait %v since %v", r, tc.outcome, tc.reason, tc.wait, tc.since)
			}
			if tc.outcome == push.Delivered && r.MessageID == "" {
				t.Fatal("no MessageID")
			}
			if got := f.requests.Load() - before; got != 1 {
				t.Fatalf("%d requests, want 1", got)
			}
		})
	}
}

// Invalid notifications are refused locally and never sent.
func TestValidateLocally(t *testing.T) {
	f, c := newTLSFake(t, nil)
	big := func(n int) []byte { return []byte(`{"a":"` + strings.Repeat("x", n-8) + `"}`) }
	tcs := []struct {
		name    string
		edit    func(n *Notification)
		outcome push.Outcome
		reason  string
	}{
		{"payload 4096", func(n *Notification) { n.Payload = big(4096) }, push.Delivered, ""},
		{"payload 4097", func(n *Notification) { n.Payload = big(4097) }, push.CallerError, "PayloadTooLarge"},
		{"voip payload 5120", func(n *Notification) { n.PushType, n.Payload = "voip", big(5120) }, push.Delivered, ""},
		{"voip payload 5121", func(n *Notification) { n.PushType, n.Payload = "voip", big(5121) }, push.CallerError, "PayloadTooLarge"},
		{"empty payload", func(n *Notification) { n.Payload = nil }, push.CallerError, "PayloadEmpty"},
		{"token not hex", func(n *Notification) { n.Token = strings.Repeat("zz", 32) }, push.DeviceGone, "BadDeviceToken"},
		{"token odd length", func(n *Notification) { n.Token = testDevice[1:] }, push.DeviceGone, "BadDeviceToken"},
		{"token path escape", func(n *Notification) { n.Token = "../../x" }, push.DeviceGone, "BadDeviceToken"},
		{"empty token", func(n *Notification) { n.Token = "" }, push.DeviceGone, "BadDeviceToken"},
		{"uppercase token", func(n *Notification) { n.Token = strings.ToUpper(testDevice) }, push.Delivered, ""},
		{"missing topic", func(n *Notification) { n.Topic = "" }, push.CallerError, "MissingTopic"},
		{"collapse id 64", func(n *Notification) { n.CollapseID = strings.Repeat("c", 64) }, push.Delivered, ""},
		{"collapse id 65", func(n *Notification) { n.CollapseID = strings.Repeat("c", 65) }, push.CallerError, "BadCollapseId"},
		{"priority 7", func(n *Notification) { n.Priority = 7 }, push.CallerError, "BadPriority"},
		{"priority 1", func(n *Notification) { n.Priority = 1 }, push.Delivered, ""},
		{"id not UUID", func(n *Notification) { n.ID = "not-a-uuid" }, push.CallerError, "BadMessageId"},
		{"topic with newline", func(n *Notification) { n.Topic = "a\nb" }, push.CallerError, "invalid header value"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			n := note()
			tc.edit(n)
			before := f.requests.Load()
			r := c.Send(context.Background(), n)
			if r.Outcome != tc.outcome || r.Reason != tc.reason {
				t.Fatalf("result %+v, want %v %q", r, tc.outcome, tc.reason)
			}
			sent := f.requests.Load() - before
			if (tc.outcome == push.Delivered) != (sent == 1) {
				t.Fatalf("%d requests", sent)
			}
		})
	}
}

// One token is signed for many concurrent sends.
func TestProviderTokenSharedByConcurrentSends(t *testing.T) {
	f, c := newTLSFakeWith(t, newClock(), true)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Go(func() {
			if r := c.Send(context.Background(), note()); r.Outcome != push.Delivered {
				t.Errorf("result %+v", r)
			}
		})
	}
	wg.Wait()
	if got := c.tokens.Signed(); got != 1 {
		t.Fatalf("%d tokens signed, want 1", got)
	}
	if got := f.distinctJWTs(); got != 1 {
		t.Fatalf("%d distinct tokens seen, want 1", got)
	}
}

// The token is replaced after TokenRefresh, not before.
func TestProviderTokenRefresh(t *testing.T) {
	clk := newClock()
	f, c := newTLSFake(t, clk)
	send := func() {
		t.Helper()
		if r := c.Send(context.Background(), note()); r.Outcome != push.Delivered {
			t.Fatalf("result %+v", r)
		}
	}
	send()
	clk.Add(TokenRefresh - time.Second)
	send()
	if c.tokens.Signed() != 1 || f.distinctJWTs() != 1 {
		t.Fatalf("refreshed before %v: %d signed", TokenRefresh, c.tokens.Signed())
	}
	clk.Add(time.Second)
	send()
	send()
	if c.tokens.Signed() != 2 || f.distinctJWTs() != 2 {
		t.Fatalf("%d signed, %d seen after %v, want 2", c.tokens.Signed(), f.distinctJWTs(), TokenRefresh)
	}
}

// 403 ExpiredProviderToken: a new token and one retry when the used token
// is MinTokenAge old; never a new token within MinTokenAge.
func TestExpiredProviderToken(t *testing.T) {
	clk := newClock()
	f, c := newTLSFake(t, clk)
	var rejected sync.Map // tokens the fake calls expired
	expired := func(w http.ResponseWriter, _ *http.Request, jwt string) {
		if _, bad := rejected.Load(jwt); bad {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"reason":"ExpiredProviderToken"}`)
		}
	}
	f.setRespond(expired)
	if r := c.Send(context.Background(), note()); r.Outcome != push.Delivered {
		t.Fatalf("result %+v", r)
	}
	first := c.tokens.cur.Load().jwt
	rejected.Store(first, true)

	// Younger than MinTokenAge: no new token, no retry.
	clk.Add(MinTokenAge - time.Second)
	before := f.requests.Load()
	r := c.Send(context.Background(), note())
	if r.Outcome != push.CredentialProblem || r.Reason != "ExpiredProviderToken" || f.requests.Load()-before != 1 || c.tokens.Signed() != 1 {
		t.Fatalf("young token: %+v, %d requests, %d signed", r, f.requests.Load()-before, c.tokens.Signed())
	}

	// Old enough: one new token, one retry, delivered.
	clk.Add(time.Second)
	before = f.requests.Load()
	if r := c.Send(context.Background(), note()); r.Outcome != push.Delivered || f.requests.Load()-before != 2 || c.tokens.Signed() != 2 {
		t.Fatalf("old token: %+v, %d requests, %d signed", r, f.requests.Load()-before, c.tokens.Signed())
	}

	// The new token is rejected too, right away: no third token.
	rejected.Store(c.tokens.cur.Load().jwt, true)
	before = f.requests.Load()
	if r := c.Send(context.Background(), note()); r.Outcome != push.CredentialProblem || f.requests.Load()-before != 1 || c.tokens.Signed() != 2 {
		t.Fatalf("fresh token: %+v, %d requests, %d signed", r, f.requests.Load()-before, c.tokens.Signed())
	}

	// Every token rejected, the used one old: one retry, then
	// CredentialProblem; concurrent senders share the one new token. A
	// sender that starts with that new token gets no retry: it is young.
	f.setRespond(func(w http.ResponseWriter, _ *http.Request, _ string) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"reason":"ExpiredProviderToken"}`)
	})
	clk.Add(MinTokenAge)
	before = f.requests.Load()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			if r := c.Send(context.Background(), note()); r.Outcome != push.CredentialProblem {
				t.Errorf("result %+v", r)
			}
		})
	}
	wg.Wait()
	if got := f.requests.Load() - before; got < 9 || got > 16 || c.tokens.Signed() != 3 {
		t.Fatalf("%d requests (want 9 to 16), %d signed (want 3)", got, c.tokens.Signed())
	}
}

// A network failure is transient and its reason never holds the device
// token (the request URL does).
func TestNetworkError(t *testing.T) {
	_, p8 := testKey(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Send(context.Background(), note())
	if r.Outcome != push.ProviderTransient || r.Status != 0 || strings.Contains(r.Reason, testDevice) || r.Reason == "" {
		t.Fatalf("result %+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := c.Send(ctx, note()); r.Outcome != push.ProviderTransient || r.Reason != "context canceled" {
		t.Fatalf("canceled: %+v", r)
	}
}

func TestNewConfig(t *testing.T) {
	_, p8 := testKey(t)
	tcs := []struct {
		name     string
		cfg      Config
		wantBase string
	}{
		{"default is production", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8}, ProductionURL},
		{"production", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "production"}, ProductionURL},
		{"development", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "development"}, DevelopmentURL},
		{"https URL", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "https://apns.example:2197/"}, "https://apns.example:2197"},
		{"h2c URL", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "http://127.0.0.1:9"}, "http://127.0.0.1:9"},
		{"ftp URL", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "ftp://x"}, ""},
		{"URL with path", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "https://x/3/device"}, ""},
		{"sandbox typo", Config{TeamID: testTeam, KeyID: testKeyID, Key: p8, Endpoint: "sandbox"}, ""},
		{"no team", Config{KeyID: testKeyID, Key: p8}, ""},
		{"bad key", Config{TeamID: testTeam, KeyID: testKeyID, Key: []byte("nope")}, ""},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if tc.wantBase == "" {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil || c.base != tc.wantBase {
				t.Fatalf("base %v, err %v", c, err)
			}
		})
	}
}

// BenchmarkSend measures Send through the dedicated transport against a
// loopback HTTP/2 TLS fake.
func BenchmarkSend(b *testing.B) {
	_, c := newTLSFakeWith(b, nil, true)
	n := note()
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := c.Send(context.Background(), n); r.Outcome != push.Delivered {
				b.Errorf("result %+v", r)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
}
