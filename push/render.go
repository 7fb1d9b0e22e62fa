package push

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
)

// Provider payload limits, in bytes (spec §2.1–2.3). They repeat
// apns.MaxPayload, fcm.MaxMessage and webpush.DefaultMaxPayload, which
// push cannot import (those packages import push); a test keeps them
// equal.
const (
	MaxAPNsPayload = 4096
	MaxFCMMessage  = 4096
	MaxWebPayload  = 3070 - 103
	// maxWebTopic is the longest Web Push Topic (RFC 8030 §5.4).
	maxWebTopic = 32
)

// The rendering of a publish for each provider. A provider block of the
// publish (apns, fcm, web) replaces the generic notification's mapping for
// its provider wholesale, as Beams' platform blocks and Sockudo's
// providerOverrides do: nothing of the notification is merged into it.
// A publish with neither a notification nor a provider's block skips that
// provider's devices: its Render method returns an empty rendering (nil
// payload), as Beams sends only to the platforms that have a block.
// The delivery options (ttl, expire_at, priority, collapse_key) apply to
// both, as headers (APNs, Web Push) or, for FCM, as android fields the
// block does not set itself.
//
// Every Render method takes the time the message is sent: the lifetime
// left is counted from it. The results are plain bytes and values, since
// push cannot import its provider packages; the sender copies them into
// apns.Notification, fcm.Message.Body and webpush.Options.

// APNsRendering is a publish rendered for APNs: the payload and the
// values of apns.Notification's header fields.
type APNsRendering struct {
	// Payload is the JSON body, at most MaxAPNsPayload bytes.
	Payload []byte
	// PushType is "background" when the aps dictionary only has
	// content-available, else "alert".
	PushType string
	// Priority is 10 (high), 5 (normal, and always for background) or 0:
	// no header, APNs' default 10.
	Priority int
	// Expiration is the apns-expiration; the zero time means "0": try
	// once, don't store (ttl 0).
	Expiration time.Time
	// CollapseID is the apns-collapse-id: the collapse_key.
	CollapseID string
}

// WebRendering is a publish rendered for Web Push: the payload that the
// service worker reads and webpush.Options' fields.
type WebRendering struct {
	// Payload is the plaintext, at most MaxWebPayload bytes.
	Payload []byte
	// TTL follows webpush.Options: zero means the default (four weeks,
	// also ours when the publish has no ttl), a negative TTL sends
	// "TTL: 0".
	TTL time.Duration
	// Urgency is "high", "normal" or "" (none).
	Urgency string
	// Topic is the collapse_key when it is at most 32 characters of the
	// base64url alphabet, else the first 32 characters of the base64url
	// SHA-256 of it: stable, so the same key always replaces.
	Topic string
}

// lifetime returns how long a provider should keep the message sent at
// now: the ttl (MaxPublishTTL without one) cut to what is left before
// expire_at. bounded reports whether the publish set either.
func (p Publish) lifetime(now time.Time) (d time.Duration, bounded bool, e *apiError) {
	d, bounded = MaxPublishTTL, p.HasTTL
	if p.HasTTL {
		d = p.TTL
	}
	if !p.ExpireAt.IsZero() {
		left := p.ExpireAt.Sub(now).Truncate(time.Second)
		if left <= 0 {
			return 0, true, errorf(400, "expired", "the publish expired at %d", p.ExpireAt.Unix())
		}
		d, bounded = min(d, left), true
	}
	return d, bounded, nil
}

func tooLarge(provider string, n, limit int) *apiError {
	return errorf(413, "payload_too_large", "the %s payload is %d bytes, more than the %d %s accepts", provider, n, limit, provider)
}

