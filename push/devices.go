package push

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// Device limits and lifetimes by default (spec §4.6, Beams' figures).
const (
	DefaultMaxDevicesPerUser     = 100
	DefaultMaxInterestsPerDevice = 5000
	DefaultMaxChannelsPerDevice  = 100
	DefaultMaxDevicesPerApp      = 1_000_000
	DefaultChallengeTTL          = 5 * time.Minute

	// MaxNameLength bounds interest and channel names (spec §4
	// conventions: the Pusher channel charset, at most 164 bytes).
	MaxNameLength = 164
	// maxChallenges is how many unused pseudo socket ids a device keeps;
	// asking for more drops the oldest.
	maxChallenges = 4
	// maxTokenLength bounds an FCM token (FCM's are ~160 bytes).
	maxTokenLength = 4096
	// An APNs device token is 32 bytes today, 64 hex digits; Apple says it
	// may grow, so up to 100 bytes are taken.
	minAPNsTokenLength, maxAPNsTokenLength = 64, 200
	// maxMetadataLength bounds a device's metadata JSON.
	maxMetadataLength = 4096
)

// DeviceConfig bounds devices and their subscriptions, per app: the
// server-wide values, which an app's overrides (Apps.AppPushLimits)
// replace. Zero fields mean the defaults.
type DeviceConfig struct {
	// MaxDevicesPerUser is the most devices one user may have (100).
	MaxDevicesPerUser int
	// MaxInterestsPerDevice is the most interests one device may have, its
	// own and its user's together (5000).
	MaxInterestsPerDevice int
	// MaxChannelsPerDevice is the most channel subscriptions one device
	// may have (100).
	MaxChannelsPerDevice int
	// MaxDevicesPerApp is the most devices one app may have (1,000,000).
	MaxDevicesPerApp int
	// ChallengeTTL is how long a pseudo socket id may be signed and used
	// (5 minutes).
	ChallengeTTL time.Duration
	// ChannelAuthTTL is how long a channel subscription authorised by a
	// signature lasts before the device must sign again; zero means it
	// does not lapse.
	ChannelAuthTTL time.Duration

	// From Deps, set by New.
	now             func() time.Time
	webSubscription func(endpoint, p256dh, auth string) ([]byte, []byte, error)
}

// withDefaults fills the zero fields and takes the collaborators of d.
func (c DeviceConfig) withDefaults(d Deps) DeviceConfig {
	c.now, c.webSubscription = d.Now, d.WebSubscription
	if c.now == nil {
		c.now = time.Now
	}
	if c.MaxDevicesPerUser <= 0 {
		c.MaxDevicesPerUser = DefaultMaxDevicesPerUser
	}
	if c.MaxInterestsPerDevice <= 0 {
		c.MaxInterestsPerDevice = DefaultMaxInterestsPerDevice
	}
	if c.MaxChannelsPerDevice <= 0 {
		c.MaxChannelsPerDevice = DefaultMaxChannelsPerDevice
	}
	if c.MaxDevicesPerApp <= 0 {
		c.MaxDevicesPerApp = DefaultMaxDevicesPerApp
	}
	if c.ChallengeTTL <= 0 {
		c.ChallengeTTL = DefaultChallengeTTL
	}
	return c
}

// now is the devices' clock (Deps.Now).
func (s *Service) now() time.Time { return s.cfg.Devices.now() }

// limits are the device limits of appID: its overrides where set, the
// server-wide DeviceConfig otherwise.
func (s *Service) limits(appID string) storage.DeviceLimits {
	l := storage.DeviceLimits{MaxPerUser: s.cfg.Devices.MaxDevicesPerUser, MaxInterests: s.cfg.Devices.MaxInterestsPerDevice,
		MaxChannels: s.cfg.Devices.MaxChannelsPerDevice, MaxPerApp: s.cfg.Devices.MaxDevicesPerApp}
	o := s.apps.AppPushLimits(appID)
	if o.MaxDevicesPerUser > 0 {
		l.MaxPerUser = o.MaxDevicesPerUser
	}
	if o.MaxInterestsPerDevice > 0 {
		l.MaxInterests = o.MaxInterestsPerDevice
	}
	return l
}

