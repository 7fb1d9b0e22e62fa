package push

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// testCredKey is the credential encryption key of the tests.
var testCredKey = bytes.Repeat([]byte{7}, 32)

// testP8 is a fresh APNs .p8 (PKCS#8 PEM, EC P-256).
func testP8(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

var (
	rsaOnce sync.Once
	rsaPEM  string
)

// testServiceAccount is a service-account JSON with a real RSA key (made
// once per test binary: RSA key generation is slow under -race).
func testServiceAccount(t testing.TB) map[string]any {
	t.Helper()
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		rsaPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	return map[string]any{
		"type": "service_account", "project_id": "demo-project", "private_key_id": "abc123",
		"private_key": rsaPEM, "client_email": "push@demo-project.iam.gserviceaccount.com",
		"token_uri": "https://oauth2.googleapis.com/token",
	}
}

// pemBody is the base64 body of a PEM: what must never appear anywhere.
func pemBody(s string) string {
	b, _ := pem.Decode([]byte(s))
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if b == nil || len(lines) < 3 {
		panic("not a PEM")
	}
	return lines[1] // the first base64 line of the key
}

// fakeClient is what the tests' ClientBuilder makes.
type fakeClient struct {
	oc     OpenedCredential
	closed atomic.Bool
}

func (c *fakeClient) Close() { c.closed.Store(true) }

// fakeBuilder refuses what the provider packages would: an unparsable
// key, a subject at localhost.
func fakeBuilder(oc OpenedCredential) (any, error) {
	if oc.WebPush != nil && strings.HasSuffix(oc.WebPush.Subject, "@localhost") {
		return nil, errors.New("webpush: invalid VAPID subject: the mailto: address needs a real domain")
	}
	return &fakeClient{oc: oc}, nil
}

// auditLog records audit entries.
type auditLog struct {
	mu      sync.Mutex
	entries []storage.AuditEntry
}

func (a *auditLog) Record(e storage.AuditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, e)
}

func (a *auditLog) all() []storage.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]storage.AuditEntry(nil), a.entries...)
}

// testClock is an injected clock.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func openDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "push.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestCredentials(t *testing.T, key []byte) (*Credentials, *auditLog, *testClock, *storage.DB) {
	t.Helper()
	db := openDB(t)
	audit, clk := &auditLog{}, newTestClock()
	m, err := NewCredentials(db, Config{CredentialKey: key}, fakeBuilder, audit, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return m, audit, clk, db
}

func apnsBody(t testing.TB, p8 string) []byte {
	b, _ := json.Marshal(map[string]string{"team_id": "TEAM123456", "key_id": "KEY1234567", "topic": "com.example.app", "p8": p8})
	return b
}

