package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/push"
)

func TestTriggerPushFallback(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	e.device("alice-phone", "alice", nil, []string{"orders"})
	e.device("bob-phone", "bob", nil, []string{"orders"})
	e.device("anonymous", "", nil, []string{"orders"})
	e.device("elsewhere", "carol", nil, []string{"other"})
	var asked []string
	online := func(_ context.Context, users []string) ([]bool, error) {
		asked = append(asked, users...)
		out := make([]bool, len(users))
		for i, u := range users {
			out[i] = u == "alice"
		}
		return out, nil
	}
	for _, tc := range []struct {
		name, raw string
		want      []string
	}{
		{"offline skips connected users and devices without a user", `{"notification":{"title":"x"},"when":"offline"}`, []string{"bob-phone"}},
		{"always", `{"notification":{"title":"x"},"when":"always"}`, []string{"alice-phone", "anonymous", "bob-phone"}},
		{"always is the default", `{"web":{"notification":{"title":"x"}}}`, []string{"alice-phone", "anonymous", "bob-phone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sender.mu.Lock()
			e.sender.sent = nil
			e.sender.mu.Unlock()
			if err := e.svc.CheckPush("app", json.RawMessage(tc.raw)); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Push(context.Background(), "app", []string{"orders"}, json.RawMessage(tc.raw), online); err != nil {
				t.Fatal(err)
			}
			e.drain()
			if got := e.sender.devices(); !slices.Equal(got, tc.want) {
				t.Fatalf("pushed to %v, want %v", got, tc.want)
			}
		})
	}
	slices.Sort(asked)
	if !slices.Equal(slices.Compact(asked), []string{"alice", "bob"}) {
		t.Fatalf("online asked about %v", asked)
	}

	// Unknown presence: push rather than lose the notification.
	e.sender.sent = nil
	failing := func(context.Context, []string) ([]bool, error) { return nil, errors.New("redis down") }
	if err := e.svc.Push(context.Background(), "app", []string{"orders"}, json.RawMessage(`{"notification":{"title":"x"},"when":"offline"}`), failing); err != nil {
		t.Fatal(err)
	}
	e.drain()
	if got := e.sender.devices(); !slices.Equal(got, []string{"alice-phone", "bob-phone"}) {
		t.Fatalf("with presence unknown pushed to %v", got)
	}
}

func TestCheckPushRefusals(t *testing.T) {
	e := newPubEnv(t, push.Config{}, testApps{})
	for _, tc := range []struct{ raw, want string }{
		{`[1]`, "JSON object"},
		{`{"notification":{"title":"x"},"when":"sometimes"}`, `"offline" or "always"`},
		{`{"notification":{"title":"x"},"users":["a"]}`, "may not set users"},
		{`{"notification":{"title":"x"},"send_at":1}`, "may not set send_at"},
		{`{"notification":{"title":"x"},"ttl":-1}`, "ttl"},
		{`{"notification":{"title":"` + strings.Repeat("x", 5000) + `"}}`, "payload"},
	} {
		err := e.svc.CheckPush("app", json.RawMessage(tc.raw))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckPush(%.60s) = %v, want an error with %q", tc.raw, err, tc.want)
		}
	}
}
