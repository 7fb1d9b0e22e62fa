package webhooks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
)

func TestValidate(t *testing.T) {
	no := false
	tcs := []struct {
		name  string
		hooks []storage.Webhook
		// wantErrs are fragments of the error, one per problem; none means valid.
		wantErrs []string
	}{
		{name: "none", hooks: nil},
		{name: "minimal", hooks: []storage.Webhook{{URL: "https://example.com/hook"}}},
		{name: "everything", hooks: []storage.Webhook{{
			URL:        "http://example.com:8080/hook?token=x",
			EventTypes: []string{"channel_occupied", "client_event"},
			Filter:     &storage.WebhookFilter{ChannelPrefix: "presence-", ChannelSuffix: "-x", ChannelPattern: `^presence-[a-z]+-x$`},
			Headers:    map[string]string{"Authorization": "Bearer t", "x-custom": "1"},
			Batching:   &storage.WebhookBatching{Enabled: &no, Duration: 10, Size: 5},
		}}},
		{name: "empty url", hooks: []storage.Webhook{{}}, wantErrs: []string{"webhooks[0].url: is required"}},
		{name: "ftp", hooks: []storage.Webhook{{URL: "ftp://example.com/"}}, wantErrs: []string{`must be http or https, got "ftp"`}},
		{name: "no host", hooks: []storage.Webhook{{URL: "http:///path"}}, wantErrs: []string{"has no host"}},
		{name: "relative", hooks: []storage.Webhook{{URL: "/hook"}}, wantErrs: []string{"must be http or https"}},
		{name: "unknown event", hooks: []storage.Webhook{{URL: "https://a/", EventTypes: []string{"channel_existence"}}},
			wantErrs: []string{`webhooks[0].event_types: unknown event "channel_existence"`}},
		{name: "push events", hooks: []storage.Webhook{{URL: "https://a/",
			EventTypes: []string{"push_publish_finished", "push_device_invalidated", "push_credential_unhealthy", "member_added"},
			Filter:     &storage.WebhookFilter{ChannelPrefix: "presence-"}}}},
		{name: "unknown push event", hooks: []storage.Webhook{{URL: "https://a/", EventTypes: []string{"push_delivered"}}},
			wantErrs: []string{`webhooks[0].event_types: unknown event "push_delivered"`}},
		{name: "bad pattern", hooks: []storage.Webhook{{URL: "https://a/", Filter: &storage.WebhookFilter{ChannelPattern: "("}}},
			wantErrs: []string{"webhooks[0].filter.channel_pattern: is not a regular expression"}},
		{name: "reserved header", hooks: []storage.Webhook{{URL: "https://a/", Headers: map[string]string{"x-pusher-signature": "f"}}},
			wantErrs: []string{"X-Pusher-Signature is set by sockudo"}},
		{name: "content type header", hooks: []storage.Webhook{{URL: "https://a/", Headers: map[string]string{"Content-Type": "text/plain"}}},
			wantErrs: []string{"Content-Type is set by sockudo"}},
		{name: "header injection", hooks: []storage.Webhook{{URL: "https://a/", Headers: map[string]string{"X-A": "1\r\nX-B: 2"}}},
			wantErrs: []string{"contains a line break"}},
		{name: "bad header name", hooks: []storage.Webhook{{URL: "https://a/", Headers: map[string]string{"X A": "1"}}},
			wantErrs: []string{`"X A" is not a valid header name`}},
		{name: "batching out of range", hooks: []storage.Webhook{{URL: "https://a/", Batching: &storage.WebhookBatching{Duration: -1, Size: 1001}}},
			wantErrs: []string{"webhooks[0].batching.duration", "webhooks[0].batching.size"}},
		{name: "same url twice", hooks: []storage.Webhook{{URL: "https://a/"}, {URL: "https://a/"}},
			wantErrs: []string{"webhooks[1].url: same URL as webhooks[0]"}},
		{name: "problems of several targets", hooks: []storage.Webhook{{URL: "https://a/"}, {URL: "gopher://b"}, {URL: "https://c/", EventTypes: []string{"x"}}},
			wantErrs: []string{"webhooks[1].url", "webhooks[2].event_types"}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.hooks)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted invalid targets")
			}
			if n := len(unjoin(err)); n != len(tc.wantErrs) {
				t.Errorf("%d problems, want %d: %v", n, len(tc.wantErrs), err)
			}
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestTargetMatches(t *testing.T) {
	tcs := []struct {
		name    string
		hook    storage.Webhook
		event   string
		channel string
		want    bool
	}{
		{"no filter takes everything", storage.Webhook{}, CacheMiss, "cache-x", true},
		{"event type listed", storage.Webhook{EventTypes: []string{MemberAdded}}, MemberAdded, "presence-a", true},
		{"event type not listed", storage.Webhook{EventTypes: []string{MemberAdded}}, MemberRemoved, "presence-a", false},
		{"prefix", storage.Webhook{Filter: &storage.WebhookFilter{ChannelPrefix: "presence-"}}, ChannelOccupied, "presence-a", true},
		{"prefix miss", storage.Webhook{Filter: &storage.WebhookFilter{ChannelPrefix: "presence-"}}, ChannelOccupied, "private-a", false},
		{"suffix", storage.Webhook{Filter: &storage.WebhookFilter{ChannelSuffix: "-orders"}}, ChannelOccupied, "private-orders", true},
		{"suffix miss", storage.Webhook{Filter: &storage.WebhookFilter{ChannelSuffix: "-orders"}}, ChannelOccupied, "private-order", false},
		{"pattern is unanchored", storage.Webhook{Filter: &storage.WebhookFilter{ChannelPattern: `room-\d+`}}, ChannelOccupied, "presence-room-42-x", true},
		{"anchored pattern", storage.Webhook{Filter: &storage.WebhookFilter{ChannelPattern: `^room-\d+$`}}, ChannelOccupied, "presence-room-42", false},
		{"all filters must match", storage.Webhook{Filter: &storage.WebhookFilter{ChannelPrefix: "a-", ChannelSuffix: "-z", ChannelPattern: "m"}}, ChannelOccupied, "a-x-z", false},
		{"all filters match", storage.Webhook{Filter: &storage.WebhookFilter{ChannelPrefix: "a-", ChannelSuffix: "-z", ChannelPattern: "m"}}, ChannelOccupied, "a-m-z", true},
		{"no event_types takes no push event", storage.Webhook{}, PushPublishFinished, "", false},
		{"no event_types takes no device event", storage.Webhook{}, PushDeviceInvalidated, "", false},
		{"no event_types takes no credential event", storage.Webhook{}, PushCredentialUnhealthy, "", false},
		{"push event listed", storage.Webhook{EventTypes: []string{PushPublishFinished}}, PushPublishFinished, "", true},
		{"push event not listed", storage.Webhook{EventTypes: []string{PushPublishFinished}}, PushDeviceInvalidated, "", false},
		{"channel filters do not apply to push events",
			storage.Webhook{EventTypes: []string{PushDeviceInvalidated, ChannelOccupied},
				Filter: &storage.WebhookFilter{ChannelPrefix: "a-", ChannelSuffix: "-z", ChannelPattern: "^a-m-z$"}},
			PushDeviceInvalidated, "", true},
		{"channel filters still apply to the target's channel events",
			storage.Webhook{EventTypes: []string{PushDeviceInvalidated, ChannelOccupied},
				Filter: &storage.WebhookFilter{ChannelPrefix: "a-"}},
			ChannelOccupied, "b-x", false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			tc.hook.URL = "https://example.com/"
			tg, err := compileTarget("a", tc.hook, Batching{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tg.matches(tc.event, tc.channel); got != tc.want {
				t.Fatalf("matches(%s, %s) = %v, want %v", tc.event, tc.channel, got, tc.want)
			}
		})
	}
}

func TestTargetBatching(t *testing.T) {
	on, off := true, false
	def := Batching{Duration: 50 * time.Millisecond, Size: 100}
	tcs := []struct {
		name     string
		server   Batching
		override *storage.WebhookBatching
		size     int
		wait     time.Duration
	}{
		{"server default", def, nil, 100, 50 * time.Millisecond},
		{"server disabled: one event per request", Batching{Disabled: true, Duration: time.Second, Size: 10}, nil, 1, 0},
		{"target disables", def, &storage.WebhookBatching{Enabled: &off}, 1, 0},
		{"target enables", Batching{Disabled: true, Duration: time.Second, Size: 10}, &storage.WebhookBatching{Enabled: &on}, 10, time.Second},
		{"target overrides size and duration", def, &storage.WebhookBatching{Duration: 5, Size: 7}, 7, 5 * time.Millisecond},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := compileTarget("a", storage.Webhook{URL: "https://x/", Batching: tc.override}, tc.server)
			if err != nil {
				t.Fatal(err)
			}
			if tg.batchSize != tc.size || tg.batchWait != tc.wait {
				t.Fatalf("batch = %d, %s; want %d, %s", tg.batchSize, tg.batchWait, tc.size, tc.wait)
			}
		})
	}
}