// RenderAPNs renders p for APNs sent at now. The generic mapping is
// {"aps":{"alert":{"title","body"},"sound","badge","mutable-content":1
// (with an image)}, "deep_link", "image", <data keys>}; data alone makes
// a background push ({"aps":{"content-available":1}}).
func (p Publish) RenderAPNs(now time.Time) (APNsRendering, *apiError) {
	var r APNsRendering
	payload := p.APNs
	if payload == nil && p.Notification == nil {
		return r, nil
	}
	if payload == nil {
		b, err := json.Marshal(p.apnsPayload())
		if err != nil {
			return r, errorf(500, "internal_error", "rendering the apns payload failed")
		}
		payload = b
	}
	if len(payload) > MaxAPNsPayload {
		return r, tooLarge("apns", len(payload), MaxAPNsPayload)
	}
	r.Payload = payload
	r.PushType = "alert"
	if isBackground(payload) {
		r.PushType = "background"
	}
	switch {
	case r.PushType == "background", p.Priority == PriorityNormal:
		r.Priority = 5
	case p.Priority == PriorityHigh:
		r.Priority = 10
	}
	d, _, e := p.lifetime(now)
	if e != nil {
		return APNsRendering{}, e
	}
	if d > 0 {
		r.Expiration = now.Add(d).Truncate(time.Second)
	}
	r.CollapseID = p.CollapseKey
	return r, nil
}

func (p Publish) apnsPayload() map[string]any {
	n := p.Notification
	out := make(map[string]any, len(n.Data)+3)
	for k, v := range n.Data {
		out[k] = v
	}
	aps := map[string]any{}
	alert := map[string]string{}
	if n.Title != "" {
		alert["title"] = n.Title
	}
	if n.Body != "" {
		alert["body"] = n.Body
	}
	if len(alert) > 0 {
		aps["alert"] = alert
	}
	if n.Sound != "" {
		aps["sound"] = n.Sound
	}
	if n.Badge != nil {
		aps["badge"] = *n.Badge
	}
	if len(aps) == 0 {
		aps["content-available"] = 1
	} else if n.Image != "" {
		aps["mutable-content"] = 1
	}
	out["aps"] = aps
	if n.DeepLink != "" {
		out["deep_link"] = n.DeepLink
	}
	if n.Image != "" {
		out["image"] = n.Image
	}
	return out
}

// isBackground reports whether an APNs payload's aps has content-available
// and no alert, sound or badge.
func isBackground(payload []byte) bool {
	var v struct {
		APS map[string]json.RawMessage `json:"aps"`
	}
	if json.Unmarshal(payload, &v) != nil || v.APS == nil {
		return false
	}
	for _, k := range [...]string{"alert", "sound", "badge"} {
		if _, ok := v.APS[k]; ok {
			return false
		}
	}
	return string(v.APS["content-available"]) == "1"
}

