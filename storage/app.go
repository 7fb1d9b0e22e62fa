package storage

import "time"

// App is one tenant: its credentials, feature flags and limits. Zero limits
// mean "use the Pusher default" (see the Default* constants), except
// MaxConnections where zero means no cap.
type App struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Secret  string `json:"secret"`
	Enabled bool   `json:"enabled"`

	// PreviousSecret stays valid for signatures (REST, channel auth,
	// signin) until PreviousSecretExpiresAt, so a secret can be rotated
	// without downtime. Webhooks are always signed with Secret.
	PreviousSecret          string    `json:"previous_secret,omitempty"`
	PreviousSecretExpiresAt time.Time `json:"previous_secret_expires_at,omitzero"`

	// BeamsSecretKey is the app's Pusher Beams secret key: a secret of its
	// own (never Secret, because Beams clients send it on the wire as a
	// bearer token) that authorizes the Beams-compatible publish and user
	// APIs and signs Beams user tokens. Empty (the default) means the app
	// does not answer on the Beams routes. PreviousBeamsSecretKey stays
	// valid until PreviousBeamsSecretKeyExpiresAt, as PreviousSecret does.
	BeamsSecretKey                  string    `json:"beams_secret_key,omitempty"`
	PreviousBeamsSecretKey          string    `json:"previous_beams_secret_key,omitempty"`
	PreviousBeamsSecretKeyExpiresAt time.Time `json:"previous_beams_secret_key_expires_at,omitzero"`

	EnableClientMessages     bool `json:"enable_client_messages"`
	EnableUserAuthentication bool `json:"enable_user_authentication"`
	EnableWatchlistEvents    bool `json:"enable_watchlist_events"`
	// EnableSubscriptionCount turns on pusher_internal:subscription_count.
	EnableSubscriptionCount bool `json:"enable_subscription_count"`

	// AllowedOrigins lists exact origins, "*", or one-wildcard patterns such
	// as "https://*.example.com". Empty means any origin.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// MaxConnections caps concurrent sockets for the app; 0 means no cap.
	MaxConnections               int `json:"max_connections"`
	MaxClientEventsPerSecond     int `json:"max_client_events_per_second"`
	MaxPresenceMembersPerChannel int `json:"max_presence_members_per_channel"`
	// MaxPresenceMemberSizeInKB bounds the encoded user_info of one member.
	MaxPresenceMemberSizeInKB int `json:"max_presence_member_size_in_kb"`
	MaxChannelNameLength      int `json:"max_channel_name_length"`
	MaxEventChannelsAtOnce    int `json:"max_event_channels_at_once"`
	MaxEventNameLength        int `json:"max_event_name_length"`
	MaxEventPayloadInKB       int `json:"max_event_payload_in_kb"`
	MaxEventBatchSize         int `json:"max_event_batch_size"`
	// CacheTTLSeconds is how long a cache channel keeps its last event.
	CacheTTLSeconds int `json:"cache_ttl_seconds"`

	// RateLimits overrides the server-wide limits for this app; zero fields
	// keep the server-wide values (RATE_LIMITER_*).
	RateLimits AppRateLimits `json:"rate_limits,omitzero"`
	// PushLimits overrides the server-wide push device limits for this app;
	// zero fields keep the server-wide values (PUSH_*).
	PushLimits AppPushLimits `json:"push_limits,omitzero"`

	// Webhooks are the app's webhook targets; none means no webhooks. The
	// webhooks package validates them (webhooks.Validate).
	Webhooks []Webhook `json:"webhooks,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Pusher's documented defaults, applied where an App limit is zero.
const (
	DefaultMaxClientEventsPerSecond     = 10
	DefaultMaxPresenceMembersPerChannel = 100
	DefaultMaxPresenceMemberSizeInKB    = 1
	DefaultMaxChannelNameLength         = 200
	DefaultMaxEventChannelsAtOnce       = 100
	DefaultMaxEventNameLength           = 200
	DefaultMaxEventPayloadInKB          = 10
	DefaultMaxEventBatchSize            = 10
	DefaultCacheTTLSeconds              = 1800
)

// WithDefaults returns a copy of a with every zero limit replaced by its
// default. MaxConnections is left alone: zero means no cap.
func (a App) WithDefaults() App {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&a.MaxClientEventsPerSecond, DefaultMaxClientEventsPerSecond)
	def(&a.MaxPresenceMembersPerChannel, DefaultMaxPresenceMembersPerChannel)
	def(&a.MaxPresenceMemberSizeInKB, DefaultMaxPresenceMemberSizeInKB)
	def(&a.MaxChannelNameLength, DefaultMaxChannelNameLength)
	def(&a.MaxEventChannelsAtOnce, DefaultMaxEventChannelsAtOnce)
	def(&a.MaxEventNameLength, DefaultMaxEventNameLength)
	def(&a.MaxEventPayloadInKB, DefaultMaxEventPayloadInKB)
	def(&a.MaxEventBatchSize, DefaultMaxEventBatchSize)
	def(&a.CacheTTLSeconds, DefaultCacheTTLSeconds)
	return a
}

// RotateSecret returns a with newSecret as its secret and the old one kept
// valid for grace after now. A grace of zero or less revokes the old secret
// at once.
func (a App) RotateSecret(newSecret string, grace time.Duration, now time.Time) App {
	a.PreviousSecret, a.PreviousSecretExpiresAt = "", time.Time{}
	if grace > 0 {
		a.PreviousSecret, a.PreviousSecretExpiresAt = a.Secret, now.Add(grace)
	}
	a.Secret = newSecret
	return a
}

// Secrets returns the secrets valid at now, current first.
func (a App) Secrets(now time.Time) []string {
	if a.PreviousSecret != "" && now.Before(a.PreviousSecretExpiresAt) {
		return []string{a.Secret, a.PreviousSecret}
	}
	return []string{a.Secret}
}

// RotateBeamsKey returns a with newKey as its Beams secret key and the old
// one, if any, kept valid for grace after now. A grace of zero or less, or
// an empty newKey (revoking the key), drops the old key at once: an app
// without a key answers on no Beams route.
func (a App) RotateBeamsKey(newKey string, grace time.Duration, now time.Time) App {
	a.PreviousBeamsSecretKey, a.PreviousBeamsSecretKeyExpiresAt = "", time.Time{}
	if grace > 0 && newKey != "" && a.BeamsSecretKey != "" {
		a.PreviousBeamsSecretKey, a.PreviousBeamsSecretKeyExpiresAt = a.BeamsSecretKey, now.Add(grace)
	}
	a.BeamsSecretKey = newKey
	return a
}

// BeamsKeys returns the Beams secret keys valid at now, current first; nil
// when the app has none.
func (a App) BeamsKeys(now time.Time) []string {
	if a.BeamsSecretKey == "" {
		return nil
	}
	if a.PreviousBeamsSecretKey != "" && now.Before(a.PreviousBeamsSecretKeyExpiresAt) {
		return []string{a.BeamsSecretKey, a.PreviousBeamsSecretKey}
	}
	return []string{a.BeamsSecretKey}
}

// Webhook is one webhook target of an app: where to POST which events
// (shared/spec/pusher-protocol.md §5). Within an app the URL identifies the
// target, so two targets may not share one.
type Webhook struct {
	// URL receives the POST requests; http or https.
	URL string `json:"url"`
	// EventTypes lists the event names sent to URL (channel_occupied,
	// channel_vacated, member_added, member_removed, client_event,
	// cache_miss, subscription_count, push_publish_finished,
	// push_device_invalidated, push_credential_unhealthy). Empty means every
	// realtime event: push events are sent only when listed.
	EventTypes []string `json:"event_types,omitempty"`
	// Filter narrows the channels whose events are sent; nil means all.
	Filter *WebhookFilter `json:"filter,omitempty"`
	// Headers are added to every request. They may not set Content-Type,
	// X-Pusher-Key, X-Pusher-Signature or the transport headers.
	Headers map[string]string `json:"headers,omitempty"`
	// Batching overrides the server's batching settings for this target;
	// nil means the server's.
	Batching *WebhookBatching `json:"batching,omitempty"`
}

// WebhookFilter selects channels by name. Every non-empty field must match;
// the zero value matches every channel.
type WebhookFilter struct {
	// ChannelPrefix must start the channel name ("presence-").
	ChannelPrefix string `json:"channel_prefix,omitempty"`
	// ChannelSuffix must end the channel name.
	ChannelSuffix string `json:"channel_suffix,omitempty"`
	// ChannelPattern is a regular expression (Go RE2 syntax) that must match
	// somewhere in the channel name; anchor it with ^ and $ to match all of it.
	ChannelPattern string `json:"channel_pattern,omitempty"`
}

// WebhookBatching overrides the server's batching for one target. A nil
// Enabled, a zero Duration or a zero Size keeps the server's value.
type WebhookBatching struct {
	// Enabled false sends one event per request.
	Enabled *bool `json:"enabled,omitempty"`
	// Duration is how long, in milliseconds, events are collected before a
	// request is sent.
	Duration int `json:"duration,omitempty"`
	// Size is the most events one request carries.
	Size int `json:"size,omitempty"`
}

// AppRateLimits are per-app overrides of the server-wide rate limits, in
// requests per the server-wide window. Zero keeps the server-wide limit.
// They apply while the server-wide limiter is on.
type AppRateLimits struct {
	// APIMaxRequests bounds HTTP API writes (events, batch_events,
	// terminate_connections) of the app.
	APIMaxRequests int `json:"api_max_requests,omitempty"`
	// APIReadMaxRequests bounds HTTP API reads of the app.
	APIReadMaxRequests int `json:"api_read_max_requests,omitempty"`
	// WSMaxRequests bounds connection attempts per client IP to the app.
	WSMaxRequests int `json:"ws_max_requests,omitempty"`
}

// AppPushLimits are per-app overrides of the server-wide push device limits.
// Zero keeps the server-wide value.
type AppPushLimits struct {
	// MaxDevicesPerUser is the most push devices one user of the app may
	// have (PUSH_MAX_DEVICES_PER_USER).
	MaxDevicesPerUser int `json:"max_devices_per_user,omitempty"`
	// MaxInterestsPerDevice is the most interests one device of the app may
	// have, its own and its user's together (PUSH_MAX_INTERESTS_PER_DEVICE).
	MaxInterestsPerDevice int `json:"max_interests_per_device,omitempty"`
	// RegistrationsPerMinute bounds device registrations through the push
	// client API per client IP per minute
	// (PUSH_REGISTRATIONS_PER_IP_PER_MINUTE). It applies while that
	// server-wide limiter is on, as AppRateLimits do.
	RegistrationsPerMinute int `json:"registrations_per_ip_per_minute,omitempty"`
	// PublishesPerSecond bounds the app's push publishes per second
	// (PUSH_PUBLISH_RPS).
	PublishesPerSecond int `json:"publishes_per_second,omitempty"`
	// NotificationsPerDay bounds the notifications (one per device of a
	// publish) the app may send per UTC day (PUSH_DAILY_NOTIFICATIONS).
	NotificationsPerDay int `json:"notifications_per_day,omitempty"`
	// MaxRecipientsPerPublish bounds the devices one publish may reach
	// (PUSH_MAX_RECIPIENTS_PER_PUBLISH).
	MaxRecipientsPerPublish int `json:"max_recipients_per_publish,omitempty"`
}
