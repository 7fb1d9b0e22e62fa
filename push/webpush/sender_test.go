package webpush

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockudo/sockudo/internal/netguard"
	"github.com/sockudo/sockudo/push"
)

const testSubject = "mailto:ops@example.com"

func newTestSender(t testing.TB, cfg Config, hc *http.Client) (*Sender, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	if cfg.Key == nil {
		k, err := GenerateVAPIDKey()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Key = k
	}
	if cfg.Subject == "" {
		cfg.Subject = testSubject
	}
	cfg.Now = clock.now
	if hc == nil {
		hc = NewHTTPClient(HTTPConfig{AllowLocal: cfg.AllowLocal, Timeout: 10 * time.Second})
	}
	s, err := New(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// checkNoSecrets fails if a result quotes the endpoint's path or token.
func checkNoSecrets(t *testing.T, r push.Result) {
	t.Helper()
	if strings.Contains(r.Reason, "SECRET") || strings.Contains(r.Reason, "/wp/") {
		t.Errorf("reason %q quotes the endpoint", r.Reason)
	}
}

func TestSendStatusClasses(t *testing.T) {
	retryDate := time.Now().Add(90 * time.Second).UTC().Truncate(time.Second)
	replies := map[string]func(http.ResponseWriter){
		"created":     reply(201, "", "Location", "https://push.example/m/msg-1"),
		"ok":          reply(200, ""),
		"accepted":    reply(202, "", "Location", "/m/2"),
		"bad-request": reply(400, `{"reason":"BadRequest"}`),
		"bad-jwt":     reply(403, `{"reason":"BadJwtToken"}`),
		"unauth":      reply(401, `{"code":401,"errno":109,"error":"Unauthorized","message":"Request did not validate missing authorization header"}`),
		"not-found":   reply(404, ""),
		"gone":        reply(410, `{"code":410,"errno":106,"error":"Gone","message":"Request did not validate invalid token"}`),
		"too-large":   reply(413, `{"code":413,"errno":104,"error":"Payload Too Large"}`),
		"quota":       reply(429, "slow down", "Retry-After", "120"),
		"quota-date":  reply(429, "", "Retry-After", retryDate.Format(http.TimeFormat)),
		"broken":      reply(500, "internal"),
		"unavailable": reply(503, "", "Retry-After", "7"),
		"echo":        reply(404, `{"reason":"no subscription at /wp/echo/tok-SECRET42"}`),
		"redirect":    reply(302, "", "Location", "http://127.0.0.1:1/elsewhere"),
	}
	key, _ := GenerateVAPIDKey()
	s, clock := newTestSender(t, Config{Key: key, AllowLocal: true}, nil)
	f := newFakePushService(t, key.PublicKey(), clock.now, replies)

	tcs := []struct {
		name       string
		outcome    push.Outcome
		status     int
		reason     string
		retryAfter time.Duration
		messageID  string
	}{
		{"created", push.Delivered, 201, "", 0, "https://push.example/m/msg-1"},
		{"ok", push.Delivered, 200, "", 0, ""},
		{"accepted", push.Delivered, 202, "", 0, "/m/2"},
		{"bad-request", push.CallerError, 400, "BadRequest", 0, ""},
		{"bad-jwt", push.CredentialProblem, 403, "BadJwtToken", 0, ""},
		{"unauth", push.CredentialProblem, 401, "errno 109", 0, ""},
		{"not-found", push.DeviceGone, 404, "Not Found", 0, ""},
		{"gone", push.DeviceGone, 410, "errno 106", 0, ""},
		{"too-large", push.CallerError, 413, "errno 104", 0, ""},
		{"quota", push.ProviderQuota, 429, "Too Many Requests", 2 * time.Minute, ""},
		{"quota-date", push.ProviderQuota, 429, "Too Many Requests", retryDate.Sub(clock.now()), ""},
		{"broken", push.ProviderTransient, 500, "Internal Server Error", 0, ""},
		{"unavailable", push.ProviderTransient, 503, "Service Unavailable", 7 * time.Second, ""},
		{"echo", push.DeviceGone, 404, "Not Found", 0, ""},
		{"redirect", push.CallerError, 302, "Found", 0, ""},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(`{"title":"hi","case":"` + tc.name + `"}`)
			r := s.Send(context.Background(), f.subscription(tc.name), payload, Options{TTL: time.Hour, Urgency: UrgencyHigh, Topic: "news_1"})
			want := push.Result{Outcome: tc.outcome, Status: tc.status, Reason: tc.reason, RetryAfter: tc.retryAfter, MessageID: tc.messageID}
			if r != want {
				t.Fatalf("result %+v\n          want %+v", r, want)
			}
			checkNoSecrets(t, r)
			got := f.take()
			if len(got) != 1 {
				t.Fatalf("the fake received %d requests", len(got))
			}
			g := got[0]
			if !bytes.Equal(g.plaintext, payload) || g.ttl != "3600" || g.urgency != "high" || g.topic != "news_1" ||
				g.aud != f.srv.URL || g.sub != testSubject || g.k != key.PublicKey() {
				t.Fatalf("received %+v", g)
			}
		})
	}
}

