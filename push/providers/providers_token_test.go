package providers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/fcm"
)

// roundTripFunc records where the token client was asked to go.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func fcmCredential(t *testing.T, tokenURI string) push.OpenedCredential {
	t.Helper()
	// serviceAccount makes a PUT body; take the service account back out.
	var body struct {
		ServiceAccount json.RawMessage `json:"service_account"`
	}
	if err := json.Unmarshal(serviceAccount(t, tokenURI), &body); err != nil {
		t.Fatal(err)
	}
	return push.OpenedCredential{App: "a", Provider: push.ProviderFCM, Version: 1,
		FCM: &push.FCMCredential{ServiceAccount: body.ServiceAccount}}
}

// TestFCMTokenClient: a credential's own (Google's) token endpoint is
// reached through the guarded client build is given; the operator's
// PUSH_FCM_TOKEN_URL replaces it and bypasses that client; a stored
// credential naming another endpoint builds no client at all.
func TestFCMTokenClient(t *testing.T) {
	var asked atomic.Value
	guarded := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		asked.Store(r.URL.String())
		return nil, errors.New("refused by the test")
	})}
	send := func(c any) push.Result {
		return c.(*fcm.Client).Send(context.Background(), fcm.Message{Token: "tok"})
	}

	c, err := build(push.Config{FCMEndpoint: "http://127.0.0.1:1"}, nil, guarded, fcmCredential(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.(*fcm.Client).Close()
	if r := send(c); r.Outcome == push.Delivered {
		t.Fatalf("send without a token: %+v", r)
	}
	if got, _ := asked.Load().(string); got != "https://oauth2.googleapis.com/token" {
		t.Fatalf("the guarded client was asked for %q", got)
	}

	if _, err := build(push.Config{}, nil, guarded, fcmCredential(t, "http://127.0.0.1:9/token")); err == nil {
		t.Fatal("a client was built for a loopback token_uri")
	}

	asked.Store("")
	c, err = build(push.Config{FCMEndpoint: "http://127.0.0.1:1", FCMTokenURL: "http://127.0.0.1:1/token"}, nil, guarded,
		fcmCredential(t, "http://127.0.0.1:9/token"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.(*fcm.Client).Close()
	_ = send(c)
	if got, _ := asked.Load().(string); got != "" {
		t.Fatalf("the operator's token URL went through the guarded client (%q)", got)
	}
}