// Audit actions of devices.
const (
	ActionDeviceRegistered   = "push_device_registered"
	ActionDeviceDeleted      = "push_device_deleted"
	ActionDeviceUserBound    = "push_device_user_bound"
	ActionDeviceUserUnbound  = "push_device_user_unbound"
	ActionDeviceInvalidated  = "push_device_invalidated"
	ActionUserDevicesDeleted = "push_user_devices_deleted"
	ActionChannelSubscribed  = "push_channel_subscribed"
	ActionChannelRevoked     = "push_channel_revoked"
	ActionDeviceAuthDenied   = "push_device_auth_denied"
)

// apiError is an answer of the device API that is not a success: its
// status and the {"error","description"} body.
type apiError struct {
	status      int
	code, descr string
	// retryAfter is the Retry-After of a 429, in whole seconds.
	retryAfter int
}

func (e *apiError) Error() string { return e.code + ": " + e.descr }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, descr: fmt.Sprintf(format, args...)}
}

// storageError maps a storage error to the API's.
func storageError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, storage.ErrNotFound):
		return errorf(404, "not_found", "no such device")
	case errors.Is(err, storage.ErrTokenInUse):
		return errorf(409, "token_in_use", "another device of this app has that token")
	case errors.Is(err, storage.ErrDeviceLimit):
		return errorf(409, "limit_exceeded", "the user has reached the maximum number of devices")
	case errors.Is(err, storage.ErrInterestLimit):
		return errorf(409, "limit_exceeded", "too many interests")
	case errors.Is(err, storage.ErrAppDeviceLimit):
		return errorf(409, "limit_exceeded", "the app has reached the maximum number of devices")
	case errors.Is(err, storage.ErrChannelLimit):
		return errorf(409, "limit_exceeded", "too many channel subscriptions")
	case errors.Is(err, storage.ErrInvalid):
		return errorf(400, "bad_request", "invalid device fields")
	}
	return errorf(500, "internal_error", "storage failed")
}

// subscriptionBody is a browser PushSubscription (toJSON()).
type subscriptionBody struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// tokenBody is what identifies a device to its provider: a token (APNs,
// FCM) or a subscription (web), with the APNs details.
type tokenBody struct {
	Token           string            `json:"token"`
	Subscription    *subscriptionBody `json:"subscription"`
	Environment     string            `json:"environment"`
	Topic           string            `json:"topic"`
	BundleID        string            `json:"bundle_id"`
	VAPIDKeyVersion int               `json:"vapid_key_version"`
}

// apply checks t for platform and sets d's token fields; web checks a
// subscription with webSub (Deps.WebSubscription).
func (t tokenBody) apply(d *storage.Device, webSub func(endpoint, p256dh, auth string) ([]byte, []byte, error)) *apiError {
	switch d.Platform {
	case storage.PlatformAPNs:
		if _, err := hex.DecodeString(t.Token); err != nil || len(t.Token) < minAPNsTokenLength || len(t.Token) > maxAPNsTokenLength {
			return errorf(400, "invalid_token", "an APNs token is the device token in hex, %d-%d digits", minAPNsTokenLength, maxAPNsTokenLength)
		}
		switch t.Environment {
		case "":
			t.Environment = "production"
		case "production", "sandbox":
		default:
			return errorf(400, "invalid_environment", "environment is production or sandbox")
		}
		d.Token, d.Environment = strings.ToLower(t.Token), t.Environment
	case storage.PlatformFCM:
		if t.Token == "" || len(t.Token) > maxTokenLength || strings.ContainsFunc(t.Token, func(r rune) bool { return r <= ' ' || r > '~' }) {
			return errorf(400, "invalid_token", "an FCM token is a non-empty printable string")
		}
		d.Token = t.Token
	case storage.PlatformWeb:
		if t.Subscription == nil {
			return errorf(400, "invalid_subscription", "a web device needs subscription {endpoint, keys{p256dh, auth}}")
		}
		if webSub == nil {
			return errorf(400, "invalid_platform", "web push is not available on this server")
		}
		key, secret, err := webSub(t.Subscription.Endpoint, t.Subscription.Keys.P256dh, t.Subscription.Keys.Auth)
		if err != nil {
			// webpush's errors never quote the endpoint.
			return errorf(400, "invalid_subscription", "%v", err)
		}
		d.Token = t.Subscription.Endpoint
		d.WebP256dh = base64.RawURLEncoding.EncodeToString(key)
		d.WebAuth = base64.RawURLEncoding.EncodeToString(secret)
		if t.VAPIDKeyVersion < 0 {
			return errorf(400, "bad_request", "vapid_key_version must be positive")
		}
		d.VAPIDKeyVersion = t.VAPIDKeyVersion
	default:
		return errorf(400, "invalid_platform", "platform is apns, fcm or web")
	}
	topic := t.Topic
	if topic == "" {
		topic = t.BundleID
	}
	if len(topic) > 255 {
		return errorf(400, "bad_request", "topic is at most 255 bytes")
	}
	d.Topic = topic
	return nil
}