// RenderFCM renders p as an FCM v1 message body without its target
// (fcm.Message.Body), sent at now. The generic mapping is
// {"notification":{"title","body","image"}, "data":{<data>, "deep_link"},
// "android":{"notification":{"icon","sound","notification_count"}},
// "apns":{"payload":{"aps":{"sound","badge"}}}}. FCM data values are
// strings: a non-string data value is sent as its JSON text.
//
// An fcm block is taken as given, except that a Beams-style (legacy FCM)
// notification's Android-only keys (icon, sound, tag, color,
// click_action, …) move into android.notification, which v1 requires.
// Then priority, ttl and collapse_key become android.priority (HIGH or
// NORMAL), android.ttl ("Ns") and android.collapse_key, and apns-priority
// and apns-collapse-id in apns.headers, each unless already set.
func (p Publish) RenderFCM(now time.Time) (json.RawMessage, *apiError) {
	var m map[string]any
	if p.FCM == nil && p.Notification == nil {
		return nil, nil
	}
	if p.FCM != nil {
		m = fcmOverride(p.FCM)
	} else {
		m = p.fcmGeneric()
	}
	d, bounded, e := p.lifetime(now)
	if e != nil {
		return nil, e
	}
	android := sub(m, "android")
	if p.Priority != "" {
		setDefault(android, "priority", map[Priority]string{PriorityHigh: "HIGH", PriorityNormal: "NORMAL"}[p.Priority])
	}
	if bounded {
		setDefault(android, "ttl", strconv.FormatInt(int64(d/time.Second), 10)+"s")
	}
	if p.CollapseKey != "" {
		setDefault(android, "collapse_key", p.CollapseKey)
	}
	if len(android) == 0 {
		delete(m, "android")
	}
	if p.Priority != "" || p.CollapseKey != "" {
		apns := sub(m, "apns")
		headers := sub(apns, "headers")
		if p.Priority == PriorityHigh {
			setDefault(headers, "apns-priority", "10")
		} else if p.Priority == PriorityNormal {
			setDefault(headers, "apns-priority", "5")
		}
		if p.CollapseKey != "" {
			setDefault(headers, "apns-collapse-id", p.CollapseKey)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, errorf(500, "internal_error", "rendering the fcm message failed")
	}
	if len(b) > MaxFCMMessage {
		return nil, tooLarge("fcm", len(b), MaxFCMMessage)
	}
	return b, nil
}

// sub returns m[k] as an object, creating it (or replacing a non-object).
func sub(m map[string]any, k string) map[string]any {
	if v, ok := m[k].(map[string]any); ok {
		return v
	}
	v := map[string]any{}
	m[k] = v
	return v
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// fcmOverride decodes a checked fcm block and moves a legacy
// notification's Android-only keys into android.notification.
func fcmOverride(raw json.RawMessage) map[string]any {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&m) != nil || m == nil {
		m = map[string]any{}
	}
	n, ok := m["notification"].(map[string]any)
	if !ok {
		return m
	}
	moved := map[string]any{}
	for k, v := range n {
		switch k {
		case "title", "body", "image":
			continue
		case "android_channel_id":
			moved["channel_id"] = v
		default:
			moved[k] = v
		}
		delete(n, k)
	}
	if len(moved) > 0 {
		an := sub(sub(m, "android"), "notification")
		for k, v := range moved {
			setDefault(an, k, v)
		}
	}
	if len(n) == 0 {
		delete(m, "notification")
	}
	return m
}

func (p Publish) fcmGeneric() map[string]any {
	n := p.Notification
	m := map[string]any{}
	note := map[string]any{}
	for k, v := range map[string]string{"title": n.Title, "body": n.Body, "image": n.Image} {
		if v != "" {
			note[k] = v
		}
	}
	if len(note) > 0 {
		m["notification"] = note
	}
	data := make(map[string]string, len(n.Data)+1)
	for k, v := range n.Data {
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(compact(v))
		}
		data[k] = s
	}
	if n.DeepLink != "" {
		if _, ok := data["deep_link"]; !ok {
			data["deep_link"] = n.DeepLink
		}
	}
	if len(data) > 0 {
		m["data"] = data
	}
	an := map[string]any{}
	if n.Icon != "" {
		an["icon"] = n.Icon
	}
	if n.Sound != "" {
		an["sound"] = n.Sound
	}
	if n.Badge != nil {
		an["notification_count"] = *n.Badge
	}
	if len(an) > 0 {
		sub(m, "android")["notification"] = an
	}
	aps := map[string]any{}
	if n.Sound != "" {
		aps["sound"] = n.Sound
	}
	if n.Badge != nil {
		aps["badge"] = *n.Badge
	}
	if len(aps) > 0 {
		sub(sub(m, "apns"), "payload")["aps"] = aps
	}
	return m
}

// RenderWeb renders p for Web Push sent at now. The generic mapping is
// Beams' web shape, which the service worker reads:
// {"notification":{"title","body","icon","image","deep_link"},"data":{…}}.
// A web block is the payload as given, except that Beams' time_to_live
// is taken out of it and used as the TTL instead of ttl.
func (p Publish) RenderWeb(now time.Time) (WebRendering, *apiError) {
	var r WebRendering
	q := p
	payload := p.Web
	if payload == nil && p.Notification == nil {
		return r, nil
	}
	if payload == nil {
		n := p.Notification
		var v struct {
			Notification *webNotification           `json:"notification,omitempty"`
			Data         map[string]json.RawMessage `json:"data,omitempty"`
		}
		wn := webNotification{n.Title, n.Body, n.Icon, n.Image, n.DeepLink}
		if wn != (webNotification{}) {
			v.Notification = &wn
		}
		v.Data = n.Data
		b, err := json.Marshal(v)
		if err != nil {
			return r, errorf(500, "internal_error", "rendering the web payload failed")
		}
		payload = b
	} else if m, _ := object(p.Web); m != nil {
		if t, ok := m["time_to_live"]; ok {
			var secs int64
			if present(t) && json.Unmarshal(t, &secs) == nil {
				q.TTL, q.HasTTL = time.Duration(secs)*time.Second, true
			}
			delete(m, "time_to_live")
			b, err := json.Marshal(m)
			if err != nil {
				return r, errorf(500, "internal_error", "rendering the web payload failed")
			}
			payload = b
		}
	}
	if len(payload) > MaxWebPayload {
		return r, tooLarge("web", len(payload), MaxWebPayload)
	}
	r.Payload = payload
	d, bounded, e := q.lifetime(now)
	if e != nil {
		return WebRendering{}, e
	}
	switch {
	case !bounded:
	case d == 0:
		r.TTL = -1
	default:
		r.TTL = d
	}
	r.Urgency = string(p.Priority)
	r.Topic = webTopic(p.CollapseKey)
	return r, nil
}