func TestSealOpenAndTamper(t *testing.T) {
	s, err := newSealer(testCredKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"p8":"very secret"}`)
	blob, err := s.seal("app1", ProviderAPNs, 3, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("very secret")) {
		t.Fatal("plaintext in the blob")
	}
	again, _ := s.seal("app1", ProviderAPNs, 3, secret)
	if bytes.Equal(blob, again) {
		t.Fatal("two seals are equal: the nonce is not random")
	}
	got, err := s.open("app1", ProviderAPNs, 3, blob)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("round trip: %q %v", got, err)
	}
	other, _ := newSealer(bytes.Repeat([]byte{8}, 32))
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-5] ^= 'A' ^ 'B'
	tcs := []struct {
		name    string
		open    func() ([]byte, error)
		wantErr error
	}{
		{"another app", func() ([]byte, error) { return s.open("app2", ProviderAPNs, 3, blob) }, ErrCredentialTampered},
		{"another provider", func() ([]byte, error) { return s.open("app1", ProviderFCM, 3, blob) }, ErrCredentialTampered},
		{"another version", func() ([]byte, error) { return s.open("app1", ProviderAPNs, 2, blob) }, ErrCredentialTampered},
		{"a flipped byte", func() ([]byte, error) { return s.open("app1", ProviderAPNs, 3, flipped) }, ErrCredentialTampered},
		{"not an envelope", func() ([]byte, error) { return s.open("app1", ProviderAPNs, 3, []byte("garbage")) }, ErrCredentialTampered},
		{"truncated", func() ([]byte, error) { return s.open("app1", ProviderAPNs, 3, blob[:len(envelopePrefix)+12]) }, ErrCredentialTampered},
		{"another key", func() ([]byte, error) { return other.open("app1", ProviderAPNs, 3, blob) }, ErrCredentialOtherKey},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.open(); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := newSealer([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}

// TestStoredBlobCannotMoveBetweenApps copies app1's sealed blob into
// app2's version: the registry refuses to open it.
func TestStoredBlobCannotMoveBetweenApps(t *testing.T) {
	m, _, _, db := newTestCredentials(t, testCredKey)
	if _, err := m.Put("app1", ProviderAPNs, apnsBody(t, testP8(t)), CredentialActor{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	rec, err := db.CurrentPushCredential("app1", "apns")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = db.AddPushCredential("app2", "apns", storage.PushCredential{}, func(uint64) ([]byte, error) { return rec.Sealed, nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Registry().Current("app2", ProviderAPNs); !errors.Is(err, ErrCredentialTampered) {
		t.Fatalf("moved blob: %v", err)
	}
	// Validation reports it, and it shows as the version's last error.
	res, err := m.Validate(t.Context(), "app2", ProviderAPNs, 0, false, CredentialActor{Source: "test"})
	if err != nil || res.OK || !strings.Contains(res.Error, "does not open") {
		t.Fatalf("validate moved blob: %+v %v", res, err)
	}
	list, _ := m.List("app2", ProviderAPNs)
	if v := list[0].Versions[0]; v.LastError != res.Error || !v.LastUsedAt.IsZero() {
		t.Fatalf("metadata after a failed validation: %+v", v)
	}
	// A blob sealed under another encryption key says so.
	other, _ := newSealer(bytes.Repeat([]byte{9}, 32))
	_, _, err = db.AddPushCredential("app2", "apns", storage.PushCredential{}, func(v uint64) ([]byte, error) {
		return other.seal("app2", ProviderAPNs, v, []byte(`{}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	res, _ = m.Validate(t.Context(), "app2", ProviderAPNs, 0, false, CredentialActor{Source: "test"})
	if res.OK || !strings.Contains(res.Error, "another encryption key") {
		t.Fatalf("validate other key: %+v", res)
	}
	if _, err := m.Registry().Current("app1", ProviderAPNs); err != nil {
		t.Fatal(err)
	}
}

// TestNoPlaintextInDatabase puts every kind of credential and looks for
// their secrets in the database file's bytes.
func TestNoPlaintextInDatabase(t *testing.T) {
	m, _, _, db := newTestCredentials(t, testCredKey)
	p8 := testP8(t)
	sa := testServiceAccount(t)
	saBody, _ := json.Marshal(map[string]any{"service_account": sa})
	vk, _ := generateVAPIDKey()
	webBody, _ := json.Marshal(map[string]string{"subject": "mailto:ops@example.com", "private_key": vk.private})
	by := CredentialActor{Source: "test"}
	for _, put := range []struct {
		p    CredentialProvider
		body []byte
	}{{ProviderAPNs, apnsBody(t, p8)}, {ProviderFCM, saBody}, {ProviderWebPush, webBody}} {
		if _, err := m.Put("app1", put.p, put.body, by); err != nil {
			t.Fatalf("%s: %v", put.p, err)
		}
	}
	gen, err := m.GenerateVAPID("app1", "mailto:ops@example.com", by)
	if err != nil {
		t.Fatal(err)
	}
	// The generated private key is only in the sealed blob: open it to
	// know what to look for.
	rec, _ := db.PushCredential("app1", "webpush", gen.Version)
	plain, err := m.seal.open("app1", ProviderWebPush, gen.Version, rec.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	var genKey webPushCredential
	_ = json.Unmarshal(plain, &genKey)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"p8 body": pemBody(p8), "service-account key": pemBody(rsaPEM),
		"uploaded VAPID key": vk.private, "generated VAPID key": genKey.PrivateKey,
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("%s: nothing to look for", name)
		}
		if bytes.Contains(file, []byte(s)) {
			t.Errorf("the database file holds the %s in the clear", name)
		}
	}
	// What is shown is there: the public metadata.
	if !bytes.Contains(file, []byte("TEAM123456")) || !bytes.Contains(file, []byte(vk.public)) {
		t.Error("metadata missing from the file")
	}
}

