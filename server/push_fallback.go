package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

// PushFallback sends push notifications for triggers that carry a push
// object (package push implements it; main wires it). This is the "offline
// fallback on ordinary triggers" of shared/spec/push-api.md §4.4: the server
// does not interpret the object beyond checking that it is a JSON object.
// A PushFallback is safe for concurrent use.
type PushFallback interface {
	// CheckPush validates a trigger's push object before anything is
	// published; a non-nil error is answered 400 with its text.
	CheckPush(appID string, raw json.RawMessage) error
	// Push is called after the event was published to channels: it
	// persists the notifications and returns (it does not send). online
	// reports, for user ids, which have a live WebSocket connection (a
	// signed-in socket on any node, via Presence.Online, or membership of
	// that presence channel).
	Push(ctx context.Context, appID string, channels []string, raw json.RawMessage, online func(ctx context.Context, userIDs []string) ([]bool, error)) error
}

// WithPushFallback makes the HTTP API accept a push object on the events
// of POST /events and /batch_events and hand it to p. Without it such an
// event is refused with 400, so a caller never believes a push was queued
// when it was not.
func WithPushFallback(p PushFallback) Option { return func(s *Server) { s.pushFallback = p } }

// pushTimeout bounds one PushFallback.Push. The call runs on a context
// detached from the request: the event has been published by then, and a
// caller hanging up must not lose the notifications that go with it.
const pushTimeout = 10 * time.Second

// errPushDisabled refuses a push object on a server without PushFallback.
var errPushDisabled = errors.New("push notifications are not enabled")

// errPushNotObject refuses a push value that is not a JSON object.
var errPushNotObject = errors.New("push must be a JSON object")

// hasPush reports whether an event carries a push object. JSON null counts
// as absent: SDKs that serialise unset optional fields as null must keep
// working on servers without push.
func hasPush(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// checkPush validates an event's push object, if any, before anything is
// published. raw is a value encoding/json already accepted as valid JSON,
// without surrounding space, so its first byte tells an object.
func (s *Server) checkPush(appID string, raw json.RawMessage) error {
	if !hasPush(raw) {
		return nil
	}
	err := errPushDisabled
	switch {
	case s.pushFallback == nil:
	case raw[0] != '{':
		err = errPushNotObject
	default:
		err = s.pushFallback.CheckPush(appID, raw)
	}
	if err != nil {
		s.metrics.triggerPushRefused.Inc()
	}
	return err
}

// pushEvent hands a published event's push object, if any, to the
// PushFallback.
//
// A failure does not undo the event and does not change the answer: the
// caller keeps Pusher's 200 body (`{}` or the info attributes), which every
// SDK expects, and retrying the trigger would deliver the realtime event a
// second time. The failure is for the operator: it is logged (app id,
// object size, error; never the object) and counted in
// sockudo_trigger_push_total{result="failed"}.
func (s *Server) pushEvent(r *http.Request, appID string, channels []string, raw json.RawMessage) {
	if !hasPush(raw) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), pushTimeout)
	defer cancel()
	channels = uniqueChannels(channels)
	if err := s.pushFallback.Push(ctx, appID, channels, raw, s.pushOnline(appID, channels)); err != nil {
		s.metrics.triggerPushFailed.Inc()
		s.warnLimited("trigger-push", "push fallback failed after the event was published",
			"app_id", appID, "push_bytes", len(raw), "err", err)
		return
	}
	s.metrics.triggerPushAccepted.Inc()
}

// uniqueChannels drops repeated channel names ("channels":["a","a"]
// publishes twice), so that a device is not notified twice for one event.
func uniqueChannels(channels []string) []string {
	out := make([]string, 0, len(channels))
	for _, ch := range channels {
		dup := false
		for _, o := range out { // at most MaxEventChannelsAtOnce (100) names
			dup = dup || o == ch
		}
		if !dup {
			out = append(out, ch)
		}
	}
	return out
}

// pushOnline is the online function given to PushFallback.Push: a user is
// online when Presence reports a signed-in socket (any node), or when it is
// a member of one of the event's presence channels, which needs a live
// socket too. It asks the cluster seam (Presence), never storage, so it
// answers for every node in Redis mode.
//
// The members are read once per Push, on the first call that needs them,
// and reused by later calls (the push service may page through devices):
// one Push is short, and reading them per page would cost a Presence
// round trip each time.
func (s *Server) pushOnline(appID string, channels []string) func(ctx context.Context, userIDs []string) ([]bool, error) {
	var presenceChannels []string
	for _, ch := range channels {
		if protocol.Classify(ch).Type == protocol.Presence {
			presenceChannels = append(presenceChannels, ch)
		}
	}
	var (
		mu      sync.Mutex
		members map[string]bool // guarded by mu; nil until read
	)
	return func(ctx context.Context, userIDs []string) ([]bool, error) {
		online, err := s.presence.Online(ctx, appID, userIDs)
		if err != nil {
			return nil, err
		}
		if len(online) != len(userIDs) {
			return nil, errors.New("server: presence answered Online with the wrong number of users")
		}
		if len(presenceChannels) == 0 {
			return online, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if members == nil {
			m := make(map[string]bool)
			for _, ch := range presenceChannels {
				list, err := s.presence.Members(ctx, appID, ch)
				if err != nil {
					return nil, err // not cached: a later call tries again
				}
				for _, mb := range list {
					m[mb.UserID] = true
				}
			}
			members = m
		}
		for i, id := range userIDs {
			online[i] = online[i] || members[id]
		}
		return online, nil
	}
}
