package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientRefusesLoopback: the client never reaches a loopback listener,
// and the error matches both ErrForbidden and the caller's Refused error,
// whose text it keeps.
func TestClientRefusesLoopback(t *testing.T) {
	var hit atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit.Store(true) }))
	defer ts.Close()

	mine := errors.New("mine: refused")
	for _, tc := range []struct {
		name    string
		refused error
		text    string
	}{
		{"default error", nil, "netguard: address not allowed: 127.0.0.1"},
		{"caller's error", mine, "mine: refused: 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewHTTPClient(Config{Timeout: 5 * time.Second, Refused: tc.refused})
			_, err := c.Get(ts.URL)
			if !errors.Is(err, ErrForbidden) || tc.refused != nil && !errors.Is(err, tc.refused) {
				t.Fatalf("err = %v, want ErrForbidden (and %v)", err, tc.refused)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.text)
			}
		})
	}
	if hit.Load() {
		t.Fatal("the loopback server was reached")
	}

	// AllowPrivate lifts the check; a redirect is returned, not followed.
	ts2 := httptest.NewServer(http.RedirectHandler(ts.URL, http.StatusFound))
	defer ts2.Close()
	resp, err := NewHTTPClient(Config{Timeout: 5 * time.Second, AllowPrivate: true}).Get(ts2.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hit.Load() {
		t.Fatalf("status %d, followed %v", resp.StatusCode, hit.Load())
	}
}
