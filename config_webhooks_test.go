package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

func TestWebhookConfig(t *testing.T) {
	c, err := loadConfig(map[string]string{
		"WEBHOOK_BATCHING_ENABLED":      "false",
		"WEBHOOK_BATCHING_DURATION":     "0",
		"WEBHOOK_BATCHING_SIZE":         "10",
		"WEBHOOK_TIMEOUT_SECONDS":       "3",
		"WEBHOOK_RETRY_MAX_SECONDS":     "60",
		"WEBHOOK_RETRY_MAX_ATTEMPTS":    "5",
		"WEBHOOK_GRACE_PERIOD_MS":       "0",
		"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
		"WEBHOOK_MAX_CONCURRENCY":       "8",
		"WEBHOOK_DEAD_LETTER_MAX":       "50",
		"WEBHOOK_COMMIT_INTERVAL_MS":    "25",
		"WEBHOOK_QUEUE_MAX":             "500",
		"SOCKUDO_DEFAULT_APP_WEBHOOKS": `[{"url":"http://127.0.0.1:3001/webhook","event_types":["channel_occupied","member_added"],
			"filter":{"channel_prefix":"presence-"},"headers":{"Authorization":"Bearer t"},"batching":{"enabled":true,"size":5}}]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := webhooks.Config{
		Batching:    webhooks.Batching{Disabled: true, Duration: time.Nanosecond, Size: 10},
		Timeout:     3 * time.Second,
		RetryMax:    time.Minute,
		MaxAttempts: 5,
		// 0 ms in the environment means no grace period; zero in
		// webhooks.Config would mean the 3 s default.
		GracePeriod:         -1,
		AllowPrivateTargets: true,
		MaxConcurrency:      8,
		MaxDeadLetters:      50,
		CommitInterval:      25 * time.Millisecond,
		MaxQueueDepth:       500,
	}
	if got := c.WebhooksConfig(); got != want {
		t.Errorf("WebhooksConfig = %+v\nwant %+v", got, want)
	}
	on := true
	wantHooks := []storage.Webhook{{
		URL:        "http://127.0.0.1:3001/webhook",
		EventTypes: []string{"channel_occupied", "member_added"},
		Filter:     &storage.WebhookFilter{ChannelPrefix: "presence-"},
		Headers:    map[string]string{"Authorization": "Bearer t"},
		Batching:   &storage.WebhookBatching{Enabled: &on, Size: 5},
	}}
	if got := c.DefaultApp().Webhooks; !reflect.DeepEqual(got, wantHooks) {
		t.Errorf("default app webhooks = %+v, want %+v", got, wantHooks)
	}

	// Defaults: batching of 50 ms and 100 events, 3 s grace.
	c, err = loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.WebhooksConfig(); got.Batching != (webhooks.Batching{Duration: 50 * time.Millisecond, Size: 100}) ||
		got.GracePeriod != 3*time.Second || got.AllowPrivateTargets {
		t.Errorf("default WebhooksConfig = %+v", got)
	}
	if c.DefaultApp().Webhooks != nil {
		t.Error("default app has webhooks by default")
	}
}

func TestWebhookConfigInvalid(t *testing.T) {
	tcs := []struct {
		name     string
		env      map[string]string
		vars     []string
		contains []string
	}{
		{name: "batching size 0", env: map[string]string{"WEBHOOK_BATCHING_SIZE": "0"}, vars: []string{"WEBHOOK_BATCHING_SIZE"}},
		{name: "batching duration negative", env: map[string]string{"WEBHOOK_BATCHING_DURATION": "-1"}, vars: []string{"WEBHOOK_BATCHING_DURATION"}},
		{name: "timeout zero", env: map[string]string{"WEBHOOK_TIMEOUT_SECONDS": "0"}, vars: []string{"WEBHOOK_TIMEOUT_SECONDS"}},
		{name: "retry not a number", env: map[string]string{"WEBHOOK_RETRY_MAX_SECONDS": "5m"}, vars: []string{"WEBHOOK_RETRY_MAX_SECONDS"}},
		{name: "grace too long", env: map[string]string{"WEBHOOK_GRACE_PERIOD_MS": "600000"}, vars: []string{"WEBHOOK_GRACE_PERIOD_MS"}},
		{name: "commit interval zero", env: map[string]string{"WEBHOOK_COMMIT_INTERVAL_MS": "0"}, vars: []string{"WEBHOOK_COMMIT_INTERVAL_MS"}},
		{name: "private not a bool", env: map[string]string{"WEBHOOK_ALLOW_PRIVATE_TARGETS": "yes"}, vars: []string{"WEBHOOK_ALLOW_PRIVATE_TARGETS"}},
		{
			name:     "webhooks not JSON",
			env:      map[string]string{"SOCKUDO_DEFAULT_APP_WEBHOOKS": `{"url":`},
			vars:     []string{"SOCKUDO_DEFAULT_APP_WEBHOOKS"},
			contains: []string{"SOCKUDO_DEFAULT_APP_WEBHOOKS: must be a JSON array of webhooks"},
		},
		{
			name:     "webhooks with a typo",
			env:      map[string]string{"SOCKUDO_DEFAULT_APP_WEBHOOKS": `[{"url":"https://a/","event_type":["channel_occupied"]}]`},
			vars:     []string{"SOCKUDO_DEFAULT_APP_WEBHOOKS"},
			contains: []string{`unknown field "event_type"`},
		},
		{
			name: "every bad target is named, secrets are not echoed",
			env: map[string]string{"SOCKUDO_DEFAULT_APP_WEBHOOKS": `[{"url":"ftp://a/"},
				{"url":"https://b/","event_types":["nope"],"headers":{"X-Pusher-Key":"hunter2"}}]`},
			vars: []string{"SOCKUDO_DEFAULT_APP_WEBHOOKS", "SOCKUDO_DEFAULT_APP_WEBHOOKS", "SOCKUDO_DEFAULT_APP_WEBHOOKS"},
			contains: []string{"SOCKUDO_DEFAULT_APP_WEBHOOKS: webhooks[0].url: must be http or https",
				"SOCKUDO_DEFAULT_APP_WEBHOOKS: webhooks[1].event_types", "SOCKUDO_DEFAULT_APP_WEBHOOKS: webhooks[1].headers"},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := problemVars(err); !slices.Equal(got, tc.vars) {
				t.Errorf("problems name %v, want %v\n%v", got, tc.vars, err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes a header value:\n%v", err)
			}
		})
	}
}
