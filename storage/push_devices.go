package storage

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Push devices live in five buckets, created on first use. Every key starts
// with the app id and a NUL, so one app's entries are one contiguous range,
// and the index keys end with the device id, so listing a user's, an
// interest's or a channel's devices is a prefix scan that reads only them:
//
//	push_devices          app \0 device            -> JSON of [Device]
//	push_device_tokens    app \0 platform \0 hash  -> device id (upsert by token)
//	push_device_users     app \0 user \0 device    -> empty
//	push_device_interests app \0 interest \0 device -> empty (own and user interests)
//	push_device_channels  app \0 channel \0 device -> empty
//	push_user_interests   app \0 user \0 interest  -> empty
//	push_device_counts    app                       -> uint64 big-endian, the app's devices
//
// The count is kept by every device write (counted once by a scan where it
// is missing), so the per-app limit is checked without a scan. Whatever
// removes an app's devices must delete its count too.
var (
	bucketPushDevices       = []byte("push_devices")
	bucketPushTokens        = []byte("push_device_tokens")
	bucketPushUsers         = []byte("push_device_users")
	bucketPushInterests     = []byte("push_device_interests")
	bucketPushChannels      = []byte("push_device_channels")
	bucketPushUserInterests = []byte("push_user_interests")
	bucketPushCounts        = []byte("push_device_counts")
)

// Errors of the push device methods, beside [ErrNotFound] and [ErrInvalid].
var (
	// ErrTokenInUse is returned when a device is given a provider token
	// that another device of the app already has.
	ErrTokenInUse = errors.New("token belongs to another device")
	// ErrDeviceLimit is returned when a user would have more devices than
	// [DeviceLimits.MaxPerUser].
	ErrDeviceLimit = errors.New("user has reached the maximum number of devices")
	// ErrInterestLimit is returned when a device or a user would have more
	// interests than [DeviceLimits.MaxInterests].
	ErrInterestLimit = errors.New("too many interests")
	// ErrChannelLimit is returned when a device would have more channel
	// subscriptions than [DeviceLimits.MaxChannels].
	ErrChannelLimit = errors.New("too many channel subscriptions")
	// ErrAppDeviceLimit is returned when an app would have more devices
	// than [DeviceLimits.MaxPerApp].
	ErrAppDeviceLimit = errors.New("app has reached the maximum number of devices")
)

// Device platforms.
const (
	PlatformAPNs = "apns"
	PlatformFCM  = "fcm"
	PlatformWeb  = "web"
)

