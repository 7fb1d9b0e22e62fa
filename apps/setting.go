package apps

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sockudo/sockudo/storage"
)

// Setting describes one per-app setting: a field of [storage.App] with the
// names it goes by outside Go: its CLI flag and, derived from it, its
// variable (Env). Exactly one of Bool, Int and List is set; it
// points into an app at the field and says the setting's kind.
type Setting struct {
	// Flag is the "sockudo apps create|update" flag, without dashes.
	Flag string
	// NoEnv keeps the setting out of the environment: the default app
	// then keeps the default.
	NoEnv bool
	// Usage is the flag's help text.
	Usage string
	// Default is a new app's value, written as the environment and the
	// README write it ("true", "10", "" for none).
	Default string
	// Feature lists an on/off setting in the FEATURES column of
	// "sockudo apps list".
	Feature bool
	// Min is the smallest valid value of an Int setting.
	Min int

	Bool func(*storage.App) *bool
	Int  func(*storage.App) *int
	// List is a comma list in flags and variables.
	List func(*storage.App) *[]string
}

// Settings are the per-app settings, in the order the README's
// configuration table lists their variables. Ids, keys, secrets and webhooks
// are not here: each has rules of its own. A row's variable is its flag
// in SOCKUDO_DEFAULT_APP_ form (see Env).
var Settings = []Setting{
	{Flag: "enabled", Default: "true", Usage: "accept the app's sockets and API calls", Bool: func(a *storage.App) *bool { return &a.Enabled }},
	{Flag: "enable-client-messages", Feature: true, Default: "false", Usage: "allow client-* events on private and presence channels", Bool: func(a *storage.App) *bool { return &a.EnableClientMessages }},
	{Flag: "enable-user-authentication", Feature: true, Default: "false", Usage: "enable pusher:signin", Bool: func(a *storage.App) *bool { return &a.EnableUserAuthentication }},
	{Flag: "enable-watchlist-events", Feature: true, Default: "false", Usage: "send watchlist online/offline events", Bool: func(a *storage.App) *bool { return &a.EnableWatchlistEvents }},
	{Flag: "enable-subscription-count", Feature: true, Default: "false", Usage: "send pusher_internal:subscription_count", Bool: func(a *storage.App) *bool { return &a.EnableSubscriptionCount }},
	{Flag: "allowed-origins", Usage: "comma list of allowed origins: exact, '*', or one-'*' patterns like https://*.example.com; empty = any", List: func(a *storage.App) *[]string { return &a.AllowedOrigins }},
	{Flag: "max-connections", Default: "0", Usage: "sockets the app may hold per node (0 = no cap)", Int: func(a *storage.App) *int { return &a.MaxConnections }},
	{Flag: "max-client-events-per-second", Default: itoa(storage.DefaultMaxClientEventsPerSecond), Usage: "client events per socket per second", Int: func(a *storage.App) *int { return &a.MaxClientEventsPerSecond }},
	{Flag: "max-presence-members-per-channel", Default: itoa(storage.DefaultMaxPresenceMembersPerChannel), Usage: "members per presence channel", Int: func(a *storage.App) *int { return &a.MaxPresenceMembersPerChannel }},
	{Flag: "max-presence-member-size-in-kb", Default: itoa(storage.DefaultMaxPresenceMemberSizeInKB), Usage: "KiB of user_info per presence member", Int: func(a *storage.App) *int { return &a.MaxPresenceMemberSizeInKB }},
	{Flag: "max-channel-name-length", Default: itoa(storage.DefaultMaxChannelNameLength), Usage: "bytes per channel name", Int: func(a *storage.App) *int { return &a.MaxChannelNameLength }},
	{Flag: "max-event-channels-at-once", Default: itoa(storage.DefaultMaxEventChannelsAtOnce), Usage: "channels per API publish", Int: func(a *storage.App) *int { return &a.MaxEventChannelsAtOnce }},
	{Flag: "max-event-name-length", Default: itoa(storage.DefaultMaxEventNameLength), Usage: "bytes per event name", Int: func(a *storage.App) *int { return &a.MaxEventNameLength }},
	{Flag: "max-event-payload-in-kb", Default: itoa(storage.DefaultMaxEventPayloadInKB), Usage: "KiB of data per event", Int: func(a *storage.App) *int { return &a.MaxEventPayloadInKB }},
	{Flag: "max-event-batch-size", Default: itoa(storage.DefaultMaxEventBatchSize), Usage: "events per batch publish", Int: func(a *storage.App) *int { return &a.MaxEventBatchSize }},
	{Flag: "cache-ttl-seconds", Default: itoa(storage.DefaultCacheTTLSeconds), Usage: "seconds a cache channel keeps its last event", Int: func(a *storage.App) *int { return &a.CacheTTLSeconds }},
	// The rate-limit overrides have no variable: the default app uses the
	// server-wide RATE_LIMITER_* limits.
	{Flag: "rate-limit-api-max-requests", NoEnv: true, Default: "0", Usage: "HTTP API writes per RATE_LIMITER_API_WINDOW_SECONDS (0 = the server-wide limit)", Int: func(a *storage.App) *int { return &a.RateLimits.APIMaxRequests }},
	{Flag: "rate-limit-api-read-max-requests", NoEnv: true, Default: "0", Usage: "HTTP API reads per RATE_LIMITER_API_WINDOW_SECONDS (0 = the server-wide limit)", Int: func(a *storage.App) *int { return &a.RateLimits.APIReadMaxRequests }},
	{Flag: "rate-limit-ws-max-requests", NoEnv: true, Default: "0", Usage: "connection attempts per client IP per RATE_LIMITER_WS_WINDOW_SECONDS (0 = the server-wide limit)", Int: func(a *storage.App) *int { return &a.RateLimits.WSMaxRequests }},
	// The push limit overrides have no variable either, for the same
	// reason: the default app uses the server-wide PUSH_* limits.
	{Flag: "push-max-devices-per-user", NoEnv: true, Default: "0", Usage: "push devices one user may have (0 = PUSH_MAX_DEVICES_PER_USER)", Int: func(a *storage.App) *int { return &a.PushLimits.MaxDevicesPerUser }},
	{Flag: "push-max-interests-per-device", NoEnv: true, Default: "0", Usage: "interests one push device may have, its own and its user's (0 = PUSH_MAX_INTERESTS_PER_DEVICE)", Int: func(a *storage.App) *int { return &a.PushLimits.MaxInterestsPerDevice }},
	{Flag: "push-registrations-per-ip-per-minute", NoEnv: true, Default: "0", Usage: "push client API device registrations per client IP per minute (0 = PUSH_REGISTRATIONS_PER_IP_PER_MINUTE; applies while that limit is on)", Int: func(a *storage.App) *int { return &a.PushLimits.RegistrationsPerMinute }},
	{Flag: "push-publishes-per-second", NoEnv: true, Default: "0", Usage: "push publishes per second (0 = PUSH_PUBLISH_RPS; applies while that limit is on)", Int: func(a *storage.App) *int { return &a.PushLimits.PublishesPerSecond }},
	{Flag: "push-notifications-per-day", NoEnv: true, Default: "0", Usage: "push notifications (devices reached) per UTC day (0 = PUSH_DAILY_NOTIFICATIONS)", Int: func(a *storage.App) *int { return &a.PushLimits.NotificationsPerDay }},
	{Flag: "push-max-recipients-per-publish", NoEnv: true, Default: "0", Usage: "devices one push publish may reach (0 = PUSH_MAX_RECIPIENTS_PER_PUBLISH)", Int: func(a *storage.App) *int { return &a.PushLimits.MaxRecipientsPerPublish }},
}

