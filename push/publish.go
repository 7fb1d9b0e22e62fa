package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// Publish limits (spec §4.4; Beams' figures where Beams has one).
const (
	// MaxPublishBody is the body size the caller should allow a publish
	// (readBody answers 413 beyond it): 1000 user ids of 128 bytes fit.
	MaxPublishBody = 256 << 10
	// MaxPublishInterests and MaxPublishChannels bound the names of one
	// publish; MaxPublishUsers and MaxPublishDevices its ids.
	MaxPublishInterests = 100
	MaxPublishChannels  = 100
	MaxPublishUsers     = 1000
	MaxPublishDevices   = 1000
	// MaxPublishTTL is the longest ttl: four weeks, what FCM and Beams
	// allow at most (and webpush.DefaultTTL).
	MaxPublishTTL = 28 * 24 * time.Hour
	// MaxScheduleAhead is how far in the future send_at may be.
	MaxScheduleAhead = 30 * 24 * time.Hour
	// MaxCollapseKey is the longest collapse_key: APNs' apns-collapse-id.
	MaxCollapseKey = 64
	// MaxIdempotencyKey is the longest idempotency_key.
	MaxIdempotencyKey = 255
	// maxDeviceIDLength bounds a device id named in a publish.
	maxDeviceIDLength = 128
)

// RecipientKind says who a publish goes to.
type RecipientKind string

// Recipient kinds: the spec §4.4 routes /publishes/{kind}.
const (
	ToInterests RecipientKind = "interests"
	ToUsers     RecipientKind = "users"
	ToDevices   RecipientKind = "devices"
	ToChannels  RecipientKind = "channels"
)

// Priority is a publish's delivery priority.
type Priority string

// Priorities. The zero Priority leaves each provider's default.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
)

// Notification is the generic notification of a publish, mapped to each
// provider by the Render methods.
type Notification struct {
	Title    string `json:"title,omitempty"`
	Body     string `json:"body,omitempty"`
	Icon     string `json:"icon,omitempty"`
	Image    string `json:"image,omitempty"`
	DeepLink string `json:"deep_link,omitempty"`
	Sound    string `json:"sound,omitempty"`
	// Badge is the app badge count; nil leaves it unchanged.
	Badge *int `json:"badge,omitempty"`
	// Data is custom data: any JSON values under non-empty keys.
	Data map[string]json.RawMessage `json:"data,omitempty"`
}

// Publish is a validated publish body (ParsePublish).
type Publish struct {
	// Kind is the recipient kind and Names the interests, user ids, device
	// ids or channels: 1..the kind's maximum, valid, without duplicates,
	// in the order given.
	Kind  RecipientKind
	Names []string
	// Notification is the generic notification; nil when the body has
	// only provider blocks.
	Notification *Notification
	// APNs, FCM and Web are the provider blocks, JSON objects as sent; nil
	// when absent. A block replaces the generic mapping for its provider.
	APNs, FCM, Web json.RawMessage
	// TTL is the ttl, valid when HasTTL: 0..MaxPublishTTL. Without one the
	// providers keep a message MaxPublishTTL.
	TTL    time.Duration
	HasTTL bool
	// Priority is high, normal or empty (each provider's default).
	Priority Priority
	// CollapseKey is 0..MaxCollapseKey bytes; empty means none.
	CollapseKey string
	// SendAt is when to send: zero, or a past send_at, means now; at most
	// MaxScheduleAhead away. ExpireAt is when to stop trying (zero: when
	// the lifetime ends), after SendAt and now and at most MaxPublishTTL
	// after the later of them; it also bounds the providers' lifetime.
	SendAt, ExpireAt time.Time
	// IdempotencyKey is the body's idempotency_key, "" when absent.
	IdempotencyKey string
	// DryRun: render and count, send nothing.
	DryRun bool
}

// publishBody is the JSON of every publish route: the unified route reads
// recipient, the per-kind ones (Beams-compatible) the top-level list.
// Unknown fields are ignored, so Beams bodies with webhookUrl are accepted.
type publishBody struct {
	Recipient *struct {
		Interests []string        `json:"interests"`
		Users     []string        `json:"users"`
		Devices   []string        `json:"devices"`
		Channels  []string        `json:"channels"`
		Filter    json.RawMessage `json:"filter"`
	} `json:"recipient"`
	Interests []string `json:"interests"`
	Users     []string `json:"users"`
	DeviceIDs []string `json:"device_ids"`
	Channels  []string `json:"channels"`

	Notification   json.RawMessage `json:"notification"`
	APNs           json.RawMessage `json:"apns"`
	FCM            json.RawMessage `json:"fcm"`
	Web            json.RawMessage `json:"web"`
	TTL            *int64          `json:"ttl"`
	Priority       *string         `json:"priority"`
	CollapseKey    *string         `json:"collapse_key"`
	SendAt         *int64          `json:"send_at"`
	ExpireAt       *int64          `json:"expire_at"`
	IdempotencyKey *string         `json:"idempotency_key"`
	DryRun         bool            `json:"dry_run"`
}

