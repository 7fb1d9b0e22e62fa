package push_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/ratelimit"
)

// beams sends a request to the Beams face with auth as the Authorization
// header ("" for none); body is JSON-encoded unless it is a string.
func (e *env) beams(method, path, auth string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, req)
	r := resp{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if len(r.raw) > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &r.body); err != nil {
			e.t.Fatalf("%s %s: body %q is not JSON: %v", method, path, r.raw, err)
		}
	}
	return r
}

const (
	beamsPub  = "/publish_api/v1/instances/app/publishes"
	bearerKey = "Bearer " + testBeamsKey
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// TestBeamsPublishReachesExactlyTheRightDevices publishes through each
// Beams publish route, with the Beams payload blocks, and checks who gets
// what, the answer and the status through the native API.
func TestBeamsPublishReachesExactlyTheRightDevices(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", []string{"news", "sport"}, nil)
	e.device("d2", "alice", []string{"news"}, nil)
	e.device("d3", "bob", []string{"sport"}, nil)
	e.device("d4", "", nil, nil)
	web := map[string]any{"notification": map[string]any{"title": "Hello", "body": "from Beams", "deep_link": "https://example.com/x"},
		"data": map[string]any{"k": "v"}}
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		want       []string
	}{
		{"interests", "/interests", map[string]any{"interests": []string{"news", "sport"}}, []string{"d1", "d2", "d3"}},
		{"legacy path (Go SDK)", "", map[string]any{"interests": []string{"sport"}}, []string{"d1", "d3"}},
		{"users", "/users", map[string]any{"users": []string{"alice"}}, []string{"d1", "d2"}},
		{"unknown interest", "/interests", map[string]any{"interests": []string{"nobody"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sender.mu.Lock()
			e.sender.sent, e.sender.msgs = nil, nil
			e.sender.mu.Unlock()
			tc.body["web"] = web
			tc.body["webhookUrl"] = "https://example.com/hook" // Beams' field: ignored
			r := e.beams("POST", beamsPub+tc.path, bearerKey, tc.body)
			e.expect(r, 200, "")
			id, _ := r.body["publishId"].(string)
			if id == "" || len(r.body) != 1 {
				t.Fatalf("answer %s, want {publishId}", r.raw)
			}
			e.drain()
			if got := e.sender.devices(); !slices.Equal(got, tc.want) {
				t.Fatalf("sent to %v, want %v", got, tc.want)
			}
			if len(tc.want) > 0 {
				var got, want any
				_ = json.Unmarshal(e.sender.msgs[0].Web.Payload, &got)
				b, _ := json.Marshal(web)
				_ = json.Unmarshal(b, &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("web payload %s, want the block as given %s", e.sender.msgs[0].Web.Payload, b)
				}
			}
			st := e.status(id)
			if counter(st, "sent") != len(tc.want) {
				t.Fatalf("status %s", st.raw)
			}
		})
	}
	if !e.audit.has(push.ActionDeviceRegistered) {
		t.Fatal("no device audit")
	}
}

// TestBeamsPublishRefusals: keys, instances and bodies the Beams publish
// API refuses, each in Beams' error shape.
func TestBeamsPublishRefusals(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", []string{"news"}, nil)
	note := map[string]any{"web": map[string]any{"notification": map[string]any{"title": "x"}}}
	body := func(kv ...any) map[string]any {
		m := map[string]any{"web": note["web"]}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	huge := strings.Repeat("a", push.MaxPublishBody)
	for _, tc := range []struct {
		name, path, auth string
		body             any
		status           int
		code             string
	}{
		{"no key", "/interests", "", body("interests", []string{"news"}), 401, "Unauthorized"},
		{"wrong key", "/interests", "Bearer " + strings.Repeat("0", len(testBeamsKey)), body("interests", []string{"news"}), 401, "Unauthorized"},
		{"key as Basic", "/interests", "Basic " + testBeamsKey, body("interests", []string{"news"}), 401, "Unauthorized"},
		{"key with a suffix", "/interests", bearerKey + "x", body("interests", []string{"news"}), 401, "Unauthorized"},
		{"the app secret", "/interests", "Bearer app-secret", body("interests", []string{"news"}), 401, "Unauthorized"},
		{"bad JSON", "/interests", bearerKey, `{"interests":["news"]`, 400, ""},
		{"no interests", "/interests", bearerKey, body("interests", []string{}), 400, ""},
		{"101 interests", "/interests", bearerKey, body("interests", names("i", 101)), 400, ""},
		{"100 interests", "/interests", bearerKey, body("interests", names("i", 100)), 200, ""},
		{"bad interest name", "/interests", bearerKey, body("interests", []string{"no spaces"}), 400, ""},
		{"1001 users", "/users", bearerKey, body("users", names("u", 1001)), 400, ""},
		{"1000 users", "/users", bearerKey, body("users", names("u", 1000)), 200, ""},
		{"users on the interests route", "/interests", bearerKey, body("users", []string{"alice"}), 400, ""},
		{"no payload", "/interests", bearerKey, map[string]any{"interests": []string{"news"}}, 400, ""},
		{"web block not an object", "/interests", bearerKey, map[string]any{"interests": []string{"news"}, "web": "x"}, 400, ""},
		{"oversize body", "/interests", bearerKey, `{"interests":["news"],"web":{"data":{"x":"` + huge + `"}}}`, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.expect(e.beams("POST", beamsPub+tc.path, tc.auth, tc.body), tc.status, tc.code)
		})
	}
	t.Run("instances without a key", func(t *testing.T) {
		for _, app := range []string{"other", "nope"} {
			r := e.beams("POST", "/publish_api/v1/instances/"+app+"/publishes/interests", bearerKey, body("interests", []string{"news"}))
			e.expect(r, 404, "Not Found")
		}
	})
	if !e.audit.has(push.ActionBeamsAuthDenied) {
		t.Fatal("refused keys were not audited")
	}
	if strings.Contains(e.seen.String(), testBeamsKey) {
		t.Fatal("an answer carries the Beams key")
	}
}

// TestBeamsKeyLimits: wrong keys spend the per-IP auth-failure budget
// (then 429), the previous key works during its grace period, and Beams
// publishes spend the app's publish budget like native ones.
func TestBeamsKeyLimits(t *testing.T) {
	pub := map[string]any{"interests": []string{"news"}, "web": map[string]any{"notification": map[string]any{"title": "x"}}}
	t.Run("auth failures per IP", func(t *testing.T) {
		lim := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 2, Window: time.Minute})
		e := newPubEnv(t, push.Config{Limits: push.Limits{AuthFailures: lim}}, testApps{})
		e.expect(e.beams("POST", beamsPub+"/interests", "Bearer wrong", pub), 401, "Unauthorized")
		e.expect(e.beams("DELETE", "/user_api/v1/instances/app/users/alice", "", nil), 401, "Unauthorized")
		r := e.beams("POST", beamsPub+"/interests", "Bearer wrong", pub)
		e.expect(r, 429, "rate_limited")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("no Retry-After: %v", r.header)
		}
		// The right key still works; successes are not counted.
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 200, "")
	})
	t.Run("previous key during grace", func(t *testing.T) {
		apps := testApps{beams: map[string][]string{"app": {"NEW-KEY-0123456789abcdef0123456789ab", testBeamsKey}}}
		e := newPubEnv(t, push.Config{}, apps)
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 200, "")
		e.expect(e.beams("POST", beamsPub+"/interests", "Bearer NEW-KEY-0123456789abcdef0123456789ab", pub), 200, "")
	})
	t.Run("publishes per second", func(t *testing.T) {
		rps := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: 1, Window: time.Second})
		e := newPubEnv(t, push.Config{Limits: push.Limits{Publishes: rps}}, testApps{})
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 200, "")
		e.expect(e.beams("POST", beamsPub+"/interests", bearerKey, pub), 429, "rate_limited")
	})
}

// TestBeamsDeleteUser removes exactly the user's devices.
func TestBeamsDeleteUser(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("d1", "alice", nil, nil)
	e.device("d2", "alice", nil, nil)
	e.device("d3", "bob", nil, nil)
	const users = "/user_api/v1/instances/app/users/"
	e.expect(e.beams("DELETE", users+"alice", "Bearer wrong", nil), 401, "Unauthorized")
	r := e.beams("DELETE", users+"alice", bearerKey, nil)
	e.expect(r, 200, "")
	if r.raw != "" {
		t.Fatalf("answer %q, want none (Beams)", r.raw)
	}
	for id, want := range map[string]int{"d1": 404, "d2": 404, "d3": 200} {
		e.expect(e.do("GET", "/apps/app/push/devices/"+id, "", nil), want, "")
	}
	// Unknown users are fine; the other instance has no key.
	e.expect(e.beams("DELETE", users+"nobody", bearerKey, nil), 200, "")
	e.expect(e.beams("DELETE", "/user_api/v1/instances/other/users/bob", bearerKey, nil), 404, "Not Found")
	e.expect(e.beams("DELETE", users+strings.Repeat("u", 300), bearerKey, nil), 400, "")
}