func itoa(n int) string { return strconv.Itoa(n) }

// Env is the variable that sets the setting for the default app: its flag
// upper-cased, with '_' for '-', after SOCKUDO_DEFAULT_APP_. It is "" for a
// NoEnv setting.
func (s Setting) Env() string {
	if s.NoEnv {
		return ""
	}
	return "SOCKUDO_DEFAULT_APP_" + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
}

// Defaults returns an app with every setting of Settings at its default and
// everything else zero.
func Defaults() storage.App {
	var a storage.App
	for _, s := range Settings {
		if err := s.Set(&a, s.Default); err != nil {
			panic("apps: default of " + s.Flag + ": " + err.Error()) // a typo in the table; a test catches it
		}
	}
	return a
}

// Set parses v, written as in the environment, into a's field. An empty v
// sets a List to none and leaves a Bool or Int alone. Integers are 32-bit,
// as for every other integer variable. The error quotes v (no setting here
// is a secret) and says what was expected.
func (s Setting) Set(a *storage.App, v string) error {
	switch {
	case s.List != nil:
		*s.List(a) = cleanList(strings.Split(v, ","))
	case v == "":
	case s.Bool != nil:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*s.Bool(a) = b
	case s.Int != nil:
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*s.Int(a) = int(n)
	}
	return nil
}

// Problem says what is wrong with the setting's value in a, or returns "".
func (s Setting) Problem(a storage.App) string {
	switch {
	case s.Int != nil:
		if v := *s.Int(&a); v < s.Min {
			return fmt.Sprintf("must be at least %d, got %d", s.Min, v)
		}
	case s.List != nil:
		return originsProblem(*s.List(&a))
	}
	return ""
}

// cleanList trims the items of a comma list and drops empty ones, so
// "a, b," means [a b] and "" means none.
func cleanList(items []string) []string {
	var out []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// originsProblem says what is wrong with a list of allowed-origin patterns,
// or returns "". A pattern is an exact origin, "*", or an origin with one
// "*" standing for any run of characters (https://*.example.com).
func originsProblem(patterns []string) string {
	var bad []string
	for _, p := range patterns {
		if strings.Count(p, "*") > 1 {
			bad = append(bad, strconv.Quote(p))
		}
	}
	if len(bad) > 0 {
		return "each pattern may contain at most one '*', got " + strings.Join(bad, ", ")
	}
	return ""
}

// IdentProblem says what is wrong with an app id or key, or returns "".
// Both appear in URL paths (/app/{key}, /apps/{app_id}/events), so they keep
// to characters that need no escaping.
func IdentProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Sprintf("may contain only letters, digits, '-', '_' and '.', got %q", s)
		}
	}
	return ""
}

// SecretProblem says what is wrong with an app secret, or returns "". It
// never quotes the secret.
func SecretProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.TrimSpace(s) != s:
		return "must not start or end with whitespace"
	}
	return ""
}

// BeamsKeyProblem describes what is wrong with a Beams secret key chosen
// by an operator (generated ones are always good), or returns "": 32-256
// printable ASCII characters without spaces, and not the app secret,
// because Beams clients send the key on the wire.
func BeamsKeyProblem(key, appSecret string) string {
	switch {
	case len(key) < 32 || len(key) > 256:
		return "must be 32-256 characters (sockudo apps beams-key generate makes one)"
	case strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r > '~' }):
		return "must be printable ASCII without spaces"
	case key == appSecret:
		return "must not be the app secret: Beams clients send it on the wire"
	}
	return ""
}