// ParsePublish validates the body of a publish route at time now. kind is
// "" for the unified POST /apps/{id}/push/publishes, whose body names its
// recipients in recipient{interests|users|devices|channels}, or the kind
// of a per-kind route (/publishes/interests, …), whose body has the
// Beams-compatible top-level list (interests, users, device_ids or
// channels). The caller bounds the body (MaxPublishBody).
//
// Refusals are 400 (404 for an unknown kind), and 413 when a rendered
// payload is larger than its provider accepts: every provider's rendering
// is checked here, so that a publish that could never be delivered is
// refused when it is made.
func ParsePublish(body []byte, kind string, now time.Time) (Publish, *apiError) {
	var b publishBody
	if err := json.Unmarshal(body, &b); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Publish{}, errorf(400, "invalid_publish", "%s must be %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return Publish{}, errorf(400, "invalid_json", "the body is not a JSON object")
	}
	var p Publish
	if e := b.recipients(&p, kind); e != nil {
		return Publish{}, e
	}
	if e := b.content(&p); e != nil {
		return Publish{}, e
	}
	if e := b.options(&p, now); e != nil {
		return Publish{}, e
	}
	if e := p.checkRender(now); e != nil {
		return Publish{}, e
	}
	return p, nil
}

// jsonKind names a Go kind the way a JSON user reads it.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case k == "string":
		return "a string"
	case k == "slice":
		return "an array"
	case k == "bool":
		return "true or false"
	case k == "map", k == "struct", k == "ptr":
		return "an object"
	}
	return "of another type"
}

func (b *publishBody) recipients(p *Publish, kind string) *apiError {
	type list struct {
		kind  RecipientKind
		field string
		names []string
	}
	var lists []list
	switch kind {
	case "":
		if b.Interests != nil || b.Users != nil || b.DeviceIDs != nil || b.Channels != nil {
			return errorf(400, "invalid_recipient", "name the recipients in recipient{interests|users|devices|channels}, or use /publishes/{interests|users|devices|channels}")
		}
		r := b.Recipient
		if r == nil {
			return errorf(400, "invalid_recipient", "recipient is required: one of interests, users, devices or channels")
		}
		if len(r.Filter) > 0 && string(r.Filter) != "null" {
			return errorf(400, "invalid_recipient", "recipient.filter is not supported")
		}
		lists = []list{{ToInterests, "recipient.interests", r.Interests}, {ToUsers, "recipient.users", r.Users},
			{ToDevices, "recipient.devices", r.Devices}, {ToChannels, "recipient.channels", r.Channels}}
	case string(ToInterests), string(ToUsers), string(ToDevices), string(ToChannels):
		if b.Recipient != nil {
			return errorf(400, "invalid_recipient", "recipient belongs to /publishes; /publishes/%s takes a top-level list", kind)
		}
		lists = []list{{ToInterests, "interests", b.Interests}, {ToUsers, "users", b.Users},
			{ToDevices, "device_ids", b.DeviceIDs}, {ToChannels, "channels", b.Channels}}
		for _, l := range lists {
			if l.kind != RecipientKind(kind) && l.names != nil {
				return errorf(400, "invalid_recipient", "/publishes/%s takes no %s", kind, l.field)
			}
		}
	default:
		return errorf(404, "not_found", "no publish route for %q", kind)
	}
	var chosen *list
	for i := range lists {
		if lists[i].names == nil {
			continue
		}
		if chosen != nil {
			return errorf(400, "invalid_recipient", "name exactly one kind of recipient: %s and %s both given", chosen.field, lists[i].field)
		}
		chosen = &lists[i]
	}
	if chosen == nil {
		if kind == "" {
			return errorf(400, "invalid_recipient", "recipient names none of interests, users, devices or channels")
		}
		field := map[string]string{"interests": "interests", "users": "users", "devices": "device_ids", "channels": "channels"}[kind]
		return errorf(400, "invalid_recipient", "%s is required", field)
	}
	limit := map[RecipientKind]int{ToInterests: MaxPublishInterests, ToUsers: MaxPublishUsers,
		ToDevices: MaxPublishDevices, ToChannels: MaxPublishChannels}[chosen.kind]
	if n := len(chosen.names); n == 0 || n > limit {
		return errorf(400, "invalid_recipient", "%s must list 1-%d entries, not %d", chosen.field, limit, n)
	}
	seen := make(map[string]struct{}, len(chosen.names))
	names := make([]string, 0, len(chosen.names))
	for _, n := range chosen.names {
		var e *apiError
		switch chosen.kind {
		case ToInterests:
			e = checkInterest(n)
		case ToUsers:
			e = checkUserID(n)
		case ToDevices:
			e = checkDeviceRef(n)
		case ToChannels:
			e = checkChannel(n)
		}
		if e != nil {
			e.descr = chosen.field + ": " + e.descr
			return e
		}
		if _, dup := seen[n]; !dup {
			seen[n] = struct{}{}
			names = append(names, n)
		}
	}
	p.Kind, p.Names = chosen.kind, names
	return nil
}