func TestVAPIDVersionsStayResolvable(t *testing.T) {
	m, _, _, db := newTestCredentials(t, testCredKey)
	by := CredentialActor{Source: "test"}
	v1, err := m.GenerateVAPID("app1", "mailto:ops@example.com", by)
	if err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	old, err := reg.Current("app1", ProviderWebPush)
	if err != nil || old.Version != 1 || old.KeyID() != "v1" {
		t.Fatalf("current v1: %+v %v", old, err)
	}
	v2, err := m.GenerateVAPID("app1", "mailto:ops@example.com", by)
	if err != nil {
		t.Fatal(err)
	}
	if v1.VAPIDPublicKey == v2.VAPIDPublicKey || v2.VAPIDKeyID != "v2" {
		t.Fatalf("v1 %+v v2 %+v", v1, v2)
	}
	cur, err := reg.Current("app1", ProviderWebPush)
	if err != nil || cur.Version != 2 || cur.Client.(*fakeClient).oc.WebPush.PublicKey != v2.VAPIDPublicKey {
		t.Fatalf("current after rotation: %+v %v", cur, err)
	}
	// A browser subscribed with v1 is still sent to with v1's key.
	got, err := reg.Version("app1", ProviderWebPush, 1)
	if err != nil || got != old || got.Client.(*fakeClient).oc.WebPush.PublicKey != v1.VAPIDPublicKey {
		t.Fatalf("v1 after rotation: %+v %v", got, err)
	}
	kid, pub, err := m.VAPIDPublicKey("app1")
	if err != nil || kid != "v2" || pub != v2.VAPIDPublicKey {
		t.Fatalf("client key: %s %s %v", kid, pub, err)
	}
	list, _ := m.List("app1", ProviderWebPush)
	if st := []string{list[0].Versions[0].Status, list[0].Versions[1].Status}; st[0] != StatusRetiring || st[1] != StatusActive {
		t.Fatalf("statuses %v", st)
	}
	// Revoking v1 drops it at once.
	if _, err := m.Revoke("app1", ProviderWebPush, 1, by); err != nil {
		t.Fatal(err)
	}
	if !old.Revoked() || !old.Client.(*fakeClient).closed.Load() {
		t.Fatal("the handed-out v1 does not know it is revoked")
	}
	if _, err := reg.Version("app1", ProviderWebPush, 1); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("v1 after revoke: %v", err)
	}
	if _, err := reg.Version("app1", ProviderWebPush, 9); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("unknown version: %v", err)
	}
	// What is known stays answered from memory: no storage read per send.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Version("app1", ProviderWebPush, 1); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("v1 from memory: %v", err)
	}
	if c, err := reg.Version("app1", ProviderWebPush, 2); err != nil || c != cur {
		t.Fatalf("v2 from memory: %v", err)
	}
	// Forget (the app was deleted) drops it all.
	reg.Forget("app1")
	if !cur.Revoked() {
		t.Fatal("a forgotten app's client is still usable")
	}
	if _, err := reg.Current("app1", ProviderWebPush); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("after Forget the registry must read storage: %v", err)
	}
	if v, ok := ParseVAPIDKeyID("v12"); !ok || v != 12 {
		t.Fatal("ParseVAPIDKeyID")
	}
	for _, bad := range []string{"", "v", "v0", "12", "v01", "v1x", "x1"} {
		if _, ok := ParseVAPIDKeyID(bad); ok {
			t.Errorf("ParseVAPIDKeyID(%q) ok", bad)
		}
	}
}

// TestHotSwapAndRevokeUnderConcurrency runs lookups while versions are
// put and revoked: a lookup that starts after a put returned sees that
// version or a newer one, and one that starts after a revoke of every
// version finds none.
func TestHotSwapAndRevokeUnderConcurrency(t *testing.T) {
	m, _, _, _ := newTestCredentials(t, testCredKey)
	by := CredentialActor{Source: "test"}
	reg := m.Registry()
	body := apnsBody(t, testP8(t))
	if _, err := m.Put("app1", ProviderAPNs, body, by); err != nil {
		t.Fatal(err)
	}
	const gone = ^uint64(0)
	// floor is the least version a lookup starting now may see (0: any,
	// gone: none); change counts its moves.
	type floorAt struct{ v, change uint64 }
	var changes atomic.Uint64
	var floor atomic.Pointer[floorAt]
	setFloor := func(v uint64) { floor.Store(&floorAt{v, changes.Add(1)}) }
	setFloor(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				runtime.Gosched() // leave the writer a core (2-core machines)
				select {
				case <-stop:
					return
				default:
				}
				f := floor.Load()
				c, err := reg.Current("app1", ProviderAPNs)
				if changes.Load() != f.change {
					continue // the floor moved during the lookup: no verdict
				}
				switch {
				case f.v == 0: // revokes under way: anything goes
				case f.v == gone && !errors.Is(err, ErrNoCredential):
					errs <- errors.New("a lookup after revoke-all found a credential")
					return
				case f.v != gone && (err != nil || c.Version < f.v):
					errs <- fmt.Errorf("a lookup saw %+v %v after put v%d", c, err, f.v)
					return
				}
			}
		}()
	}
	var held []*LiveCredential
	for range 10 {
		v, err := m.Put("app1", ProviderAPNs, body, by)
		if err != nil {
			t.Fatal(err)
		}
		setFloor(v.Version)
		c, err := reg.Current("app1", ProviderAPNs)
		if err != nil || c.Version != v.Version {
			t.Fatalf("right after put v%d: %+v %v", v.Version, c, err)
		}
		held = append(held, c)
	}
	// Revoking the current version falls back to the previous one.
	setFloor(0)
	res, err := m.Revoke("app1", ProviderAPNs, 11, by)
	if err != nil || res.CurrentVersion != 10 {
		t.Fatalf("revoke v11: %+v %v", res, err)
	}
	if c, err := reg.Current("app1", ProviderAPNs); err != nil || c.Version != 10 || c != held[len(held)-2] {
		t.Fatalf("after revoking v11: %+v %v", c, err)
	}
	setFloor(10)
	setFloor(0)
	if _, err := m.Revoke("app1", ProviderAPNs, 0, by); err != nil {
		t.Fatal(err)
	}
	setFloor(gone)
	if _, err := reg.Current("app1", ProviderAPNs); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("after revoke-all: %v", err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range held[len(held)-2:] {
		if !c.Revoked() {
			t.Errorf("v%d held by a sender is not marked revoked", c.Version)
		}
	}
}

