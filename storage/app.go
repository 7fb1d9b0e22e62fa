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
