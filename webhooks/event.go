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

// eventNames lists every event name; an event's bit in a mask is 1<<index.
var eventNames = [...]string{ChannelOccupied, ChannelVacated, MemberAdded, MemberRemoved, ClientEvent, CacheMiss,
	SubscriptionCount}

// eventMask is a set of event names.
type eventMask uint8

const allEvents eventMask = 1<<len(eventNames) - 1

// bit returns the mask of one event name, or 0 for an unknown name.
func bit(name string) eventMask {
	for i, n := range eventNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
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