// Device is one registered push device of an app. Token is the provider's
// address of the device and a secret in logs: show TokenHash instead.
type Device struct {
	ID  string `json:"id"`
	App string `json:"app_id"`
	// Platform is PlatformAPNs, PlatformFCM or PlatformWeb.
	Platform string `json:"platform"`
	// Token is the APNs device token, the FCM registration token or the
	// Web Push endpoint.
	Token string `json:"token"`
	// TokenHash is the hex SHA-256 of Token; set by the methods here.
	TokenHash string `json:"token_hash"`
	// WebP256dh and WebAuth are a web subscription's keys (base64url).
	WebP256dh string `json:"web_p256dh,omitempty"`
	WebAuth   string `json:"web_auth,omitempty"`
	// VAPIDKeyVersion is the VAPID key a web subscription was made with;
	// 0 means the current one.
	VAPIDKeyVersion int `json:"vapid_key_version,omitempty"`
	// Environment is "production" or "sandbox" (APNs).
	Environment string `json:"environment,omitempty"`
	// Topic is the APNs topic or app bundle id.
	Topic string `json:"topic,omitempty"`
	// UserID is the bound user; empty when anonymous.
	UserID string `json:"user_id,omitempty"`
	// Interests are the device's own interests, UserInterests those it has
	// from its user (kept apart so a user switch can drop the former and
	// replace the latter). The methods here set UserInterests from the
	// user's (SetUserInterests) when the device is bound.
	Interests     []string `json:"interests,omitempty"`
	UserInterests []string `json:"user_interests,omitempty"`
	// Channels are its channel subscriptions, sorted by channel.
	Channels []ChannelSub `json:"channels,omitempty"`
	// Metadata is the client's free-form JSON object (SDK versions...).
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// SecretHash is the hex SHA-256 of the device secret; empty for a
	// device that has none (registered by the server API).
	SecretHash string `json:"secret_hash,omitempty"`
	// Challenges are the pseudo socket ids handed out and not used yet.
	Challenges []Challenge `json:"challenges,omitempty"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
	LastSeen   time.Time   `json:"last_seen,omitzero"`
	// TokenAt is when the device last registered or changed its token;
	// set by the methods here.
	TokenAt time.Time `json:"token_at,omitzero"`
}

// ChannelSub is a device's push subscription to a channel.
type ChannelSub struct {
	Channel      string    `json:"channel"`
	AuthorizedAt time.Time `json:"authorized_at"`
	// ExpiresAt is when the authorization lapses; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Challenge is a pseudo socket id a device may have signed once, until
// ExpiresAt.
type Challenge struct {
	SocketID  string    `json:"socket_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AllInterests returns the device's own and user interests, deduplicated
// and sorted.
func (d *Device) AllInterests() []string {
	all := append(slices.Clone(d.Interests), d.UserInterests...)
	slices.Sort(all)
	return slices.Compact(all)
}

// Channel returns the device's subscription to channel, if any.
func (d *Device) Channel(channel string) (ChannelSub, bool) {
	i, ok := slices.BinarySearchFunc(d.Channels, channel, func(c ChannelSub, ch string) int { return strings.Compare(c.Channel, ch) })
	if !ok {
		return ChannelSub{}, false
	}
	return d.Channels[i], true
}

// Subscribed reports whether the device has a subscription to channel
// whose authorization has not lapsed at now: what a publish to the channel
// must check, since lapsed subscriptions stay listed until renewed or
// removed.
func (d *Device) Subscribed(channel string, now time.Time) bool {
	c, ok := d.Channel(channel)
	return ok && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt))
}

// SetChannel adds or replaces a channel subscription, keeping the order.
func (d *Device) SetChannel(c ChannelSub) {
	i, ok := slices.BinarySearchFunc(d.Channels, c.Channel, func(c ChannelSub, ch string) int { return strings.Compare(c.Channel, ch) })
	if ok {
		d.Channels[i] = c
		return
	}
	d.Channels = slices.Insert(d.Channels, i, c)
}

// RemoveChannel drops a channel subscription and reports whether it was there.
func (d *Device) RemoveChannel(channel string) bool {
	n := len(d.Channels)
	d.Channels = slices.DeleteFunc(d.Channels, func(c ChannelSub) bool { return c.Channel == channel })
	return len(d.Channels) != n
}

// TokenHash is the hex SHA-256 of a provider token, the form in which a
// token may appear in logs, audit entries and API answers.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// DeviceLimits bound what one app's devices may hold; zero means no limit.
type DeviceLimits struct {
	// MaxPerUser is the most devices one user may have.
	MaxPerUser int
	// MaxInterests is the most interests one device may have (own and
	// user interests together), and one user.
	MaxInterests int
	// MaxChannels is the most channel subscriptions one device may have.
	// A device already over it (the limit was lowered) may keep or shrink
	// its set but not grow it.
	MaxChannels int
	// MaxPerApp is the most devices one app may have; a new device past it
	// is refused.
	MaxPerApp int
}

// DeviceFilter selects devices for [DB.ListDevices]; empty fields match
// everything. The most selective index is scanned (user, then channel,
// then interest) and the other fields are checked on each device.
type DeviceFilter struct {
	UserID   string
	Platform string
	Interest string
	Channel  string
}

// validKeyPart reports whether s can be part of an index key: not empty
// and without the NUL separator.
func validKeyPart(s string) bool { return s != "" && !strings.ContainsRune(s, 0) }

func join(parts ...string) []byte { return []byte(strings.Join(parts, "\x00")) }

// PutDevice registers d, or replaces the whole state of the device it
// names (by ID, else by the app's device with the same platform and token).
// The replaced device keeps its id and creation time, and its secret unless
// rotate is true and d.SecretHash is set. created reports a new device.
// Giving d.ID a token another device holds fails with ErrTokenInUse.
func (db *DB) PutDevice(d Device, lim DeviceLimits, now time.Time, rotate bool) (saved Device, created bool, err error) {
	return db.PutDeviceChecked(d, lim, now, rotate, nil)
}

