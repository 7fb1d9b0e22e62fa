package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
)

func TestPushCredentialKey(t *testing.T) {
	key32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 ASCII bytes
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(key32+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tcs := []struct {
		name    string
		env     map[string]string
		wantKey bool
		wantBad string // the variable a problem names
	}{
		{name: "none: push credential writes are refused later, not a config error", env: map[string]string{}},
		{name: "base64 key", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": key32}, wantKey: true},
		{name: "key file wins", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": "short",
			"PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE": file}, wantKey: true},
		{name: "wrong length", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY": "c2hvcnQ="}, wantBad: "PUSH_CREDENTIAL_ENCRYPTION_KEY"},
		{name: "missing file", env: map[string]string{"PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE": file + ".nope"}, wantBad: "PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE"},
		{name: "bad APNs endpoint", env: map[string]string{"PUSH_APNS_ENDPOINT": "staging"}, wantBad: "PUSH_APNS_ENDPOINT"},
		{name: "bad FCM endpoint", env: map[string]string{"PUSH_FCM_ENDPOINT": "fcm.example"}, wantBad: "PUSH_FCM_ENDPOINT"},
		{name: "no devices per user", env: map[string]string{"PUSH_MAX_DEVICES_PER_USER": "0"}, wantBad: "PUSH_MAX_DEVICES_PER_USER"},
		{name: "negative channel auth TTL", env: map[string]string{"PUSH_CHANNEL_AUTH_TTL_SECONDS": "-1"}, wantBad: "PUSH_CHANNEL_AUTH_TTL_SECONDS"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if tc.wantBad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantBad+":") {
					t.Fatalf("error %v, want a problem naming %s", err, tc.wantBad)
				}
				if strings.Contains(err.Error(), "c2hvcnQ") {
					t.Fatalf("the error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var memory []*ratelimit.Memory
			pc := c.PushConfig(&memory)
			if got := len(pc.CredentialKey) == 32; got != tc.wantKey {
				t.Fatalf("key of %d bytes", len(pc.CredentialKey))
			}
		})
	}
}

func TestPushDeviceSettings(t *testing.T) {
	c, err := loadConfig(map[string]string{"PUSH_MAX_DEVICES_PER_USER": "3", "PUSH_MAX_INTERESTS_PER_DEVICE": "7",
		"PUSH_CHANNEL_AUTH_TTL_SECONDS": "3600"})
	if err != nil {
		t.Fatal(err)
	}
	var memory []*ratelimit.Memory
	d := c.PushConfig(&memory).Devices
	if d.MaxDevicesPerUser != 3 || d.MaxInterestsPerDevice != 7 || d.ChannelAuthTTL != time.Hour {
		t.Fatalf("Devices = %+v", d)
	}
}