func TestReportUseIsThrottled(t *testing.T) {
	m, _, clk, db := newTestCredentials(t, testCredKey)
	if _, err := m.Put("app1", ProviderAPNs, apnsBody(t, testP8(t)), CredentialActor{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	c, err := m.Registry().Current("app1", ProviderAPNs)
	if err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	t0 := clk.now()
	_ = reg.ReportUse(c, "")
	clk.advance(time.Second)
	_ = reg.ReportUse(c, "") // within the minute: not written
	rec, _ := db.PushCredential("app1", "apns", 1)
	if !rec.LastUsedAt.Equal(t0) {
		t.Fatalf("last used %v, want %v", rec.LastUsedAt, t0)
	}
	_ = reg.ReportUse(c, "InvalidProviderToken") // a new problem: written at once
	rec, _ = db.PushCredential("app1", "apns", 1)
	if rec.LastError != "InvalidProviderToken" {
		t.Fatalf("last error %q", rec.LastError)
	}
	list, _ := m.List("app1", ProviderAPNs)
	if list[0].Versions[0].LastError != "InvalidProviderToken" {
		t.Fatalf("list: %+v", list[0].Versions[0])
	}
}

// testApps knows app1 and app2.
type testApps struct{}

func (testApps) AppCredentials(id string) (string, []string, bool) {
	return "key-" + id, []string{"secret"}, id == "app1" || id == "app2"
}

func (testApps) AppPushLimits(string) storage.AppPushLimits { return storage.AppPushLimits{} }

func (testApps) AppBeamsKeys(string) []string { return nil }

// apiServer mounts the Service's routes on a loopback server: the signed
// ones behind a stand-in for server.HandleSigned that reads the body
// (1 MiB cap) and passes the path's app id, without signatures.
func apiServer(t *testing.T, key []byte) (*httptest.Server, *Service, *auditLog) {
	t.Helper()
	audit := &auditLog{}
	svc, err := New(Config{CredentialKey: key}, Deps{DB: openDB(t), Apps: testApps{}, Audit: audit, ClientBuilder: fakeBuilder})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, rt := range svc.SignedRoutes() {
		h := rt.Handler
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			if err != nil {
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				return
			}
			h(w, r, r.PathValue("app_id"), body)
		})
	}
	for _, rt := range svc.Routes() {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, svc, audit
}

// call makes a request and decodes the JSON answer.
func call(t *testing.T, srv *httptest.Server, method, path string, body []byte) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path+"?auth_key=key-app1", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out, string(raw)
}