type webNotification struct {
	Title    string `json:"title,omitempty"`
	Body     string `json:"body,omitempty"`
	Icon     string `json:"icon,omitempty"`
	Image    string `json:"image,omitempty"`
	DeepLink string `json:"deep_link,omitempty"`
}

// webTopic derives a Web Push Topic from a collapse key (WebRendering).
func webTopic(key string) string {
	if key == "" {
		return ""
	}
	ok := len(key) <= maxWebTopic
	for i := 0; ok && i < len(key); i++ {
		c := key[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
	}
	if ok {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:maxWebTopic]
}

// checkRender renders p for every provider at the time it is due, so
// that ParsePublish refuses what no provider could take.
func (p Publish) checkRender(now time.Time) *apiError {
	at := now
	if p.SendAt.After(now) {
		at = p.SendAt
	}
	if _, e := p.RenderAPNs(at); e != nil {
		return e
	}
	if _, e := p.RenderFCM(at); e != nil {
		return e
	}
	_, e := p.RenderWeb(at)
	return e
}

// DryRunAnswer is the answer to a publish with dry_run (spec §4.4): how
// many devices it would reach and what each provider would be sent; a
// provider the publish skips is null.
type DryRunAnswer struct {
	ExpectedRecipients int `json:"expected_recipients"`
	Rendered           struct {
		APNs *DryRunRendering `json:"apns"`
		FCM  *DryRunRendering `json:"fcm"`
		Web  *DryRunRendering `json:"web"`
	} `json:"rendered"`
}

// DryRunRendering is one provider's part of a DryRunAnswer: the headers
// (APNs, Web Push) and the payload; for FCM the message body.
type DryRunRendering struct {
	Headers map[string]string `json:"headers,omitempty"`
	Payload json.RawMessage   `json:"payload,omitempty"`
	Message json.RawMessage   `json:"message,omitempty"`
}

// RenderDryRun renders p for every provider as sent at now, for a dry run
// reaching expected devices. The headers are those the senders would set
// (apns-push-type, apns-priority, apns-expiration, apns-collapse-id; TTL,
// Urgency, Topic), without authorization or target.
func (p Publish) RenderDryRun(expected int, now time.Time) (DryRunAnswer, *apiError) {
	var a DryRunAnswer
	a.ExpectedRecipients = expected
	ar, e := p.RenderAPNs(now)
	if e != nil {
		return a, e
	}
	if ar.Payload != nil {
		h := map[string]string{"apns-push-type": ar.PushType, "apns-expiration": "0"}
		if ar.Priority != 0 {
			h["apns-priority"] = strconv.Itoa(ar.Priority)
		}
		if !ar.Expiration.IsZero() {
			h["apns-expiration"] = strconv.FormatInt(ar.Expiration.Unix(), 10)
		}
		if ar.CollapseID != "" {
			h["apns-collapse-id"] = ar.CollapseID
		}
		a.Rendered.APNs = &DryRunRendering{Headers: h, Payload: ar.Payload}
	}
	fm, e := p.RenderFCM(now)
	if e != nil {
		return a, e
	}
	if fm != nil {
		a.Rendered.FCM = &DryRunRendering{Message: fm}
	}
	wr, e := p.RenderWeb(now)
	if e != nil {
		return a, e
	}
	if wr.Payload != nil {
		ttl := int64(MaxPublishTTL / time.Second)
		if wr.TTL < 0 {
			ttl = 0
		} else if wr.TTL > 0 {
			ttl = int64(wr.TTL / time.Second)
		}
		h := map[string]string{"TTL": strconv.FormatInt(ttl, 10)}
		if wr.Urgency != "" {
			h["Urgency"] = wr.Urgency
		}
		if wr.Topic != "" {
			h["Topic"] = wr.Topic
		}
		a.Rendered.Web = &DryRunRendering{Headers: h, Payload: wr.Payload}
	}
	return a, nil
}