func TestNewRejectsBadStoredTarget(t *testing.T) {
	db, _ := openDB(t, app(storage.Webhook{URL: "ftp://x/"}))
	defer db.Close()
	if _, err := New(testConfig(), db, nil); err == nil || !strings.Contains(err.Error(), "webhooks[0].url") {
		t.Fatalf("New = %v, want an error naming webhooks[0].url", err)
	}
	_, err := New(Config{Batching: Batching{Size: 5000}}, db, nil)
	if err == nil || errors.Is(err, nil) {
		t.Fatal("New accepted batching size 5000")
	}
}

func TestParseTargets(t *testing.T) {
	tcs := []struct {
		name, in string
		n        int
		err      string
	}{
		{name: "empty means none", in: "  "},
		{name: "one target", in: `[{"url":"https://x.test/hook","event_types":["member_added"]}]`, n: 1},
		{name: "not an array", in: `{"url":"https://x.test"}`, err: "must be a JSON array of webhooks"},
		{name: "unknown field", in: `[{"url":"https://x.test","event_type":["member_added"]}]`, err: "event_type"},
		{name: "two documents", in: `[] []`, err: "found more after it"},
		{name: "invalid target", in: `[{"url":"ftp://x.test"}]`, err: "webhooks[0].url"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			hooks, err := ParseTargets(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(hooks) != tc.n {
				t.Fatalf("ParseTargets = %+v, %v", hooks, err)
			}
		})
	}
}
