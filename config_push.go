package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/webpush"
	"github.com/sockudo/sockudo/ratelimit"
)

// pushConfig is the push subsystem (package push). Provider endpoints are
// operator settings only, never per tenant.
type pushConfig struct {
	// CredentialKey encrypts provider credentials at rest: 32 bytes in
	// base64. Without it (or CredentialKeyFile) credential writes are
	// refused. A secret: never logged.
	CredentialKey string `env:"PUSH_CREDENTIAL_ENCRYPTION_KEY"`
	// CredentialKeyFile is a file holding the key instead (a mounted
	// secret); it wins over CredentialKey.
	CredentialKeyFile string `env:"PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE"`
	// PreviousCredentialKeys are earlier keys, comma-separated, in the
	// same format: they open credentials sealed before a key change (never
	// seal), until "sockudo push credentials reseal" has moved them. A
	// secret: never logged.
	PreviousCredentialKeys string `env:"PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS"`
	// APNsEndpoint is production, development, or an http(s) URL (http://
	// is HTTP/2 cleartext, for tests).
	APNsEndpoint string `env:"PUSH_APNS_ENDPOINT" envDefault:"production"`
	// FCMEndpoint is the FCM API base URL.
	FCMEndpoint string `env:"PUSH_FCM_ENDPOINT" envDefault:"https://fcm.googleapis.com"`
	// AllowLocalWebPush lets Web Push endpoints be http:// and private
	// addresses. Tests only.
	AllowLocalWebPush bool `env:"PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS" envDefault:"false"`
	// RegistrationsPerMinute bounds device registrations through the client
	// API per client IP and app, per minute; 0 means no limit. An app's
	// PushLimits.RegistrationsPerMinute replaces it while it is on.
	RegistrationsPerMinute int `env:"PUSH_REGISTRATIONS_PER_IP_PER_MINUTE" envDefault:"60"`
	// DeviceRequestsPerSecond bounds the client API requests that change a
	// device (challenge, user, token, interests, channels), per device,
	// per second, with bursts of twice as many; 0 means no limit.
	DeviceRequestsPerSecond int `env:"PUSH_DEVICE_REQUESTS_PER_SECOND" envDefault:"10"`
	// MaxDevicesPerUser is the most push devices one user of an app may
	// have, unless the app's PushLimits say otherwise.
	MaxDevicesPerUser int `env:"PUSH_MAX_DEVICES_PER_USER" envDefault:"100"`
	// MaxInterestsPerDevice is the most interests one device may have (its
	// own and its user's), unless the app's PushLimits say otherwise.
	MaxInterestsPerDevice int `env:"PUSH_MAX_INTERESTS_PER_DEVICE" envDefault:"5000"`
	// MaxChannelsPerDevice is the most channel subscriptions one device may
	// have.
	MaxChannelsPerDevice int `env:"PUSH_MAX_CHANNELS_PER_DEVICE" envDefault:"100"`
	// MaxDevicesPerApp is the most push devices one app may have.
	MaxDevicesPerApp int `env:"PUSH_MAX_DEVICES_PER_APP" envDefault:"1000000"`
	// ChannelAuthTTLSeconds is how long a channel subscription authorised by
	// a device's signature lasts, in seconds; 0 means until revoked.
	ChannelAuthTTLSeconds int `env:"PUSH_CHANNEL_AUTH_TTL_SECONDS" envDefault:"0"`
	// FCMTokenURL replaces every FCM service account's token_uri (tests, emulators); "" keeps Google's.
	FCMTokenURL string `env:"PUSH_FCM_TOKEN_URL"`

	// WebPushAllowedHosts limits Web Push endpoints to these push
	// services: "" allows any public host, "browsers" the major browsers'
	// (webpush.DefaultAllowedHosts), or a comma-separated list of host
	// names and *.suffix patterns.
	WebPushAllowedHosts string `env:"PUSH_WEB_PUSH_ALLOWED_HOSTS"`

	// PublishRPS bounds push publishes per app per second (Beams' and
	// Sockudo's 100); 0 means no limit. Per app: PushLimits.publishes_per_second.
	PublishRPS int `env:"PUSH_PUBLISH_RPS" envDefault:"100"`
	// DailyNotifications bounds the notifications (devices reached) per
	// app per UTC day, counted across restarts; 0 means no limit.
	DailyNotifications int64 `env:"PUSH_DAILY_NOTIFICATIONS" envDefault:"0"`
	// MaxRecipientsPerPublish bounds the devices one publish may reach.
	MaxRecipientsPerPublish int `env:"PUSH_MAX_RECIPIENTS_PER_PUBLISH" envDefault:"100000"`
	// MaxInFlight is the most deliveries being sent at once: what a crash
	// may send twice.
	MaxInFlight int `env:"PUSH_MAX_IN_FLIGHT" envDefault:"256"`
	// ConcurrencyPerCredential is the most concurrent requests through one
	// provider credential.
	ConcurrencyPerCredential int `env:"PUSH_CONCURRENCY_PER_CREDENTIAL" envDefault:"64"`
	// MaxAttempts is how many times a delivery is tried before it becomes
	// a dead letter.
	MaxAttempts int `env:"PUSH_MAX_ATTEMPTS" envDefault:"8"`
	// RetryMaxSeconds caps the backoff between attempts (a provider's
	// Retry-After may be longer).
	RetryMaxSeconds int `env:"PUSH_RETRY_MAX_SECONDS" envDefault:"600"`
	// SendTimeoutSeconds bounds one provider request.
	SendTimeoutSeconds int `env:"PUSH_SEND_TIMEOUT_SECONDS" envDefault:"30"`
	// MaxDeadLetters is how many dead push deliveries an app keeps.
	MaxDeadLetters int `env:"PUSH_MAX_DEAD_LETTERS" envDefault:"10000"`
	// PublishRetentionDays is how long finished publishes, their
	// deliveries and idempotency keys are kept.
	PublishRetentionDays int `env:"PUSH_PUBLISH_RETENTION_DAYS" envDefault:"7"`
	// AuditRetentionDays is how long push audit trail entries are kept
	// (the chain stays verifiable: an anchor replaces what is purged); 0
	// keeps them forever.
	AuditRetentionDays int `env:"PUSH_AUDIT_RETENTION_DAYS" envDefault:"90"`
}

