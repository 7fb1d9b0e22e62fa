package providers

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/apns"
	"github.com/sockudo/sockudo/push/fcm"
	"github.com/sockudo/sockudo/push/webpush"
	"github.com/sockudo/sockudo/storage"
)

var by = push.CredentialActor{Source: "test"}

func newCredentials(t *testing.T, cfg push.Config) *push.Credentials {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "p.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg.CredentialKey = bytes.Repeat([]byte{1}, 32)
	m, err := push.NewCredentials(db, cfg, Builder(cfg), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func p8(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func serviceAccount(t *testing.T, tokenURI string) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	b, _ := json.Marshal(map[string]any{"service_account": map[string]string{
		"type": "service_account", "project_id": "demo", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "push@demo.iam.gserviceaccount.com", "token_uri": tokenURI,
	}})
	return b
}

// TestBuildsRealClients puts one credential per provider and gets the
// provider packages' clients back from the registry.
func TestBuildsRealClients(t *testing.T) {
	// A loopback token endpoint: the operator's PUSH_FCM_TOKEN_URL (a
	// service account's own token_uri must be Google's).
	var tokens atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		if r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.FormValue("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"t","expires_in":3600,"token_type":"Bearer"}`))
	}))
	defer tokenSrv.Close()
	m := newCredentials(t, push.Config{APNsEndpoint: "http://127.0.0.1:1", FCMEndpoint: "http://127.0.0.1:1",
		FCMTokenURL: tokenSrv.URL + "/token"})

	body, _ := json.Marshal(map[string]string{"team_id": "TEAM123456", "key_id": "KEY1234567", "p8": p8(t)})
	if _, err := m.Put("a", push.ProviderAPNs, body, by); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put("a", push.ProviderFCM, serviceAccount(t, "https://oauth2.googleapis.com/token"), by); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GenerateVAPID("a", "mailto:ops@example.com", by); err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	for p, want := range map[push.CredentialProvider]string{
		push.ProviderAPNs: "*apns.Client", push.ProviderFCM: "*fcm.Client", push.ProviderWebPush: "*webpush.Sender",
	} {
		c, err := reg.Current("a", p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var ok bool
		switch c.Client.(type) {
		case *apns.Client:
			ok = want == "*apns.Client"
		case *fcm.Client:
			ok = want == "*fcm.Client"
		case *webpush.Sender:
			ok = want == "*webpush.Sender"
		}
		if !ok {
			t.Errorf("%s: client %T, want %s", p, c.Client, want)
		}
	}
	res, err := m.Validate(context.Background(), "a", push.ProviderFCM, 0, true, by)
	if err != nil || !res.OK || !res.Live || tokens.Load() != 1 {
		t.Fatalf("live FCM validation: %+v %v (tokens %d)", res, err, tokens.Load())
	}
	res, err = m.Validate(context.Background(), "a", push.ProviderAPNs, 0, false, by)
	if err != nil || !res.OK {
		t.Fatalf("APNs validation: %+v %v", res, err)
	}
}

// TestWebPushProviderChecks: the provider package's subject rule refuses
// what push's first check lets through.
func TestWebPushProviderChecks(t *testing.T) {
	m := newCredentials(t, push.Config{})
	_, err := m.GenerateVAPID("a", "mailto:me@localhost", by)
	var ce *push.CredentialError
	if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Fatalf("localhost subject: %v", err)
	}
}

// TestOlderVAPIDKeyStillSends rotates the VAPID key and sends to a
// subscription made with the first key: it goes out signed with that key.
func TestOlderVAPIDKeyStillSends(t *testing.T) {
	var gotK atomic.Value
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if i := strings.Index(auth, "k="); i >= 0 {
			gotK.Store(auth[i+2:])
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer recv.Close()
	m := newCredentials(t, push.Config{AllowLocalWebPush: true})
	v1, err := m.GenerateVAPID("a", "mailto:ops@example.com", by)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.GenerateVAPID("a", "mailto:ops@example.com", by); err != nil {
		t.Fatal(err)
	}
	c, err := m.Registry().Version("a", push.ProviderWebPush, 1)
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := ecdh.P256().GenerateKey(rand.Reader)
	authSecret := make([]byte, 16)
	_, _ = rand.Read(authSecret)
	sub, err := webpush.ParseSubscription(recv.URL+"/wp/1", base64.RawURLEncoding.EncodeToString(ua.PublicKey().Bytes()),
		base64.RawURLEncoding.EncodeToString(authSecret))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Client.(*webpush.Sender).Send(context.Background(), sub, []byte("hi"), webpush.Options{})
	if r.Outcome != push.Delivered {
		t.Fatalf("send: %+v", r)
	}
	if k, _ := gotK.Load().(string); strings.TrimSpace(k) != v1.VAPIDPublicKey {
		t.Fatalf("signed with %q, want v1 %q", k, v1.VAPIDPublicKey)
	}
}