// checkDeviceRef refuses what cannot be a device id.
func checkDeviceRef(id string) *apiError {
	ok := id != "" && len(id) <= maxDeviceIDLength && utf8.ValidString(id)
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			ok = false
		}
	}
	if !ok {
		return errorf(400, "invalid_device_id", "device ids are 1-%d bytes of printable UTF-8", maxDeviceIDLength)
	}
	return nil
}

func (b *publishBody) content(p *Publish) *apiError {
	if present(b.Notification) {
		var n Notification
		var raw map[string]json.RawMessage
		if json.Unmarshal(b.Notification, &raw) != nil || raw == nil {
			return errorf(400, "invalid_notification", "notification must be an object")
		}
		if err := json.Unmarshal(b.Notification, &n); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return errorf(400, "invalid_notification", "notification.%s must be %s", te.Field, jsonKind(te.Type.Kind().String()))
			}
			return errorf(400, "invalid_notification", "notification is not the object expected")
		}
		if d, ok := raw["data"]; ok && present(d) && n.Data == nil {
			return errorf(400, "invalid_notification", "notification.data must be an object")
		}
		if n.Badge != nil && *n.Badge < 0 {
			return errorf(400, "invalid_notification", "notification.badge must be 0 or more")
		}
		if n.Title == "" && n.Body == "" && len(n.Data) == 0 {
			return errorf(400, "invalid_notification", "notification needs a title, a body or data")
		}
		for k := range n.Data {
			if e := checkDataKey(k, "notification.data"); e != nil {
				return e
			}
		}
		p.Notification = &n
	}
	var e *apiError
	if p.APNs, e = checkAPNsBlock(b.APNs); e != nil {
		return e
	}
	if p.FCM, e = checkFCMBlock(b.FCM); e != nil {
		return e
	}
	if p.Web, e = checkWebBlock(b.Web); e != nil {
		return e
	}
	if p.Notification == nil && p.APNs == nil && p.FCM == nil && p.Web == nil {
		return errorf(400, "invalid_publish", "a publish needs a notification or at least one of the apns, fcm and web blocks")
	}
	return nil
}

// checkDataKey refuses data keys that a provider reserves: APNs' aps, and
// FCM's from, notification, message_type and google.*/gcm.* keys.
func checkDataKey(k, where string) *apiError {
	switch {
	case k == "":
		return errorf(400, "invalid_notification", "%s keys must not be empty", where)
	case k == "aps", k == "from", k == "notification", k == "message_type",
		strings.HasPrefix(k, "google."), strings.HasPrefix(k, "gcm."):
		return errorf(400, "invalid_notification", "%s key %q is reserved by a provider", where, k)
	}
	return nil
}

// present reports whether a raw field was given and is not null.
func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// object decodes raw as a JSON object; ok is false for anything else.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// compact returns raw without insignificant white space, so that rendered
// payloads don't carry the client's indentation.
func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

func checkAPNsBlock(raw json.RawMessage) (json.RawMessage, *apiError) {
	if !present(raw) {
		return nil, nil
	}
	m, ok := object(raw)
	if !ok {
		return nil, errorf(400, "invalid_apns", "apns must be a JSON object (an APNs payload)")
	}
	if aps, has := m["aps"]; has {
		if _, ok := object(aps); !ok {
			return nil, errorf(400, "invalid_apns", "apns.aps must be an object")
		}
	}
	return compact(raw), nil
}