func TestSendHeadersAndPadding(t *testing.T) {
	key, _ := GenerateVAPIDKey()
	s, clock := newTestSender(t, Config{Key: key, AllowLocal: true, PadTo: 256}, nil)
	f := newFakePushService(t, key.PublicKey(), clock.now, nil)
	tcs := []struct {
		name                string
		opts                Options
		ttl, urgency, topic string
		payloadLen, bodyLen int
	}{
		{"defaults", Options{}, "2419200", "", "", 10, Overhead + 256},
		{"ttl now", Options{TTL: -1}, "0", "", "", 300, Overhead + 512},
		{"sub-second ttl rounds up", Options{TTL: time.Millisecond, Urgency: UrgencyVeryLow}, "1", "very-low", "", 0, Overhead},
		{"limit caps padding", Options{TTL: 90 * time.Second, Topic: strings.Repeat("A", 32)}, "90", "", strings.Repeat("A", 32), DefaultMaxPayload, Overhead + DefaultMaxPayload},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{'p'}, tc.payloadLen)
			if r := s.Send(context.Background(), f.subscription("x"), payload, tc.opts); r.Outcome != push.Delivered {
				t.Fatalf("result %+v", r)
			}
			got := f.take()
			if len(got) != 1 {
				t.Fatalf("%d requests", len(got))
			}
			g := got[0]
			if !bytes.Equal(g.plaintext, payload) || g.ttl != tc.ttl || g.urgency != tc.urgency || g.topic != tc.topic || g.bodyLen != tc.bodyLen {
				t.Fatalf("received ttl=%s urgency=%s topic=%s body=%d, payload ok %v", g.ttl, g.urgency, g.topic, g.bodyLen, bytes.Equal(g.plaintext, payload))
			}
		})
	}
}

// Whatever can be checked locally fails as CallerError before a request.
func TestSendRefusedLocally(t *testing.T) {
	key, _ := GenerateVAPIDKey()
	s, clock := newTestSender(t, Config{Key: key, AllowLocal: true, MaxPayload: 1000}, nil)
	f := newFakePushService(t, key.PublicKey(), clock.now, nil)
	good := f.subscription("x")
	badKeys := good
	badKeys.P256dh = append([]byte{4}, make([]byte, 64)...)
	shortAuth := good
	shortAuth.Auth = good.Auth[:8]
	noURL := good
	noURL.Endpoint = "wp/x/tok-SECRET42"
	tcs := []struct {
		name    string
		sub     Subscription
		payload int
		opts    Options
		reason  string
	}{
		{"payload over the limit", good, 1001, Options{}, "payload too large: 1001 bytes, limit 1000"},
		{"bad urgency", good, 1, Options{Urgency: "urgent"}, "urgency must be very-low, low, normal or high"},
		{"topic too long", good, 1, Options{Topic: strings.Repeat("a", 33)}, "topic longer than 32 characters"},
		{"topic alphabet", good, 1, Options{Topic: "a+b"}, "topic must use the base64url alphabet"},
		{"p256dh off the curve", badKeys, 1, Options{}, "webpush: invalid subscription keys: p256dh is not an uncompressed P-256 point"},
		{"short auth", shortAuth, 1, Options{}, "webpush: invalid subscription keys: auth is 8 bytes, want 16"},
		{"not a URL", noURL, 1, Options{}, "webpush: invalid endpoint: scheme must be https"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Send(context.Background(), tc.sub, make([]byte, tc.payload), tc.opts)
			if r.Outcome != push.CallerError || r.Reason != tc.reason || r.Status != 0 {
				t.Fatalf("result %+v, want caller error %q", r, tc.reason)
			}
			checkNoSecrets(t, r)
			if got := f.take(); len(got) != 0 {
				t.Fatalf("%d requests sent", len(got))
			}
		})
	}
}

