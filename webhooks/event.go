package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Event names (shared/spec/pusher-protocol.md §5.2), as accepted in a
// target's event_types.
const (
	ChannelOccupied   = "channel_occupied"
	ChannelVacated    = "channel_vacated"
	MemberAdded       = "member_added"
	MemberRemoved     = "member_removed"
	ClientEvent       = "client_event"
	CacheMiss         = "cache_miss"
	SubscriptionCount = "subscription_count"
)

// Push event names (shared/spec/push-api.md §4.7), as accepted in a target's
// event_types. They carry no channel: their content is Event.Fields, whose
// keys are written next to "name". A target receives them only if its
// event_types lists them (see defaultEvents). The fields each one carries
// are set by the push service; those below are its contract with receivers.
const (
	// PushPublishFinished reports a publish that reached a final state,
	// as Beams' PublishToUsersAttempt does: publish_id, state, counters
	// (an object: planned, sent, failed, invalidated, retried,
	// per_provider, errors_by_reason), created_at and finished_at (unix
	// ms).
	PushPublishFinished = "push_publish_finished"
	// PushDeviceInvalidated reports a device a provider declared gone:
	// device_id, platform, user_id (if the device had one) and reason (the
	// provider's, such as "Unregistered").
	PushDeviceInvalidated = "push_device_invalidated"
	// PushCredentialUnhealthy reports a provider credential the provider
	// refused: provider ("apns", "fcm" or "web"), version and reason.
	PushCredentialUnhealthy = "push_credential_unhealthy"
)

// eventMask is a set of event types, one bit each. The bits are laid out in
// blocks so that each family of events can grow without renumbering the
// others (masks are never stored, but a stable layout keeps them readable in
// tests and logs):
//
//	bits  0-15  realtime channel events (shared/spec/pusher-protocol.md §5.2)
//	bits 16-31  push events (shared/spec/push-api.md §4.7):
//	            push_publish_finished, push_device_invalidated,
//	            push_credential_unhealthy
//	bits 32-63  free
type eventMask uint64

const (
	// realtimeEvents is the block of the channel events.
	realtimeEvents eventMask = 0xffff
	// pushEvents is the block of the push notification events.
	pushEvents eventMask = 0xffff << 16
)

// eventTypes lists every event a target can take, in the order error
// messages name them, with its bit. Adding an event type is one row here
// (and its name constant): a push event takes the next free bit of
// pushEvents, 1 << 16 first.
var eventTypes = [...]struct {
	name string
	bit  eventMask
}{
	{ChannelOccupied, 1 << 0},
	{ChannelVacated, 1 << 1},
	{MemberAdded, 1 << 2},
	{MemberRemoved, 1 << 3},
	{ClientEvent, 1 << 4},
	{CacheMiss, 1 << 5},
	{SubscriptionCount, 1 << 6},
	{PushPublishFinished, 1 << 16},
	{PushDeviceInvalidated, 1 << 17},
	{PushCredentialUnhealthy, 1 << 18},
}

// allEvents is every event type.
var allEvents = func() eventMask {
	var m eventMask
	for _, t := range eventTypes {
		m |= t.bit
	}
	return m
}()

// defaultEvents is what a target without event_types takes: the realtime
// events only. Targets configured before push existed meant "every channel
// event" and their receivers parse only those, so push events must be asked
// for by name, never arrive unannounced.
var defaultEvents = allEvents & realtimeEvents

// bit returns the mask of one event name, or 0 for an unknown name.
func bit(name string) eventMask {
	for _, t := range eventTypes {
		if t.name == name {
			return t.bit
		}
	}
	return 0
}

// eventTypeNames lists the names of eventTypes, in order.
func eventTypeNames() []string {
	names := make([]string, len(eventTypes))
	for i, t := range eventTypes {
		names[i] = t.name
	}
	return names
}

// Event is a channel lifecycle event as the realtime server reports it (a
// raw transition, before the grace period and de-duplication that the
// Dispatcher applies), or a push event as the push service reports it. The
// fields a Name does not use are zero.
type Event struct {
	// App is the app id.
	App string
	// Name is one of the event name constants.
	Name string
	// Channel is a realtime event's channel; push events have none.
	Channel string
	// UserID is the presence user of member_added and member_removed, and
	// the sender of a client_event on a presence channel.
	UserID string
	// Event and Data are a client_event's name and data; Data is sent as
	// the JSON string it is.
	Event, Data string
	// SocketID is the sender of a client_event.
	SocketID string
	// SubscriptionCount is the channel's count for subscription_count.
	SubscriptionCount int
	// Fields is a push event's content: each key is written into the event
	// object next to "name", in key order, its value encoded as JSON
	// (encoding/json rules, without HTML escaping). A key "name" is skipped,
	// so a field can never rename the event. A value that does not encode
	// drops the event (Stats.Dropped). Realtime events ignore Fields: their
	// objects are fixed by Pusher (§5.2). The Dispatcher only reads Fields,
	// and only during Emit.
	Fields map[string]any
}

// wireEvent is an event object of a webhook body (§5.2).
type wireEvent struct {
	Name    string `json:"name"`
	Channel string `json:"channel"`
	Event   string `json:"event,omitempty"`
	// Data is a pointer so that a client_event with empty data still
	// carries "data":"" (pusher-http-go reads it as a string).
	Data              *string `json:"data,omitempty"`
	SocketID          string  `json:"socket_id,omitempty"`
	UserID            string  `json:"user_id,omitempty"`
	SubscriptionCount *int    `json:"subscription_count,omitempty"`
}

// encode renders realtime e as its webhook event object (push events:
// encodePush). It is done once per event, whatever the number of targets.
func (e *Event) encode() []byte {
	w := wireEvent{Name: e.Name, Channel: e.Channel}
	switch e.Name {
	case MemberAdded, MemberRemoved:
		w.UserID = e.UserID
	case ClientEvent:
		w.Event, w.SocketID = e.Event, e.SocketID
		data := e.Data
		w.Data = &data
		// §5.2: user_id only on presence channels.
		if strings.HasPrefix(e.Channel, "presence-") {
			w.UserID = e.UserID
		}
	case SubscriptionCount:
		n := e.SubscriptionCount
		w.SubscriptionCount = &n
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(w) // strings and ints always encode
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// encodePush renders push e as its webhook event object: "name" first,
// then e.Fields in key order (deterministic, so a retried or replayed event
// is the same bytes).
func (e *Event) encodePush() ([]byte, error) {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		if k != "name" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b := append(make([]byte, 0, 64), `{"name":`...)
	b, _ = appendJSON(b, e.Name) // a string always encodes
	for _, k := range keys {
		b = append(b, ',')
		b, _ = appendJSON(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendJSON(b, e.Fields[k]); err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

// appendJSON appends v encoded as encode does (no HTML escaping) to b.
func appendJSON(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

// appendBody appends a webhook body, {"time_ms":…,"events":[…]}, holding
// events (each already encoded) to b.
func appendBody(b []byte, timeMs int64, events [][]byte) []byte {
	b = append(b, `{"time_ms":`...)
	b = strconv.AppendInt(b, timeMs, 10)
	b = append(b, `,"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}
