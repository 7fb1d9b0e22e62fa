package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

// TestUnknownAppLikeWrongKey: a request for an app id that does not exist
// gets exactly the answer of a known app asked with a key that is not its
// own, so answers do not tell which app ids exist.
func TestUnknownAppLikeWrongKey(t *testing.T) {
	ts := newTestServer(t, Config{})
	tcs := []struct {
		name, method, path, body string
	}{
		{"read", "GET", "/channels", ""},
		{"write", "POST", "/events", `{"name":"e","channel":"c","data":"x"}`},
		{"too big", "POST", "/events", string(make([]byte, maxBodyBytes+1))},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			known, knownBody := ts.apiSigned(t, tc.method, "/apps/app-id"+tc.path, nil, tc.body, "some-key", "some-secret", time.Now())
			unknown, unknownBody := ts.apiSigned(t, tc.method, "/apps/no-such-app"+tc.path, nil, tc.body, "some-key", "some-secret", time.Now())
			if known != unknown || knownBody != unknownBody {
				t.Fatalf("known app: %d %s; unknown app: %d %s", known, knownBody, unknown, unknownBody)
			}
			if tc.name != "too big" && known != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", known)
			}
		})
	}
	// Without auth parameters at all, too.
	a, _ := http.Get("http://" + ts.addr + "/apps/app-id/channels")
	b, _ := http.Get("http://" + ts.addr + "/apps/no-such-app/channels")
	a.Body.Close()
	b.Body.Close()
	if a.StatusCode != http.StatusUnauthorized || b.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned: known %d, unknown %d, want 401 both", a.StatusCode, b.StatusCode)
	}
}

// TestSignatureFailureFlood: refused API requests count against the
// client's AuthFailures budget before they are audited; past it they get
// 429 with Retry-After and leave no audit entry.
func TestSignatureFailureFlood(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{AuthFailures: limiter(3)}})
	audit := &recordingAudit{}
	ts.SetAuditLog(audit)
	var statuses []int
	for i := range 20 {
		path := "/apps/app-id/channels"
		if i%2 == 1 {
			path = "/apps/no-such-app/channels" // unknown apps count too
		}
		req := ts.newSignedRequest(t, "GET", path, nil, "", "app-key", "wrong", time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	for i, s := range statuses {
		want := http.StatusUnauthorized
		if i >= 3 {
			want = http.StatusTooManyRequests
		}
		if s != want {
			t.Fatalf("statuses %v, want 3×401 then 429", statuses)
		}
	}
	if n := len(audit.actions()); n != 3 {
		t.Fatalf("%d audit entries for 20 refused requests, want 3: %q", n, audit.actions())
	}
	// Good requests are not refused by the failure budget.
	if code, body := ts.api(t, "GET", "/apps/app-id/channels", nil, ""); code != http.StatusOK {
		t.Fatalf("good request after the flood: %d %s", code, body)
	}
}

// TestReplayCache: with Config.Replay a signed write is accepted once, a
// copy of it (even with the signature re-encoded) is refused with 409; a
// fresh signature of the same content is accepted. Without it the copy is
// accepted, as Pusher does. Reads are never refused.
func TestReplayCache(t *testing.T) {
	body := `{"name":"e","channel":"c","data":"x"}`
	for _, tc := range []struct {
		name   string
		replay *ReplayCache
		want   int
	}{
		{"off", nil, http.StatusOK},
		{"on", NewReplayCache(0), http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{Replay: tc.replay})
			send := func(req *http.Request) int {
				t.Helper()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			now := time.Now()
			orig := ts.newSignedRequest(t, "POST", "/apps/app-id/events", nil, body, "app-key", "app-secret", now)
			if code := send(orig); code != http.StatusOK {
				t.Fatalf("first: %d", code)
			}
			for _, variant := range []string{"as is", "signature upper-cased", "unsigned parameter added"} {
				req := ts.newSignedRequest(t, "POST", "/apps/app-id/events", nil, body, "app-key", "app-secret", now)
				q := req.URL.Query()
				switch variant {
				case "signature upper-cased":
					sig := q.Get("auth_signature")
					q.Del("auth_signature")
					q.Set("AUTH_SIGNATURE", fmt.Sprintf("%X", mustHex(t, sig)))
				case "unsigned parameter added":
					q.Set("Auth_Signature", "00")
				}
				req.URL.RawQuery = q.Encode()
				if code := send(req); code != tc.want {
					t.Fatalf("copy (%s): %d, want %d", variant, code, tc.want)
				}
			}
			// The same content signed a second later is a new request.
			if code := send(ts.newSignedRequest(t, "POST", "/apps/app-id/events", nil, body, "app-key", "app-secret", now.Add(time.Second))); code != http.StatusOK {
				t.Fatalf("re-signed: %d", code)
			}
			for range 2 {
				if code, b := ts.api(t, "GET", "/apps/app-id/channels", nil, ""); code != http.StatusOK {
					t.Fatalf("read: %d %s", code, b)
				}
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayCacheBounds: entries leave once their timestamp is out of the
// window, and a full cache forgets the entry closest to leaving first.
func TestReplayCacheBounds(t *testing.T) {
	req := func(ts time.Time, n int) *http.Request {
		q := url.Values{"auth_timestamp": {strconv.FormatInt(ts.Unix(), 10)}, "n": {strconv.Itoa(n)}}
		return httptest.NewRequest("POST", "/apps/a/events?"+q.Encode(), nil)
	}
	now := time.Unix(1_700_000_000, 0)
	c := NewReplayCache(replayShards) // one entry per shard
	old := req(now.Add(-protocol.MaxClockSkew), 0)
	if !c.firstSeen("a", old, now) || c.firstSeen("a", old, now) {
		t.Fatal("a copy was not refused")
	}
	// Once the timestamp is out of the window the entry is dropped (the
	// signature check refuses such a request before the cache sees it).
	later := now.Add(2 * time.Second)
	if !c.firstSeen("a", old, later) {
		t.Fatal("an entry outlived its window")
	}
	// Never more than the bound, whatever arrives.
	for i := range 1000 {
		c.firstSeen("a", req(later, 2+i), later)
	}
	if n := c.Len(); n > replayShards {
		t.Fatalf("%d entries, bound %d", n, replayShards)
	}
}