func checkMetadata(m json.RawMessage) (json.RawMessage, *apiError) {
	if len(m) == 0 || string(m) == "null" {
		return nil, nil
	}
	var obj map[string]any
	if len(m) > maxMetadataLength || json.Unmarshal(m, &obj) != nil {
		return nil, errorf(400, "bad_request", "metadata is a JSON object of at most %d bytes", maxMetadataLength)
	}
	return m, nil
}

// checkInterest refuses names outside the Pusher channel charset and names
// of channels that need authorization: those go through the channel route,
// where a signature is checked (spec §4.2).
func checkInterest(name string) *apiError {
	if !protocol.ValidChannelName(name, MaxNameLength) || strings.HasPrefix(name, protocol.ServerToUserPrefix) {
		return errorf(400, "invalid_interest", "interest names are 1-%d characters of [A-Za-z0-9_-=@,.;]", MaxNameLength)
	}
	if protocol.Classify(name).NeedsAuth() {
		return errorf(400, "invalid_interest", "private-, private-encrypted- and presence- names are channels: subscribe with the channels route and a signature")
	}
	return nil
}

func checkInterests(names []string) *apiError {
	for _, n := range names {
		if e := checkInterest(n); e != nil {
			return e
		}
	}
	return nil
}

// checkChannel refuses names a device cannot subscribe to.
func checkChannel(name string) *apiError {
	if !protocol.ValidChannelName(name, MaxNameLength) || strings.HasPrefix(name, protocol.ServerToUserPrefix) {
		return errorf(400, "invalid_channel", "channel names are 1-%d characters of [A-Za-z0-9_-=@,.;]", MaxNameLength)
	}
	return nil
}

func checkUserID(id string) *apiError {
	if id == "" || len(id) > protocol.MaxUserIDLength || strings.ContainsRune(id, 0) {
		return errorf(400, "invalid_user_id", "user ids are 1-%d bytes", protocol.MaxUserIDLength)
	}
	return nil
}