func TestCredentialAPI(t *testing.T) {
	srv, svc, audit := apiServer(t, testCredKey)
	const base = "/apps/app1/push/credentials"
	p8 := testP8(t)

	code, out, raw := call(t, srv, "PUT", base+"/apns", apnsBody(t, p8))
	if code != http.StatusCreated || out["version"] != 1.0 || out["status"] != "active" || out["key_id"] != "KEY1234567" ||
		!strings.HasPrefix(out["fingerprint"].(string), "sha256:") {
		t.Fatalf("put apns: %d %s", code, raw)
	}
	if strings.Contains(raw, pemBody(p8)) || strings.Contains(raw, "p8") {
		t.Fatalf("put echoes the key: %s", raw)
	}
	saBody, _ := json.Marshal(map[string]any{"service_account": testServiceAccount(t)})
	code, out, raw = call(t, srv, "PUT", base+"/fcm", saBody)
	if code != http.StatusCreated || out["project_id"] != "demo-project" || strings.Contains(raw, pemBody(rsaPEM)) ||
		strings.Contains(raw, "private_key\"") {
		t.Fatalf("put fcm: %d %s", code, raw)
	}

	code, out, raw = call(t, srv, "POST", base+"/webpush/generate", []byte(`{"subject":"mailto:ops@example.com"}`))
	if code != http.StatusCreated || out["vapid_public_key"] == "" || out["vapid_key_id"] != "v1" {
		t.Fatalf("generate: %d %s", code, raw)
	}
	if strings.Contains(raw, "private") {
		t.Fatalf("generate returns a private key: %s", raw)
	}
	pub := out["vapid_public_key"].(string)

	// The client API serves the current public key, unauthenticated.
	code, out, raw = call(t, srv, "GET", "/apps/app1/push/client/web-vapid-public-key", nil)
	if code != http.StatusOK || out["vapid_public_key"] != pub || out["key_id"] != "v1" {
		t.Fatalf("client key: %d %s", code, raw)
	}
	if code, out, _ = call(t, srv, "GET", "/apps/app2/push/client/web-vapid-public-key", nil); code != http.StatusNotFound || out["error"] != "not_found" {
		t.Fatalf("no key: %d %v", code, out)
	}
	if code, out, _ = call(t, srv, "GET", "/apps/nope/push/client/web-vapid-public-key", nil); code != http.StatusNotFound || out["error"] != "app_not_found" {
		t.Fatalf("unknown app: %d %v", code, out)
	}

	// GET shows metadata only.
	code, out, raw = call(t, srv, "GET", base, nil)
	if code != http.StatusOK || len(out["credentials"].([]any)) != 3 {
		t.Fatalf("list: %d %s", code, raw)
	}
	for _, secret := range []string{pemBody(p8), pemBody(rsaPEM), "private_key\"", "sealed", "\"p8\""} {
		if strings.Contains(raw, secret) {
			t.Fatalf("list shows %q: %s", secret, raw)
		}
	}
	code, out, raw = call(t, srv, "GET", base+"/apns", nil)
	if code != http.StatusOK || out["current_version"] != 1.0 || len(out["versions"].([]any)) != 1 {
		t.Fatalf("list apns: %d %s", code, raw)
	}

	// Validate.
	for _, p := range []string{"apns", "fcm", "webpush"} {
		code, out, raw = call(t, srv, "POST", base+"/"+p+"/validate", nil)
		if code != http.StatusOK || out["ok"] != true {
			t.Fatalf("validate %s: %d %s", p, code, raw)
		}
	}
	if code, out, _ = call(t, srv, "POST", base+"/apns/validate", []byte(`{"version":7}`)); code != http.StatusNotFound {
		t.Fatalf("validate unknown version: %d %v", code, out)
	}

	// Rotate, then revoke: effective at once for new sends.
	reg := svc.Credentials().Registry()
	if code, _, raw = call(t, srv, "PUT", base+"/apns", apnsBody(t, testP8(t))); code != http.StatusCreated {
		t.Fatalf("rotate: %d %s", code, raw)
	}
	if c, err := reg.Current("app1", ProviderAPNs); err != nil || c.Version != 2 {
		t.Fatalf("after rotation: %+v %v", c, err)
	}
	code, out, raw = call(t, srv, "DELETE", base+"/apns/versions/2", nil)
	if code != http.StatusOK || out["current_version"] != 1.0 {
		t.Fatalf("revoke v2: %d %s", code, raw)
	}
	if c, err := reg.Current("app1", ProviderAPNs); err != nil || c.Version != 1 {
		t.Fatalf("after revoking v2: %+v %v", c, err)
	}
	if code, out, raw = call(t, srv, "POST", base+"/apns/validate", []byte(`{"version":2}`)); code != http.StatusConflict || out["error"] != "revoked" {
		t.Fatalf("validate revoked: %d %s", code, raw)
	}
	code, out, raw = call(t, srv, "DELETE", base+"/apns", nil)
	if code != http.StatusOK || out["current_version"] != 0.0 {
		t.Fatalf("revoke all: %d %s", code, raw)
	}
	if _, err := reg.Current("app1", ProviderAPNs); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("after revoke: %v", err)
	}
	if code, _, _ = call(t, srv, "DELETE", base+"/apns/versions/99", nil); code != http.StatusNotFound {
		t.Fatalf("revoke unknown version: %d", code)
	}
	if code, _, _ = call(t, srv, "DELETE", base+"/apns/versions/x", nil); code != http.StatusBadRequest {
		t.Fatalf("revoke version x: %d", code)
	}

	// Every write is audited, without secrets.
	want := map[string]int{AuditCredentialPut: 3, AuditVAPIDGenerated: 1, AuditCredentialRevoked: 2, AuditCredentialValidated: 3}
	got := map[string]int{}
	for _, e := range audit.all() {
		got[e.Action]++
		if e.App != "app1" || !strings.Contains(e.Reason, "key:key-app1") || e.IP == "" {
			t.Errorf("entry %+v", e)
		}
		for _, secret := range []string{pemBody(p8), pemBody(rsaPEM)} {
			if strings.Contains(e.Reason, secret) {
				t.Errorf("audit entry holds a secret: %+v", e)
			}
		}
	}
	for action, n := range want {
		if got[action] != n {
			t.Errorf("%s: %d entries, want %d (all: %v)", action, got[action], n, got)
		}
	}
}

