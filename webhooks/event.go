package webhooks

import (
	"bytes"
	"encoding/json"
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

// eventMask is a set of event types, one bit each. The bits are laid out in
// blocks so that each family of events can grow without renumbering the
// others (masks are never stored, but a stable layout keeps them readable in
// tests and logs):
//
//	bits  0-15  realtime channel events (shared/spec/pusher-protocol.md §5.2)
//	bits 16-31  push events, reserved: push_delivered, push_failed,
//	            push_device_invalidated (not implemented yet)
//	bits 32-63  free
type eventMask uint64

const (
	// realtimeEvents is the block of the channel events.
	realtimeEvents eventMask = 0xffff
	// pushEvents is the block reserved for the push notification events.
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
}

// allEvents is every event type: what a target without event_types takes.
// When push events are added, decide whether such a target takes them too
// (masking allEvents with realtimeEvents keeps today's meaning).
var allEvents = func() eventMask {
	var m eventMask
	for _, t := range eventTypes {
		m |= t.bit
	}
	return m
}()

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

// Event is a channel lifecycle event as the realtime server reports it: a
// raw transition, before the grace period and de-duplication that the
// Dispatcher applies. The fields a Name does not use are zero.
type Event struct {
	// App is the app id.
	App string
	// Name is one of the event name constants.
	Name    string
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

// encode renders e as its webhook event object. It is done once per event,
// whatever the number of targets.
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
