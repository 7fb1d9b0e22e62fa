package webpush

import (
	"crypto/ecdh"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// received is what the fake push service accepted from one request.
type received struct {
	plaintext           []byte
	ttl, urgency, topic string
	aud, sub, k         string
	bodyLen             int
}

// fakePushService is a push service on 127.0.0.1 that checks a request as
// a real one would (method, headers, the VAPID JWT and its signature under
// k=) and decrypts the body with the test user agent's key, then answers
// with the reply registered for the path's case: POST /wp/{case}/{token}.
type fakePushService struct {
	t       testing.TB
	srv     *httptest.Server
	ua      *ecdh.PrivateKey
	auth    []byte
	vapidK  string // the k= the fake expects
	now     func() time.Time
	replies map[string]func(http.ResponseWriter) // set before start; read only after

	mu       sync.Mutex
	got      []received // guarded by mu
	problems []string   // guarded by mu
}

func newFakePushService(t testing.TB, vapidK string, now func() time.Time, replies map[string]func(http.ResponseWriter)) *fakePushService {
	t.Helper()
	ua, auth := newUA(t)
	f := &fakePushService{t: t, ua: ua, auth: auth, vapidK: vapidK, now: now, replies: replies}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /wp/{case}/{token}", f.serve)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// subscription is a subscription of the fake's user agent for a case.
func (f *fakePushService) subscription(c string) Subscription {
	return Subscription{Endpoint: f.srv.URL + "/wp/" + c + "/tok-SECRET42", P256dh: f.ua.PublicKey().Bytes(), Auth: f.auth}
}

func (f *fakePushService) fail(w http.ResponseWriter, format string, args ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	http.Error(w, `{"reason":"FakeCheckFailed"}`, http.StatusBadRequest)
}

func (f *fakePushService) serve(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	if ce, ct := h.Get("Content-Encoding"), h.Get("Content-Type"); ce != "aes128gcm" || ct != "application/octet-stream" {
		f.fail(w, "Content-Encoding %q, Content-Type %q", ce, ct)
		return
	}
	ttl := h.Get("TTL")
	if n, err := strconv.ParseUint(ttl, 10, 63); err != nil || n > 1<<31 {
		f.fail(w, "TTL %q", ttl)
		return
	}
	aud := "http://" + r.Host
	claims, k, err := verifyVAPID(h.Get("Authorization"), aud, f.now())
	if err != nil {
		f.fail(w, "VAPID: %v", err)
		return
	}
	if k != f.vapidK {
		f.fail(w, "k=%s, want %s", k, f.vapidK)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, RecordSize+1))
	if err != nil || len(body) > RecordSize || r.ContentLength != int64(len(body)) {
		f.fail(w, "body of %d bytes, Content-Length %d: %v", len(body), r.ContentLength, err)
		return
	}
	pt, err := decryptBody(f.ua, f.auth, body)
	if err != nil {
		f.fail(w, "decrypt: %v", err)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, received{
		plaintext: pt, ttl: ttl, urgency: h.Get("Urgency"), topic: h.Get("Topic"),
		aud: claims.Aud, sub: claims.Sub, k: k, bodyLen: len(body),
	})
	f.mu.Unlock()
	reply, ok := f.replies[r.PathValue("case")]
	if !ok {
		w.Header().Set("Location", "/m/"+r.PathValue("case"))
		w.WriteHeader(http.StatusCreated)
		return
	}
	reply(w)
}

// take returns and forgets what was received, failing the test on any
// check the fake failed.
func (f *fakePushService) take() []received {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Errorf("fake push service: %s", p)
	}
	got := f.got
	f.got, f.problems = nil, nil
	return got
}

// reply answers status with the headers and body given.
func reply(status int, body string, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}