func TestCredentialWritesRefusedWithoutKey(t *testing.T) {
	srv, _, audit := apiServer(t, nil)
	const base = "/apps/app1/push/credentials"
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", base + "/apns", string(apnsBody(t, testP8(t)))},
		{"POST", base + "/webpush/generate", `{"subject":"mailto:ops@example.com"}`},
	} {
		code, out, raw := call(t, srv, tc.method, tc.path, []byte(tc.body))
		if code != http.StatusServiceUnavailable || out["error"] != "encryption_key_not_configured" ||
			!strings.Contains(out["description"].(string), "PUSH_CREDENTIAL_ENCRYPTION_KEY") {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, code, raw)
		}
	}
	// Reads still work.
	if code, _, raw := call(t, srv, "GET", base, nil); code != http.StatusOK {
		t.Fatalf("list: %d %s", code, raw)
	}
	if n := len(audit.all()); n != 0 {
		t.Fatalf("%d audit entries for refused writes", n)
	}
}

func TestCredentialBadBodies(t *testing.T) {
	srv, _, _ := apiServer(t, testCredKey)
	const base = "/apps/app1/push/credentials"
	const marker = "SECRETMARKER0123456789"
	garbagePEM := "-----BEGIN PRIVATE KEY-----\n" + marker + "\n-----END PRIVATE KEY-----\n"
	sa := testServiceAccount(t)
	withSA := func(change func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range sa {
			c[k] = v
		}
		change(c)
		b, _ := json.Marshal(map[string]any{"service_account": c})
		return string(b)
	}
	vk, _ := generateVAPIDKey()
	other, _ := generateVAPIDKey()
	tcs := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"not JSON", "PUT", "/apns", "{", 400, "invalid_body"},
		{"an array", "PUT", "/apns", "[]", 400, "invalid_body"},
		{"unknown field", "PUT", "/apns", `{"team_id":"TEAM123456","key_id":"KEY1234567","p8_key":"x"}`, 400, "invalid_body"},
		{"trailing data", "PUT", "/webpush", `{"subject":"mailto:a@example.com","private_key":"x"} {}`, 400, "invalid_body"},
		{"garbage PEM", "PUT", "/apns", string(apnsBody(t, garbagePEM)), 400, "invalid_credential"},
		{"not PEM", "PUT", "/apns", string(apnsBody(t, marker)), 400, "invalid_credential"},
		{"RSA key as p8", "PUT", "/apns", string(apnsBody(t, rsaPEM)), 400, "invalid_credential"},
		{"oversize p8", "PUT", "/apns", string(apnsBody(t, strings.Repeat("A", maxP8+1))), 400, "invalid_credential"},
		{"bad team id", "PUT", "/apns", `{"team_id":"x","key_id":"KEY1234567","p8":"` + strings.ReplaceAll(testP8(t), "\n", `\n`) + `"}`, 400, "invalid_credential"},
		{"oversize body", "PUT", "/apns", `{"p8":"` + strings.Repeat("A", maxCredentialBody) + `"}`, 413, "body_too_large"},
		{"no service account", "PUT", "/fcm", `{}`, 400, "invalid_credential"},
		{"service account not JSON", "PUT", "/fcm", `{"service_account":"` + marker + `"}`, 400, "invalid_credential"},
		{"wrong type", "PUT", "/fcm", withSA(func(c map[string]any) { c["type"] = "authorized_user" }), 400, "invalid_credential"},
		{"garbage private key", "PUT", "/fcm", withSA(func(c map[string]any) { c["private_key"] = garbagePEM }), 400, "invalid_credential"},
		{"foreign token uri", "PUT", "/fcm", withSA(func(c map[string]any) { c["token_uri"] = "http://127.0.0.1:1/token" }), 400, "invalid_credential"},
		{"no project", "PUT", "/fcm", withSA(func(c map[string]any) { delete(c, "project_id") }), 400, "invalid_credential"},
		{"bad subject", "PUT", "/webpush", `{"subject":"ops@example.com","private_key":"` + vk.private + `"}`, 400, "invalid_credential"},
		{"localhost subject", "PUT", "/webpush", `{"subject":"mailto:me@localhost","private_key":"` + vk.private + `"}`, 400, "invalid_credential"},
		{"garbage VAPID key", "PUT", "/webpush", `{"subject":"mailto:a@example.com","private_key":"` + marker + `"}`, 400, "invalid_credential"},
		{"mismatched public key", "PUT", "/webpush", `{"subject":"mailto:a@example.com","private_key":"` + vk.private + `","public_key":"` + other.public + `"}`, 400, "invalid_credential"},
		{"generate without subject", "POST", "/webpush/generate", `{}`, 400, "invalid_credential"},
		{"generate garbage", "POST", "/webpush/generate", `subject`, 400, "invalid_body"},
		{"unknown provider", "PUT", "/mqtt", `{}`, 404, "unknown_provider"},
		{"validate unknown provider", "POST", "/mqtt/validate", ``, 404, "unknown_provider"},
		{"validate garbage", "POST", "/apns/validate", `{"version":"x"}`, 400, "invalid_body"},
		{"validate nothing", "POST", "/fcm/validate", ``, 404, "not_found"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			code, out, raw := call(t, srv, tc.method, base+tc.path, []byte(tc.body))
			if code != tc.status || out["error"] != tc.code || out["description"] == "" {
				t.Fatalf("%d %s, want %d %s", code, raw, tc.status, tc.code)
			}
			if strings.Contains(raw, marker) || strings.Contains(raw, vk.private) {
				t.Fatalf("the error quotes the secret: %s", raw)
			}
		})
	}
	// Nothing was stored.
	if _, out, _ := call(t, srv, "GET", base, nil); strings.Contains(mustJSON(out), `"version"`) {
		t.Fatalf("a refused credential was stored: %v", out)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDeletedAppLosesItsClients: once the app is deleted and the service
// told, its clients are gone, even if an app with its id comes back.
func TestDeletedAppLosesItsClients(t *testing.T) {
	db := openDB(t)
	svc, err := New(Config{CredentialKey: testCredKey}, Deps{DB: db, Apps: testApps{}, ClientBuilder: fakeBuilder})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"app1", "app2"} {
		if err := db.PutApp(storage.App{ID: id, Key: "k" + id, Secret: "s"}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Credentials().GenerateVAPID(id, "mailto:ops@example.com", CredentialActor{Source: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	reg := svc.Credentials().Registry()
	c1, _ := reg.Current("app1", ProviderWebPush)
	c2, _ := reg.Current("app2", ProviderWebPush)
	if err := db.DeleteApp("app1"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutApp(storage.App{ID: "app1", Key: "kapp1", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if c, err := reg.Current("app1", ProviderWebPush); err != nil || c != c1 {
		t.Fatal("the registry was expected to hold the cached client until told")
	}
	// The app was deleted and created again between two reloads: the
	// credentials went with the deletion.
	if err := db.DeleteApp("app1"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AppsChanged(); err != nil {
		t.Fatal(err)
	}
	if !c1.Revoked() || c2.Revoked() {
		t.Fatalf("revoked: app1 %v app2 %v", c1.Revoked(), c2.Revoked())
	}
	if _, err := reg.Current("app1", ProviderWebPush); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("deleted app: %v", err)
	}
	if c, err := reg.Current("app2", ProviderWebPush); err != nil || c != c2 {
		t.Fatalf("other app: %v", err)
	}
}

// TestConcurrentPutsEndOnNewest: puts racing each other leave the newest
// version current, whichever finished installing last.
func TestConcurrentPutsEndOnNewest(t *testing.T) {
	m, _, _, _ := newTestCredentials(t, testCredKey)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if _, err := m.GenerateVAPID("app1", "mailto:ops@example.com", CredentialActor{Source: "test"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	c, err := m.Registry().Current("app1", ProviderWebPush)
	if err != nil || c.Version != 9 {
		t.Fatalf("current %+v %v, want v9", c, err)
	}
	for v := uint64(1); v <= 9; v++ {
		if c, err := m.Registry().Version("app1", ProviderWebPush, v); err != nil || c.Version != v {
			t.Fatalf("v%d: %+v %v", v, c, err)
		}
	}
}

// TestInstalledOutOfOrder: a put that finishes installing after a newer
// one does not take the newer one's place.
func TestInstalledOutOfOrder(t *testing.T) {
	m, _, _, _ := newTestCredentials(t, testCredKey)
	reg := m.Registry()
	v6 := &LiveCredential{App: "a", Provider: ProviderAPNs, Version: 6}
	v5 := &LiveCredential{App: "a", Provider: ProviderAPNs, Version: 5}
	reg.installed(v6)
	// Nothing was known: the lookup reads storage (empty here) and keeps
	// v6 resolvable by number.
	if c, err := reg.Version("a", ProviderAPNs, 6); err != nil || c != v6 {
		t.Fatalf("v6: %v", err)
	}
	reg.Changed("a", ProviderAPNs) // current known: none
	if _, err := reg.Current("a", ProviderAPNs); !errors.Is(err, ErrNoCredential) {
		t.Fatal(err)
	}
	reg.installed(v6)
	reg.installed(v5)
	if c, err := reg.Current("a", ProviderAPNs); err != nil || c != v6 {
		t.Fatalf("current %+v %v, want v6", c, err)
	}
	if c, err := reg.Version("a", ProviderAPNs, 5); err != nil || c != v5 {
		t.Fatalf("v5: %v", err)
	}
}

// TestMasterKeyRotation: a new encryption key with the old one as
// previous opens everything; Reseal moves it all to the new key, after
// which the old key can go.
func TestMasterKeyRotation(t *testing.T) {
	db := openDB(t)
	oldKey, newKey := testCredKey, bytes.Repeat([]byte{42}, 32)
	by := CredentialActor{Source: "test"}
	mOld, err := NewCredentials(db, Config{CredentialKey: oldKey}, fakeBuilder, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mOld.Put("app1", ProviderAPNs, apnsBody(t, testP8(t)), by); err != nil {
		t.Fatal(err)
	}
	if _, err := mOld.GenerateVAPID("app2", "mailto:ops@example.com", by); err != nil {
		t.Fatal(err)
	}
	if _, err := mOld.Revoke("app2", ProviderWebPush, 1, by); err != nil {
		t.Fatal(err)
	}
	// A version sealed with a key nobody has any more.
	lost, _ := newSealer(bytes.Repeat([]byte{13}, 32))
	if _, _, err := db.AddPushCredential("app3", "fcm", storage.PushCredential{}, func(v uint64) ([]byte, error) {
		return lost.seal("app3", ProviderFCM, v, []byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}

	if _, err := NewCredentials(db, Config{CredentialKey: newKey, PreviousCredentialKeys: [][]byte{[]byte("short")}}, nil, nil, nil); err == nil {
		t.Fatal("a short previous key was accepted")
	}
	audit := &auditLog{}
	mBoth, err := NewCredentials(db, Config{CredentialKey: newKey, PreviousCredentialKeys: [][]byte{oldKey}}, fakeBuilder, audit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mBoth.Registry().Current("app1", ProviderAPNs); err != nil {
		t.Fatalf("the previous key does not open: %v", err)
	}
	res, err := mBoth.Reseal("", by)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resealed["app1"] != 1 || res.Resealed["app2"] != 1 || len(res.Unreadable) != 1 || res.Unreadable[0] != "app3/fcm/v1" {
		t.Fatalf("reseal: %+v", res)
	}
	if n := len(audit.all()); n != 2 {
		t.Fatalf("%d audit entries, want one per app", n)
	}
	again, _ := mBoth.Reseal("", by)
	if len(again.Resealed) != 0 {
		t.Fatalf("a second reseal changed %v", again.Resealed)
	}
	mNew, err := NewCredentials(db, Config{CredentialKey: newKey}, fakeBuilder, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := mNew.Registry().Current("app1", ProviderAPNs); err != nil || c.Version != 1 {
		t.Fatalf("after reseal, the new key alone: %+v %v", c, err)
	}
	rec, _ := db.PushCredential("app2", "webpush", 1)
	if _, err := mNew.seal.open("app2", ProviderWebPush, 1, rec.Sealed); err != nil {
		t.Fatalf("the revoked version was not resealed: %v", err)
	}
}