// PutDeviceChecked is PutDevice with a condition on replacing a device:
// when d would replace one, replace (nil: always allowed) is called with
// it inside the write transaction, and its error aborts the put and is
// returned as it is (wrapped). replace must be quick and do no I/O.
func (db *DB) PutDeviceChecked(d Device, lim DeviceLimits, now time.Time, rotate bool, replace func(old *Device) error) (saved Device, created bool, err error) {
	if err := checkDevice(&d); err != nil {
		return Device{}, false, fmt.Errorf("storage: put device: %w", err)
	}
	err = db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		owner := string(bs.tokens.Get(join(d.App, d.Platform, d.TokenHash)))
		if d.ID == "" {
			d.ID = owner
		} else if owner != "" && owner != d.ID {
			return ErrTokenInUse
		}
		var old *Device
		if d.ID != "" {
			if old, err = bs.get(d.App, d.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if old == nil {
			if d.ID == "" {
				if d.ID, err = NewDeviceID(); err != nil {
					return err
				}
			}
			d.CreatedAt, created = now, true
		} else {
			if replace != nil {
				if err := replace(old); err != nil {
					return err
				}
			}
			d.CreatedAt = old.CreatedAt
			if d.SecretHash == "" || !rotate {
				d.SecretHash = old.SecretHash
			}
		}
		d.UpdatedAt, d.TokenAt = now, now
		if err := bs.write(old, &d, lim); err != nil {
			return err
		}
		saved = d
		return nil
	})
	if err != nil {
		return Device{}, false, fmt.Errorf("storage: put device: %w", err)
	}
	return saved, created, nil
}

// UpdateDevice reads the device, lets fn change it and writes it back with
// its indexes, in one transaction. fn runs inside the write transaction:
// it must be quick and do no I/O. An error from fn aborts the update and is
// returned as it is (wrapped). The id, app and creation time cannot change.
func (db *DB) UpdateDevice(app, id string, lim DeviceLimits, now time.Time, fn func(*Device) error) (Device, error) {
	var saved Device
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		old, err := bs.get(app, id)
		if err != nil {
			return err
		}
		d, err := bs.get(app, id) // a second copy for fn to change
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		d.ID, d.App, d.CreatedAt, d.UpdatedAt = old.ID, old.App, old.CreatedAt, now
		if err := checkDevice(d); err != nil {
			return err
		}
		if d.TokenHash != old.TokenHash || d.Platform != old.Platform {
			d.TokenAt = now
		} else {
			d.TokenAt = old.TokenAt
		}
		if owner := string(bs.tokens.Get(join(d.App, d.Platform, d.TokenHash))); owner != "" && owner != d.ID {
			return ErrTokenInUse
		}
		if err := bs.write(old, d, lim); err != nil {
			return err
		}
		saved = *d
		return nil
	})
	if err != nil {
		return Device{}, fmt.Errorf("storage: update device %s: %w", id, err)
	}
	return saved, nil
}

// Device returns one device.
func (db *DB) Device(app, id string) (Device, error) {
	var d *Device
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPushDevices)
		if b == nil {
			return ErrNotFound
		}
		var err error
		d, err = decodeDevice(b.Get(join(app, id)))
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("storage: get device %s: %w", id, err)
	}
	return *d, nil
}

// DeviceByToken returns the app's device with the platform and token hash.
func (db *DB) DeviceByToken(app, platform, tokenHash string) (Device, error) {
	var d *Device
	err := db.view(func(tx *bolt.Tx) error {
		t, b := tx.Bucket(bucketPushTokens), tx.Bucket(bucketPushDevices)
		if t == nil || b == nil {
			return ErrNotFound
		}
		id := t.Get(join(app, platform, tokenHash))
		if id == nil {
			return ErrNotFound
		}
		var err error
		d, err = decodeDevice(b.Get(join(app, string(id))))
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("storage: get device by token: %w", err)
	}
	return *d, nil
}

// DeleteDevice removes a device and its index entries and returns it.
func (db *DB) DeleteDevice(app, id string) (Device, error) {
	var gone Device
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		d, err := bs.get(app, id)
		if err != nil {
			return err
		}
		gone = *d
		return bs.write(d, nil, DeviceLimits{})
	})
	if err != nil {
		return Device{}, fmt.Errorf("storage: delete device %s: %w", id, err)
	}
	return gone, nil
}