func checkFCMBlock(raw json.RawMessage) (json.RawMessage, *apiError) {
	if !present(raw) {
		return nil, nil
	}
	m, ok := object(raw)
	if !ok {
		return nil, errorf(400, "invalid_fcm", "fcm must be a JSON object (an FCM v1 message without its target)")
	}
	for _, k := range [...]string{"token", "topic", "condition"} {
		if _, has := m[k]; has {
			return nil, errorf(400, "invalid_fcm", "fcm must not name a target (%s): the recipients decide", k)
		}
	}
	for _, k := range [...]string{"notification", "android", "apns", "webpush", "fcm_options"} {
		if v, has := m[k]; has && present(v) {
			if _, ok := object(v); !ok {
				return nil, errorf(400, "invalid_fcm", "fcm.%s must be an object", k)
			}
		}
	}
	if d, has := m["data"]; has && present(d) {
		var data map[string]string
		if json.Unmarshal(d, &data) != nil || data == nil {
			return nil, errorf(400, "invalid_fcm", "fcm.data must be an object of string values (FCM carries strings only)")
		}
		for k := range data {
			if e := checkDataKey(k, "fcm.data"); e != nil {
				e.code = "invalid_fcm"
				return nil, e
			}
		}
	}
	return compact(raw), nil
}

func checkWebBlock(raw json.RawMessage) (json.RawMessage, *apiError) {
	if !present(raw) {
		return nil, nil
	}
	m, ok := object(raw)
	if !ok {
		return nil, errorf(400, "invalid_web", "web must be a JSON object")
	}
	for _, k := range [...]string{"notification", "data"} {
		if v, has := m[k]; has && present(v) {
			if _, ok := object(v); !ok {
				return nil, errorf(400, "invalid_web", "web.%s must be an object", k)
			}
		}
	}
	if v, has := m["time_to_live"]; has && present(v) {
		var ttl int64
		if json.Unmarshal(v, &ttl) != nil || ttl < 0 || ttl > int64(MaxPublishTTL/time.Second) {
			return nil, errorf(400, "invalid_web", "web.time_to_live must be 0-%d seconds", int64(MaxPublishTTL/time.Second))
		}
	}
	return compact(raw), nil
}

func (b *publishBody) options(p *Publish, now time.Time) *apiError {
	if b.TTL != nil {
		if *b.TTL < 0 || *b.TTL > int64(MaxPublishTTL/time.Second) {
			return errorf(400, "invalid_ttl", "ttl must be 0-%d seconds", int64(MaxPublishTTL/time.Second))
		}
		p.TTL, p.HasTTL = time.Duration(*b.TTL)*time.Second, true
	}
	if b.Priority != nil {
		switch Priority(*b.Priority) {
		case PriorityHigh, PriorityNormal:
			p.Priority = Priority(*b.Priority)
		default:
			return errorf(400, "invalid_priority", "priority must be high or normal")
		}
	}
	if b.CollapseKey != nil {
		k := *b.CollapseKey
		if k == "" || len(k) > MaxCollapseKey || !utf8.ValidString(k) {
			return errorf(400, "invalid_collapse_key", "collapse_key must be 1-%d bytes of UTF-8", MaxCollapseKey)
		}
		p.CollapseKey = k
	}
	if b.IdempotencyKey != nil {
		k := *b.IdempotencyKey
		if k == "" || len(k) > MaxIdempotencyKey || !utf8.ValidString(k) {
			return errorf(400, "invalid_idempotency_key", "idempotency_key must be 1-%d bytes of UTF-8", MaxIdempotencyKey)
		}
		p.IdempotencyKey = k
	}
	start := now
	if b.SendAt != nil {
		if *b.SendAt <= 0 || *b.SendAt > now.Add(MaxScheduleAhead).Unix() {
			return errorf(400, "invalid_send_at", "send_at must be unix seconds at most %d days ahead", int(MaxScheduleAhead/(24*time.Hour)))
		}
		p.SendAt = time.Unix(*b.SendAt, 0).UTC()
		if p.SendAt.After(now) {
			start = p.SendAt
		}
	}
	if b.ExpireAt != nil {
		if *b.ExpireAt <= start.Unix() || *b.ExpireAt > start.Add(MaxPublishTTL).Unix() {
			return errorf(400, "invalid_expire_at", "expire_at must be unix seconds after send_at and now, at most %d days later",
				int(MaxPublishTTL/(24*time.Hour)))
		}
		p.ExpireAt = time.Unix(*b.ExpireAt, 0).UTC()
	}
	p.DryRun = b.DryRun
	return nil
}