// With AllowLocal off, loopback endpoints are refused by the endpoint rules
// and, for names, at dial time; nothing reaches the fake.
func TestSendSSRFRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(201)
	}))
	t.Cleanup(srv.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(201)
	}))
	t.Cleanup(plain.Close)
	ua, auth := newUA(t)
	sub := func(endpoint string) Subscription {
		return Subscription{Endpoint: endpoint, P256dh: ua.PublicKey().Bytes(), Auth: auth}
	}
	strict, _ := newTestSender(t, Config{}, nil)
	tlsPort := srv.URL[strings.LastIndex(srv.URL, ":"):]

	for _, tc := range []struct{ name, endpoint, reason string }{
		{"http", plain.URL + "/wp/tok-SECRET42", "webpush: endpoint not allowed: https required"},
		{"IP literal", srv.URL + "/wp/tok-SECRET42", "webpush: endpoint not allowed: IP literal host"},
		{"IPv6 literal", "https://[::1]" + tlsPort + "/wp/tok-SECRET42", "webpush: endpoint not allowed: IP literal host"},
		{"localhost", "https://localhost" + tlsPort + "/wp/tok-SECRET42", "webpush: endpoint not allowed: localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := strict.Send(context.Background(), sub(tc.endpoint), []byte("x"), Options{})
			if r.Outcome != push.CallerError || r.Reason != tc.reason {
				t.Fatalf("result %+v, want caller error %q", r, tc.reason)
			}
			checkNoSecrets(t, r)
		})
	}

	// The address check at dial time: a sender whose endpoint rules are
	// lifted still cannot reach loopback through the strict client, as a
	// name resolving (or rebinding) to a private address would not.
	t.Run("private address at dial", func(t *testing.T) {
		s, _ := newTestSender(t, Config{AllowLocal: true}, NewHTTPClient(HTTPConfig{}))
		r := s.Send(context.Background(), sub(plain.URL+"/wp/tok-SECRET42"), []byte("x"), Options{})
		if r.Outcome != push.CallerError || r.Reason != "endpoint address not allowed" {
			t.Fatalf("result %+v", r)
		}
		checkNoSecrets(t, r)
		_, err := NewHTTPClient(HTTPConfig{}).Get(srv.URL)
		if !errors.Is(err, netguard.ErrForbidden) {
			t.Fatalf("strict client reached %v: %v", "loopback", err)
		}
	})

	// No redirect is followed, so a redirect cannot lead to an address.
	t.Run("redirect not followed", func(t *testing.T) {
		var inner atomic.Int32
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { inner.Add(1) }))
		t.Cleanup(target.Close)
		redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/internal", http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redir.Close)
		s, _ := newTestSender(t, Config{AllowLocal: true}, nil)
		r := s.Send(context.Background(), sub(redir.URL+"/wp/tok-SECRET42"), []byte("x"), Options{})
		if r.Outcome != push.CallerError || r.Status != http.StatusTemporaryRedirect || inner.Load() != 0 {
			t.Fatalf("result %+v, target hit %d times", r, inner.Load())
		}
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("refused endpoints were reached %d times", n)
	}
}