// RemoveInvalidDevice removes the device a provider reported gone (APNs
// 410, FCM UNREGISTERED, Web Push 404/410), found by platform and token
// hash, and returns it. It is a no-op with ok false when no device has that
// token any more (the report raced a token refresh or another removal), or
// when the device registered the token after invalidSince (APNs' 410
// timestamp; zero means unknown).
func (db *DB) RemoveInvalidDevice(app, platform, tokenHash string, invalidSince time.Time) (gone Device, ok bool, err error) {
	err = db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		id := bs.tokens.Get(join(app, platform, tokenHash))
		if id == nil {
			return nil
		}
		d, err := bs.get(app, string(id))
		if err != nil {
			return err
		}
		if !invalidSince.IsZero() && d.TokenAt.After(invalidSince) {
			return nil
		}
		gone, ok = *d, true
		return bs.write(d, nil, DeviceLimits{})
	})
	if err != nil {
		return Device{}, false, fmt.Errorf("storage: remove invalid device: %w", err)
	}
	return gone, ok, nil
}

// DeleteUserDevices removes every device of a user and returns them.
func (db *DB) DeleteUserDevices(app, user string) ([]Device, error) {
	var gone []Device
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		ids := prefixIDs(bs.users, join(app, user, ""), "", 0)
		for _, id := range ids {
			d, err := bs.get(app, id)
			if err != nil {
				return err
			}
			gone = append(gone, *d)
			if err := bs.write(d, nil, DeviceLimits{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: delete devices of user: %w", err)
	}
	return gone, nil
}

// RevokeChannel removes the subscription to channel from every device of
// user and returns the ids of the devices that had one.
func (db *DB) RevokeChannel(app, channel, user string, now time.Time) ([]string, error) {
	var revoked []string
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		for _, id := range prefixIDs(bs.users, join(app, user, ""), "", 0) {
			old, err := bs.get(app, id)
			if err != nil {
				return err
			}
			d, _ := bs.get(app, id)
			if !d.RemoveChannel(channel) {
				continue
			}
			d.UpdatedAt = now
			if err := bs.write(old, d, DeviceLimits{}); err != nil {
				return err
			}
			revoked = append(revoked, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: revoke channel: %w", err)
	}
	return revoked, nil
}

// ListDevices returns up to limit devices matching f, in device id order,
// after the position cursor (from a previous page; "" starts at the
// beginning), and the cursor of the next page, "" after the last one.
// limit <= 0 means 100.
func (db *DB) ListDevices(app string, f DeviceFilter, cursor string, limit int) (page []Device, next string, err error) {
	if limit <= 0 {
		limit = 100
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", fmt.Errorf("storage: list devices: %w", err)
	}
	page = []Device{}
	err = db.view(func(tx *bolt.Tx) error {
		devs := tx.Bucket(bucketPushDevices)
		if devs == nil {
			return nil
		}
		idx, prefix := devs, join(app, "")
		switch {
		case f.UserID != "":
			idx, prefix = tx.Bucket(bucketPushUsers), join(app, f.UserID, "")
		case f.Channel != "":
			idx, prefix = tx.Bucket(bucketPushChannels), join(app, f.Channel, "")
		case f.Interest != "":
			idx, prefix = tx.Bucket(bucketPushInterests), join(app, f.Interest, "")
		}
		if idx == nil {
			return nil
		}
		c := idx.Cursor()
		k, _ := c.Seek(append(slices.Clone(prefix), after...))
		if k != nil && after != "" && string(k[len(prefix):]) == after {
			k, _ = c.Next()
		}
		last := ""
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(page) == limit {
				next = encodeCursor(last)
				return nil
			}
			id := string(k[len(prefix):])
			last = id
			d, err := decodeDevice(devs.Get(join(app, id)))
			if err != nil {
				return err
			}
			if f.matches(d) {
				page = append(page, *d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("storage: list devices: %w", err)
	}
	return page, next, nil
}

func (f DeviceFilter) matches(d *Device) bool {
	if f.UserID != "" && d.UserID != f.UserID || f.Platform != "" && d.Platform != f.Platform {
		return false
	}
	if f.Channel != "" {
		if _, ok := d.Channel(f.Channel); !ok {
			return false
		}
	}
	return f.Interest == "" || slices.Contains(d.Interests, f.Interest) || slices.Contains(d.UserInterests, f.Interest)
}

// UserInterests returns a user's interests, sorted.
func (db *DB) UserInterests(app, user string) ([]string, error) {
	out := []string{}
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketPushUserInterests); b != nil {
			out = append(out, prefixIDs(b, join(app, user, ""), "", 0)...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: user interests: %w", err)
	}
	return out, nil
}

// SetUserInterests replaces a user's interests with fn's answer to the
// current ones, and gives them to each of the user's devices (their
// UserInterests), in one transaction. It returns the new set, sorted.
func (db *DB) SetUserInterests(app, user string, lim DeviceLimits, now time.Time, fn func(cur []string) []string) ([]string, error) {
	if !validKeyPart(app) || !validKeyPart(user) {
		return nil, fmt.Errorf("storage: set user interests: %w", ErrInvalid)
	}
	var set []string
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := pushBuckets(tx)
		if err != nil {
			return err
		}
		prefix := join(app, user, "")
		cur := prefixIDs(bs.userInterests, prefix, "", 0)
		set = slices.Clone(fn(slices.Clone(cur)))
		slices.Sort(set)
		set = slices.Compact(set)
		if lim.MaxInterests > 0 && len(set) > lim.MaxInterests {
			return ErrInterestLimit
		}
		for _, in := range cur {
			if err := bs.userInterests.Delete(join(app, user, in)); err != nil {
				return err
			}
		}
		for _, in := range set {
			if !validKeyPart(in) {
				return ErrInvalid
			}
			if err := bs.userInterests.Put(join(app, user, in), nil); err != nil {
				return err
			}
		}
		for _, id := range prefixIDs(bs.users, prefix, "", 0) {
			old, err := bs.get(app, id)
			if err != nil {
				return err
			}
			d, _ := bs.get(app, id)
			d.UserInterests, d.UpdatedAt = slices.Clone(set), now
			if err := bs.write(old, d, lim); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: set user interests: %w", err)
	}
	return set, nil
}

// NewDeviceID returns a random device id: "d" and 32 hex digits.
func NewDeviceID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "d" + hex.EncodeToString(b[:]), nil
}

// checkDevice fills TokenHash and checks what the keys are made of.
func checkDevice(d *Device) error {
	if !validKeyPart(d.App) || d.ID != "" && !validKeyPart(d.ID) || d.Token == "" ||
		d.UserID != "" && !validKeyPart(d.UserID) {
		return ErrInvalid
	}
	switch d.Platform {
	case PlatformAPNs, PlatformFCM, PlatformWeb:
	default:
		return ErrInvalid
	}
	for _, s := range [][]string{d.Interests, d.UserInterests} {
		for _, in := range s {
			if !validKeyPart(in) {
				return ErrInvalid
			}
		}
	}
	for _, c := range d.Channels {
		if !validKeyPart(c.Channel) {
			return ErrInvalid
		}
	}
	d.TokenHash = TokenHash(d.Token)
	return nil
}

// deviceBuckets are the push device buckets of one write transaction.
type deviceBuckets struct {
	devices, tokens, users, interests, channels, userInterests, counts *bolt.Bucket
}

func pushBuckets(tx *bolt.Tx) (deviceBuckets, error) {
	var bs deviceBuckets
	for _, p := range []struct {
		b    **bolt.Bucket
		name []byte
	}{
		{&bs.devices, bucketPushDevices}, {&bs.tokens, bucketPushTokens}, {&bs.users, bucketPushUsers},
		{&bs.interests, bucketPushInterests}, {&bs.channels, bucketPushChannels},
		{&bs.userInterests, bucketPushUserInterests}, {&bs.counts, bucketPushCounts},
	} {
		// inBucket's create-on-first-use, for several buckets at once.
		err := inBucket(p.name, func(b *bolt.Bucket) error { *p.b = b; return nil })(tx)
		if err != nil {
			return bs, err
		}
	}
	return bs, nil
}

func (bs deviceBuckets) get(app, id string) (*Device, error) {
	return decodeDevice(bs.devices.Get(join(app, id)))
}

// decodeDevice decodes a stored device; JSON decoding copies, so the
// result outlives the transaction.
func decodeDevice(v []byte) (*Device, error) {
	if v == nil {
		return nil, ErrNotFound
	}
	var d Device
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("decode device: %w", err)
	}
	return &d, nil
}

// write replaces old (nil: none) with d (nil: delete), updating only the
// index entries that differ, after checking lim. A device bound to a user
// it did not have gets the user's interests as they are in this
// transaction (an unbound one none), so a concurrent SetUserInterests is
// never lost between reading them and binding.
func (bs deviceBuckets) write(old, d *Device, lim DeviceLimits) error {
	if d != nil {
		switch {
		case d.UserID == "":
			d.UserInterests = nil
		case old == nil || old.UserID != d.UserID:
			d.UserInterests = prefixIDs(bs.userInterests, join(d.App, d.UserID, ""), "", 0)
		}
		if lim.MaxInterests > 0 && len(d.AllInterests()) > lim.MaxInterests {
			return ErrInterestLimit
		}
		if lim.MaxChannels > 0 && len(d.Channels) > lim.MaxChannels && (old == nil || len(d.Channels) > len(old.Channels)) {
			return ErrChannelLimit
		}
		if old == nil {
			n := bs.count(d.App)
			if lim.MaxPerApp > 0 && n >= lim.MaxPerApp {
				return ErrAppDeviceLimit
			}
			if err := bs.setCount(d.App, n+1); err != nil {
				return err
			}
		}
		if lim.MaxPerUser > 0 && d.UserID != "" && (old == nil || old.UserID != d.UserID) &&
			len(prefixIDs(bs.users, join(d.App, d.UserID, ""), "", lim.MaxPerUser)) >= lim.MaxPerUser {
			return ErrDeviceLimit
		}
	}
	oldKeys, newKeys := indexKeys(old), indexKeys(d)
	for i, b := range []*bolt.Bucket{bs.tokens, bs.users, bs.interests, bs.channels} {
		for k := range oldKeys[i] {
			if _, keep := newKeys[i][k]; !keep {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		for k, v := range newKeys[i] {
			if _, had := oldKeys[i][k]; !had || i == 0 {
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
	}
	if d == nil {
		if err := bs.setCount(old.App, max(bs.count(old.App)-1, 0)); err != nil {
			return err
		}
		return bs.devices.Delete(join(old.App, old.ID))
	}
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return bs.devices.Put(join(d.App, d.ID), v)
}

// count is the number of app's devices, counted by a scan the first time.
func (bs deviceBuckets) count(app string) int {
	if v := bs.counts.Get([]byte(app)); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	n := 0
	prefix := join(app, "")
	c := bs.devices.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

func (bs deviceBuckets) setCount(app string, n int) error {
	return bs.counts.Put([]byte(app), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// indexKeys are d's entries in the token, user, interest and channel
// indexes.
func indexKeys(d *Device) [4]map[string][]byte {
	var ks [4]map[string][]byte
	for i := range ks {
		ks[i] = map[string][]byte{}
	}
	if d == nil {
		return ks
	}
	ks[0][string(join(d.App, d.Platform, d.TokenHash))] = []byte(d.ID)
	if d.UserID != "" {
		ks[1][string(join(d.App, d.UserID, d.ID))] = nil
	}
	for _, in := range d.AllInterests() {
		ks[2][string(join(d.App, in, d.ID))] = nil
	}
	for _, c := range d.Channels {
		ks[3][string(join(d.App, c.Channel, d.ID))] = nil
	}
	return ks
}

// prefixIDs returns the key suffixes after prefix, after the suffix
// "after", at most max of them (0: all).
func prefixIDs(b *bolt.Bucket, prefix []byte, after string, max int) []string {
	var out []string
	c := b.Cursor()
	for k, _ := c.Seek(append(slices.Clone(prefix), after...)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if max > 0 && len(out) == max {
			break
		}
		if s := string(k[len(prefix):]); s != after {
			out = append(out, s)
		}
	}
	return out
}

// A cursor is the base64url of the last device id of a page: opaque to
// clients, and still a valid position if that device is gone.
func encodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	return string(b), nil
}
