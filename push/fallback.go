package push

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sockudo/sockudo/storage"
)

// The offline fallback (spec §4.4): a trigger on POST /apps/{id}/events or
// /batch_events may carry a push object, {"notification"…, "apns"?,
// "fcm"?, "web"?, "ttl"?, "priority"?, "collapse_key"?, "when"?}, sent to
// the devices subscribed for push to the trigger's channels. The server
// package calls CheckPush before it publishes anything and Push after.

// Fallback "when" values.
const (
	// WhenAlways pushes to every device subscribed to the channels (the
	// default).
	WhenAlways = "always"
	// WhenOffline pushes only to devices of users with no live WebSocket
	// connection: not signed in on any socket and not a member of a
	// presence channel the trigger names. Devices bound to no user are
	// skipped, since nothing tells whether their user is connected.
	WhenOffline = "offline"
)

// fallbackFields may not appear in a trigger's push object: the trigger
// names the recipients, and online state is judged when it happens.
var fallbackFields = []string{"recipient", "interests", "users", "device_ids", "channels", "send_at", "dry_run"}

// fallbackPublish validates raw as the push object of a trigger to
// channels and returns the publish and its when.
func (s *Service) fallbackPublish(raw json.RawMessage, channels []string) (Publish, string, *apiError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Publish{}, "", errorf(400, "invalid_push", "push must be a JSON object")
	}
	for _, f := range fallbackFields {
		if _, ok := m[f]; ok {
			return Publish{}, "", errorf(400, "invalid_push", "push may not set %s: the trigger's channels are its recipients", f)
		}
	}
	when := WhenAlways
	if w, ok := m["when"]; ok {
		if err := json.Unmarshal(w, &when); err != nil || when != WhenAlways && when != WhenOffline {
			return Publish{}, "", errorf(400, "invalid_push", `push.when must be "offline" or "always"`)
		}
		delete(m, "when")
	}
	ch, _ := json.Marshal(channels)
	m["channels"] = ch
	body, _ := json.Marshal(m)
	p, e := ParsePublish(body, string(ToChannels), s.now())
	if e != nil {
		e.descr = "push: " + e.descr
		return Publish{}, "", e
	}
	return p, when, nil
}

// CheckPush validates a trigger's push object (server.PushFallback).
func (s *Service) CheckPush(appID string, raw json.RawMessage) error {
	_, _, e := s.fallbackPublish(raw, []string{"x"})
	if e != nil {
		return errors.New(e.descr)
	}
	return nil
}

// Push stores the notifications of a trigger's push object for the
// devices subscribed to channels, skipping, for when=offline, those whose
// user online reports connected (server.PushFallback). It answers when the
// publish is stored; the dispatcher sends it.
func (s *Service) Push(ctx context.Context, appID string, channels []string, raw json.RawMessage,
	online func(ctx context.Context, userIDs []string) ([]bool, error)) error {
	p, when, e := s.fallbackPublish(raw, channels)
	if e != nil {
		return e
	}
	var keep func(d storage.Device) bool
	if when == WhenOffline {
		keep = func(d storage.Device) bool { return d.UserID != "" }
	}
	devices, e := s.resolveWhere(appID, p, s.maxRecipients(appID), keep)
	if e != nil {
		return e
	}
	if when == WhenOffline && len(devices) > 0 {
		devices, e = s.offline(ctx, devices, online)
		if e != nil {
			return e
		}
	}
	if len(devices) == 0 {
		return nil
	}
	_, e = s.enqueue(nil, publishRequest{app: appID, actor: "trigger", pub: p, devices: devices})
	if e != nil {
		return e
	}
	return nil
}

// offline keeps the devices whose users online reports not connected.
func (s *Service) offline(ctx context.Context, devices []recipient,
	online func(ctx context.Context, userIDs []string) ([]bool, error)) ([]recipient, *apiError) {
	var users []string
	seen := map[string]bool{}
	for _, d := range devices {
		if !seen[d.user] {
			seen[d.user] = true
			users = append(users, d.user)
		}
	}
	on, err := online(ctx, users)
	if err != nil || len(on) != len(users) {
		// Unknown presence: pushing to everyone risks a duplicate
		// notification, skipping risks a lost one; a push is the
		// fallback, so send it.
		s.log.Warn("push: offline fallback could not read who is online; pushing to all", "err", err)
		return devices, nil
	}
	connected := map[string]bool{}
	for i, u := range users {
		connected[u] = on[i]
	}
	out := devices[:0]
	for _, d := range devices {
		if !connected[d.user] {
			out = append(out, d)
		}
	}
	return out, nil
}