// credentialKey reads the credential encryption key: nil when none is set.
func (p pushConfig) credentialKey() ([]byte, error) {
	raw, name := p.CredentialKey, "PUSH_CREDENTIAL_ENCRYPTION_KEY"
	if p.CredentialKeyFile != "" {
		b, err := os.ReadFile(p.CredentialKeyFile)
		if err != nil {
			return nil, fmt.Errorf("PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE: %w", err)
		}
		raw, name = string(b), "PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE"
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	return decodeCredentialKey(raw, name)
}

// decodeCredentialKey reads one 32-byte key in base64 (any alphabet).
func decodeCredentialKey(raw, name string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(raw); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	// Never quote the value: it is a secret.
	return nil, errors.New(name + ": must be 32 bytes in base64 (openssl rand -base64 32)")
}

// previousKeys reads PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS.
func (p pushConfig) previousKeys() ([][]byte, error) {
	var keys [][]byte
	for _, raw := range strings.Split(p.PreviousCredentialKeys, ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		k, err := decodeCredentialKey(raw, "PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS")
		if err != nil {
			return nil, errors.New("PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS: each key must be 32 bytes in base64")
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// webAllowedHosts reads PUSH_WEB_PUSH_ALLOWED_HOSTS: nil allows any
// public host.
func (p pushConfig) webAllowedHosts() []string {
	v := strings.TrimSpace(p.WebPushAllowedHosts)
	if v == "" {
		return nil
	}
	if v == "browsers" {
		return slices.Clone(webpush.DefaultAllowedHosts)
	}
	var hosts []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// pushProblems checks the push settings.
func (c Config) pushProblems(ch *checks) {
	p := c.Push
	key, keyErr := p.credentialKey()
	if keyErr != nil {
		name, msg, _ := strings.Cut(keyErr.Error(), ": ")
		ch.bad(name, "%s", msg)
	}
	if prev, err := p.previousKeys(); err != nil {
		name, msg, _ := strings.Cut(err.Error(), ": ")
		ch.bad(name, "%s", msg)
	} else if len(prev) > 0 && key == nil && keyErr == nil {
		ch.bad("PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS", "needs PUSH_CREDENTIAL_ENCRYPTION_KEY (or _FILE): previous keys only open")
	}
	switch e := p.APNsEndpoint; {
	case e == "production", e == "development", strings.HasPrefix(e, "https://"), strings.HasPrefix(e, "http://"):
	default:
		ch.bad("PUSH_APNS_ENDPOINT", "must be production, development or an http(s) URL, got %q", e)
	}
	if !strings.HasPrefix(p.FCMEndpoint, "https://") && !strings.HasPrefix(p.FCMEndpoint, "http://") {
		ch.bad("PUSH_FCM_ENDPOINT", "must be an http(s) URL, got %q", p.FCMEndpoint)
	}
	ch.intIn("PUSH_REGISTRATIONS_PER_IP_PER_MINUTE", p.RegistrationsPerMinute, 0, 1_000_000)
	ch.intIn("PUSH_DEVICE_REQUESTS_PER_SECOND", p.DeviceRequestsPerSecond, 0, 1_000_000)
	ch.intIn("PUSH_MAX_DEVICES_PER_USER", p.MaxDevicesPerUser, 1, 100_000)
	ch.intIn("PUSH_MAX_INTERESTS_PER_DEVICE", p.MaxInterestsPerDevice, 1, 100_000)
	ch.intIn("PUSH_MAX_CHANNELS_PER_DEVICE", p.MaxChannelsPerDevice, 1, 100_000)
	ch.intIn("PUSH_MAX_DEVICES_PER_APP", p.MaxDevicesPerApp, 1, 1_000_000_000)
	ch.intIn("PUSH_CHANNEL_AUTH_TTL_SECONDS", p.ChannelAuthTTLSeconds, 0, 10*365*24*3600)
	ch.intIn("PUSH_PUBLISH_RPS", p.PublishRPS, 0, 1_000_000)
	if p.DailyNotifications < 0 {
		ch.bad("PUSH_DAILY_NOTIFICATIONS", "must be 0 (no limit) or more, got %d", p.DailyNotifications)
	}
	ch.intIn("PUSH_MAX_RECIPIENTS_PER_PUBLISH", p.MaxRecipientsPerPublish, 1, 10_000_000)
	ch.intIn("PUSH_MAX_IN_FLIGHT", p.MaxInFlight, 1, 100_000)
	ch.intIn("PUSH_CONCURRENCY_PER_CREDENTIAL", p.ConcurrencyPerCredential, 1, 10_000)
	ch.intIn("PUSH_MAX_ATTEMPTS", p.MaxAttempts, 1, 100)
	ch.intIn("PUSH_RETRY_MAX_SECONDS", p.RetryMaxSeconds, 1, 7*24*3600)
	ch.intIn("PUSH_SEND_TIMEOUT_SECONDS", p.SendTimeoutSeconds, 1, 600)
	ch.intIn("PUSH_MAX_DEAD_LETTERS", p.MaxDeadLetters, 1, 10_000_000)
	ch.intIn("PUSH_PUBLISH_RETENTION_DAYS", p.PublishRetentionDays, 1, 3650)
	ch.intIn("PUSH_AUDIT_RETENTION_DAYS", p.AuditRetentionDays, 0, 36500)
}

// PushConfig is push.Config from the environment; the limiters it builds are
// appended to memory so main runs its sweeps. It is called after
// validation, so the key reads.
func (c Config) PushConfig(memory *[]*ratelimit.Memory) push.Config {
	p := c.Push
	key, _ := p.credentialKey()
	prev, _ := p.previousKeys()
	pc := push.Config{CredentialKey: key, PreviousCredentialKeys: prev, APNsEndpoint: p.APNsEndpoint,
		WebAllowedHosts: p.webAllowedHosts(),
		FCMEndpoint:     p.FCMEndpoint, AllowLocalWebPush: p.AllowLocalWebPush, FCMTokenURL: p.FCMTokenURL,
		Devices: push.DeviceConfig{MaxDevicesPerUser: p.MaxDevicesPerUser, MaxInterestsPerDevice: p.MaxInterestsPerDevice,
			MaxChannelsPerDevice: p.MaxChannelsPerDevice, MaxDevicesPerApp: p.MaxDevicesPerApp, ChannelAuthTTL: time.Duration(p.ChannelAuthTTLSeconds) * time.Second},
		Publish: push.PublishConfig{MaxRecipients: p.MaxRecipientsPerPublish, PerSecond: p.PublishRPS, PerDay: p.DailyNotifications},
		Dispatch: push.DispatchConfig{InFlight: p.MaxInFlight, PerCredential: p.ConcurrencyPerCredential, MaxAttempts: p.MaxAttempts,
			RetryMax: time.Duration(p.RetryMaxSeconds) * time.Second, SendTimeout: time.Duration(p.SendTimeoutSeconds) * time.Second,
			MaxDeadLetters: p.MaxDeadLetters, Retention: time.Duration(p.PublishRetentionDays) * 24 * time.Hour}}
	if c.RateLimit.Enabled && p.PublishRPS > 0 {
		m := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: p.PublishRPS, Window: time.Second})
		*memory = append(*memory, m)
		pc.Limits.Publishes = m
	}
	if c.RateLimit.Enabled && p.RegistrationsPerMinute > 0 {
		m := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: p.RegistrationsPerMinute, Window: time.Minute})
		*memory = append(*memory, m)
		pc.Limits.Registrations = m
	}
	if c.RateLimit.Enabled && p.DeviceRequestsPerSecond > 0 {
		m := ratelimit.NewMemory(ratelimit.MemoryConfig{Limit: p.DeviceRequestsPerSecond, Window: time.Second,
			Burst: 2 * p.DeviceRequestsPerSecond})
		*memory = append(*memory, m)
		pc.Limits.DeviceRequests = m
	}
	return pc
}

// webSubscription is push.Deps.WebSubscription: a browser subscription's
// keys checked and its endpoint held to the SSRF rules and to the allowed
// push services (nil: any public host).
func webSubscription(allowLocal bool, allowed []string) func(endpoint, p256dh, auth string) ([]byte, []byte, error) {
	return func(endpoint, p256dh, auth string) ([]byte, []byte, error) {
		sub, err := webpush.ParseSubscription(endpoint, p256dh, auth)
		if err == nil {
			err = webpush.CheckEndpoint(endpoint, allowLocal)
		}
		if err == nil && !allowLocal && len(allowed) > 0 && !webpush.HostAllowed(endpoint, allowed) {
			err = fmt.Errorf("%w: not a push service this server sends to (PUSH_WEB_PUSH_ALLOWED_HOSTS)", webpush.ErrEndpointNotAllowed)
		}
		return sub.P256dh, sub.Auth, err
	}
}
