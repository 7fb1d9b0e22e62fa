package push

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// tokenEndpoint is a loopback OAuth2 token endpoint that counts the
// requests it gets.
func tokenEndpoint(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"t","expires_in":3600,"token_type":"Bearer"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func fcmBody(t *testing.T, tokenURI string) []byte {
	t.Helper()
	sa := testServiceAccount(t)
	sa["token_uri"] = tokenURI
	b, _ := json.Marshal(map[string]any{"service_account": sa})
	return b
}

// TestFCMForeignTokenURIRefused: a tenant's service account never names
// another token endpoint than Google's, whatever PUSH_FCM_ENDPOINT says
// (the rule used to switch off for any endpoint but the exact default, a
// trailing "/" included), so live validation cannot be made to post to a
// loopback address and report its answer.
func TestFCMForeignTokenURIRefused(t *testing.T) {
	tokens, hits := tokenEndpoint(t)
	by := CredentialActor{Source: "test"}
	for _, endpoint := range []string{"", "https://fcm.googleapis.com/", "http://127.0.0.1:1"} {
		m, err := NewCredentials(openDB(t), Config{CredentialKey: testCredKey, FCMEndpoint: endpoint}, fakeBuilder, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Put("app1", ProviderFCM, fcmBody(t, tokens.URL+"/token"), by)
		var ce *CredentialError
		if !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || !strings.Contains(ce.Description, "token_uri") {
			t.Fatalf("PUSH_FCM_ENDPOINT=%q: a loopback token_uri: %v", endpoint, err)
		}
		if _, err := m.Validate(context.Background(), "app1", ProviderFCM, 0, true, by); err == nil {
			t.Fatalf("PUSH_FCM_ENDPOINT=%q: validated a credential that was refused", endpoint)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback token endpoint got %d requests", n)
	}
}

// TestFCMStoredForeignTokenURINotFetched: a credential stored before the
// rule held (its token_uri a loopback URL) is checked again at use: live
// validation reports the rule and fetches nothing.
func TestFCMStoredForeignTokenURINotFetched(t *testing.T) {
	tokens, hits := tokenEndpoint(t)
	db := openDB(t)
	s, err := newSealer(testCredKey)
	if err != nil {
		t.Fatal(err)
	}
	sa := testServiceAccount(t)
	sa["token_uri"] = tokens.URL + "/token"
	plain, _ := json.Marshal(sa)
	if _, _, err := db.AddPushCredential("app1", string(ProviderFCM), storage.PushCredential{}, func(v uint64) ([]byte, error) {
		return s.seal("app1", ProviderFCM, v, plain)
	}); err != nil {
		t.Fatal(err)
	}
	m, err := NewCredentials(db, Config{CredentialKey: testCredKey, FCMEndpoint: "http://127.0.0.1:1"}, fakeBuilder, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Validate(context.Background(), "app1", ProviderFCM, 0, true, CredentialActor{Source: "test"})
	if err != nil || res.OK || !strings.Contains(res.Error, "token_uri") {
		t.Fatalf("live validation of a foreign token_uri: %+v %v", res, err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback token endpoint got %d requests", n)
	}
}

// TestFCMOperatorTokenURL: PUSH_FCM_TOKEN_URL replaces the token_uri of a
// (Google-naming) service account, and may be a loopback address.
func TestFCMOperatorTokenURL(t *testing.T) {
	tokens, hits := tokenEndpoint(t)
	by := CredentialActor{Source: "test"}
	m, err := NewCredentials(openDB(t), Config{CredentialKey: testCredKey, FCMTokenURL: tokens.URL + "/token"}, fakeBuilder, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put("app1", ProviderFCM, fcmBody(t, "https://oauth2.googleapis.com/token"), by); err != nil {
		t.Fatal(err)
	}
	res, err := m.Validate(context.Background(), "app1", ProviderFCM, 0, true, by)
	if err != nil || !res.OK || !res.Live || hits.Load() != 1 {
		t.Fatalf("live validation through PUSH_FCM_TOKEN_URL: %+v %v (hits %d)", res, err, hits.Load())
	}
	// The override does not open the JSON's rule.
	if _, err := m.Put("app1", ProviderFCM, fcmBody(t, tokens.URL+"/token"), by); err == nil {
		t.Fatal("a loopback token_uri was accepted under PUSH_FCM_TOKEN_URL")
	}
}

func TestFCMTokenURL(t *testing.T) {
	tcs := []struct {
		cfg      Config
		tokenURI string
		want     string
		override bool
		bad      bool
	}{
		{Config{}, "", "https://oauth2.googleapis.com/token", false, false},
		{Config{}, "https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/token", false, false},
		{Config{}, "https://accounts.google.com/o/oauth2/token", "https://accounts.google.com/o/oauth2/token", false, false},
		{Config{}, "http://127.0.0.1:9/token", "", false, true},
		{Config{}, "https://oauth2.googleapis.com/token/", "", false, true},
		{Config{FCMEndpoint: "http://127.0.0.1:1/"}, "http://169.254.169.254/", "", false, true},
		{Config{FCMTokenURL: "http://127.0.0.1:9/token"}, "http://10.0.0.1/", "http://127.0.0.1:9/token", true, false},
	}
	for _, tc := range tcs {
		sa, _ := json.Marshal(map[string]string{"type": "service_account", "token_uri": tc.tokenURI})
		got, override, err := FCMTokenURL(tc.cfg, sa)
		if (err != nil) != tc.bad || got != tc.want || override != tc.override {
			t.Errorf("FCMTokenURL %q, token_uri %q: %q %v %v", tc.cfg.FCMTokenURL, tc.tokenURI, got, override, err)
		}
	}
}