// applyOp changes set by op (add, remove or set).
func applyOp(set []string, op string, names []string) ([]string, *apiError) {
	switch op {
	case "add":
		out := append([]string(nil), set...)
		for _, n := range names {
			if !contains(out, n) {
				out = append(out, n)
			}
		}
		return out, nil
	case "remove":
		var out []string
		for _, n := range set {
			if !contains(names, n) {
				out = append(out, n)
			}
		}
		return out, nil
	case "set", "":
		var out []string
		for _, n := range names {
			if !contains(out, n) {
				out = append(out, n)
			}
		}
		return out, nil
	}
	return nil, errorf(400, "bad_request", "op is add, remove or set")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// newDeviceSecret returns a device secret (32 random bytes, base64url) and
// the hash that is stored.
func newDeviceSecret() (secret, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	return secret, storage.TokenHash(secret)
}

// secretMatches compares a presented device secret with the stored hash in
// constant time.
func secretMatches(d *storage.Device, presented string) bool {
	want, err := hex.DecodeString(d.SecretHash)
	if err != nil || len(want) == 0 || presented == "" {
		return false
	}
	got, _ := hex.DecodeString(storage.TokenHash(presented))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// newSocketID returns a fresh pseudo socket id in Pusher's form (\d+\.\d+,
// the form server SDKs check), with about 60 random bits.
func newSocketID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	a := binary.BigEndian.Uint64(b[:8]) % 1_000_000_000
	c := binary.BigEndian.Uint64(b[8:]) % 1_000_000_000_000
	return strconv.FormatUint(a, 10) + "." + strconv.FormatUint(c, 10)
}

// addChallenge gives d a fresh pseudo socket id valid until now+ttl,
// dropping expired ones and the oldest beyond maxChallenges.
func addChallenge(d *storage.Device, now time.Time, ttl time.Duration) storage.Challenge {
	pruneChallenges(d, now)
	if len(d.Challenges) >= maxChallenges {
		d.Challenges = d.Challenges[len(d.Challenges)-maxChallenges+1:]
	}
	c := storage.Challenge{SocketID: newSocketID(), ExpiresAt: now.Add(ttl)}
	d.Challenges = append(d.Challenges, c)
	return c
}

func pruneChallenges(d *storage.Device, now time.Time) {
	kept := d.Challenges[:0]
	for _, c := range d.Challenges {
		if now.Before(c.ExpiresAt) {
			kept = append(kept, c)
		}
	}
	d.Challenges = kept
}

// useChallenge consumes the device's challenge socketID: a signature over
// it counts once, and only before it expires.
func useChallenge(d *storage.Device, socketID string, now time.Time) *apiError {
	pruneChallenges(d, now)
	for i, c := range d.Challenges {
		if subtle.ConstantTimeCompare([]byte(c.SocketID), []byte(socketID)) == 1 {
			d.Challenges = append(d.Challenges[:i], d.Challenges[i+1:]...)
			return nil
		}
	}
	return errorf(401, "invalid_challenge", "socket_id is not a current challenge of this device: get a new one from the challenge route")
}

// verifySignature checks a signature of the app's key and secrets over
// toSign, as the WebSocket path does for pusher:subscribe and pusher:signin.
func (s *Service) verifySignature(appID, auth, toSign string) *apiError {
	key, secrets, ok := s.apps.AppCredentials(appID)
	if !ok {
		return errorf(404, "not_found", "no such app")
	}
	switch err := protocol.VerifyAuth(auth, key, secrets, toSign); {
	case err == nil:
		return nil
	case errors.Is(err, protocol.ErrAuthFormat):
		return errorf(401, "invalid_signature", "auth must be <key>:<signature>")
	case errors.Is(err, protocol.ErrAuthKey):
		return errorf(401, "invalid_signature", "auth is not signed with this app's key")
	}
	return errorf(401, "invalid_signature", "invalid signature")
}

// InvalidateDevice acts on a provider's answer r for the app's device with
// platform and token: a DeviceGone result (APNs 410 Unregistered, FCM
// UNREGISTERED, Web Push 404/410) removes the device and audits it with the
// provider's reason, unless the device registered that token again after
// r.InvalidSince. Other outcomes change nothing. ok reports a removal. The
// caller applies the spike guard (InvalidationGuard) first.
func (s *Service) InvalidateDevice(appID, platform, token string, r Result) (ok bool, err error) {
	if r.Outcome != DeviceGone {
		return false, nil
	}
	d, ok, err := s.db.RemoveInvalidDevice(appID, platform, storage.TokenHash(token), r.InvalidSince)
	if err != nil || !ok {
		return false, err
	}
	s.audit.Record(storage.AuditEntry{Time: s.now().UTC(), App: appID, Action: ActionDeviceInvalidated, UserID: d.UserID,
		Reason: deviceReason(&d, "reason="+r.Reason)})
	s.log.Info("push device invalidated", "app_id", appID, "device_id", d.ID, "platform", d.Platform,
		"token_hash", d.TokenHash[:12], "reason", r.Reason)
	return true, nil
}

// deviceReason is an audit entry's reason for a device: its id and
// platform, never its token.
func deviceReason(d *storage.Device, extra string) string {
	r := "device=" + d.ID + " platform=" + d.Platform
	if extra != "" {
		r += " " + extra
	}
	return r
}