func TestSendNetworkFailures(t *testing.T) {
	s, _ := newTestSender(t, Config{AllowLocal: true}, nil)
	ua, auth := newUA(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	sub := Subscription{Endpoint: url + "/wp/tok-SECRET42", P256dh: ua.PublicKey().Bytes(), Auth: auth}

	r := s.Send(context.Background(), sub, []byte("x"), Options{})
	if r.Outcome != push.ProviderTransient || r.Reason != "network: dial failed" || r.Status != 0 {
		t.Fatalf("connection refused: %+v", r)
	}
	checkNoSecrets(t, r)

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if r := s.Send(ctx, sub, []byte("x"), Options{}); r.Outcome != push.ProviderTransient || r.Reason != "timeout" {
		t.Fatalf("deadline: %+v", r)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if r := s.Send(ctx, sub, []byte("x"), Options{}); r.Outcome != push.ProviderTransient || r.Reason != "canceled" {
		t.Fatalf("canceled: %+v", r)
	}
}

func TestSendAllowedHosts(t *testing.T) {
	s, _ := newTestSender(t, Config{AllowedHosts: DefaultAllowedHosts}, nil)
	ua, auth := newUA(t)
	sub := Subscription{Endpoint: "https://push.example/wp/tok-SECRET42", P256dh: ua.PublicKey().Bytes(), Auth: auth}
	r := s.Send(context.Background(), sub, []byte("x"), Options{})
	if r.Outcome != push.CallerError || r.Reason != "webpush: endpoint not allowed: push service not in the allowed hosts" {
		t.Fatalf("result %+v", r)
	}
	// AllowLocal (tests) ignores the list.
	key, _ := GenerateVAPIDKey()
	local, clock := newTestSender(t, Config{Key: key, AllowLocal: true, AllowedHosts: DefaultAllowedHosts}, nil)
	f := newFakePushService(t, key.PublicKey(), clock.now, nil)
	if r := local.Send(context.Background(), f.subscription("x"), []byte("x"), Options{}); r.Outcome != push.Delivered {
		t.Fatalf("local result %+v", r)
	}
	f.take()
}

// Old VAPID keys keep working: a sender per key, one shared client, and
// each request carries its own key's k= and signature.
func TestSendersPerVAPIDKeyShareAClient(t *testing.T) {
	hc := NewHTTPClient(HTTPConfig{AllowLocal: true})
	for range 2 {
		key, _ := GenerateVAPIDKey()
		s, clock := newTestSender(t, Config{Key: key, AllowLocal: true}, hc)
		f := newFakePushService(t, key.PublicKey(), clock.now, nil)
		if r := s.Send(context.Background(), f.subscription("x"), []byte("hello"), Options{}); r.Outcome != push.Delivered {
			t.Fatalf("result %+v", r)
		}
		if got := f.take(); len(got) != 1 || s.PublicKey() != key.PublicKey() {
			t.Fatalf("%d requests", len(got))
		}
	}
}

func TestNewValidates(t *testing.T) {
	key, _ := GenerateVAPIDKey()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{Subject: testSubject}},
		{"no subject", Config{Key: key}},
		{"localhost subject", Config{Key: key, Subject: "mailto:a@localhost"}},
		{"payload over one record", Config{Key: key, Subject: testSubject, MaxPayload: MaxRecordPlaintext + 1}},
		{"negative payload", Config{Key: key, Subject: testSubject, MaxPayload: -1}},
		{"negative padding", Config{Key: key, Subject: testSubject, PadTo: -1}},
	} {
		if _, err := New(tc.cfg, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	s, err := New(Config{Key: key, Subject: testSubject}, nil)
	if err != nil || s.maxPayload != DefaultMaxPayload || DefaultMaxPayload != 2967 {
		t.Fatalf("defaults: %v", err)
	}
}

// BenchmarkSend sends to a loopback push service that reads the body and
// answers 201: encryption, VAPID (cached), HTTP/1.1 over loopback. The
// service shares the machine's cores with the sender.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Location", "/m/1")
		w.WriteHeader(http.StatusCreated)
	}))
	b.Cleanup(srv.Close)
	s, _ := newTestSender(b, Config{AllowLocal: true}, nil)
	ua, auth := newUA(b)
	sub := Subscription{Endpoint: srv.URL + "/wp/tok", P256dh: ua.PublicKey().Bytes(), Auth: auth}
	payload := bytes.Repeat([]byte("x"), 512)
	run := func(b *testing.B, send func(func() bool)) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		send(func() bool {
			r := s.Send(context.Background(), sub, payload, Options{TTL: time.Minute})
			return r.Outcome == push.Delivered
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
	}
	b.Run("serial", func(b *testing.B) {
		run(b, func(send func() bool) {
			for b.Loop() {
				if !send() {
					b.Fatal("not delivered")
				}
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		run(b, func(send func() bool) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !send() {
						b.Error("not delivered")
						return
					}
				}
			})
		})
	})
}
