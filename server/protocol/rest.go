package protocol

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// The Pusher HTTP API's bodies (§4): trigger and batch requests, the info
// parameter, and the channel, users and info answers.

// TriggerEvent is one event of a trigger or batch body (§4.3, §4.4).
type TriggerEvent struct {
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	SocketID string          `json:"socket_id"`
	Info     string          `json:"info"`
	// Push is the sockudo extension for push notifications on this event
	// (shared/spec/push-api.md §4.4), kept raw: the server checks only that
	// it is an object and hands it on. nil when absent; the JSON null
	// literal when sent as null.
	Push json.RawMessage `json:"push"`
}

// ErrInvalidJSON is a body that does not decode.
var ErrInvalidJSON = errors.New("invalid JSON body")

// ParseTrigger decodes the body of POST /apps/{id}/events.
func ParseTrigger(body []byte) (TriggerEvent, error) {
	var e TriggerEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return TriggerEvent{}, ErrInvalidJSON
	}
	return e, nil
}

// ParseBatch decodes the body of POST /apps/{id}/batch_events,
// {"batch":[…]}.
func ParseBatch(body []byte) ([]TriggerEvent, error) {
	var req struct {
		Batch []TriggerEvent `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, ErrInvalidJSON
	}
	return req.Batch, nil
}

// TriggerLimits are an app's limits on API events.
type TriggerLimits struct {
	EventNameLength   int
	PayloadBytes      int
	Channels          int
	ChannelNameLength int
}

// APIError is a refused API request: an HTTP status and a message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return strconv.Itoa(e.Status) + ": " + e.Message }

// Validate checks one event against l and returns its channels and its
// data as the string subscribers get. A batch event (one is false) has a
// single channel.
func (e *TriggerEvent) Validate(l TriggerLimits, one bool) ([]string, string, *APIError) {
	bad := func(msg string) ([]string, string, *APIError) { return nil, "", &APIError{400, msg} }
	if e.Name == "" {
		return bad("missing event name")
	}
	if !ValidEventName(e.Name, l.EventNameLength) {
		return bad("invalid event name: at most " + strconv.Itoa(l.EventNameLength) + " characters, not pusher: or pusher_internal:")
	}
	if len(e.Data) == 0 {
		return bad("missing data")
	}
	data := DataString(e.Data)
	if len(data) > l.PayloadBytes {
		return nil, "", &APIError{413, "The data content of this event exceeds the allowed maximum (" + strconv.Itoa(l.PayloadBytes) + " bytes)"}
	}
	channels := e.Channels
	if e.Channel != "" {
		channels = append(channels, e.Channel)
	}
	switch {
	case len(channels) == 0:
		return bad("missing channel or channels")
	case !one && len(channels) > 1:
		return bad("a batch event has one channel")
	case len(channels) > l.Channels:
		return bad("too many channels: at most " + strconv.Itoa(l.Channels))
	}
	for _, ch := range channels {
		if !ValidChannelName(ch, l.ChannelNameLength) {
			name := ch
			if len(name) > 64 {
				name = name[:64] + "…"
			}
			return bad("invalid channel name " + strconv.Quote(name))
		}
		if len(channels) > 1 && Classify(ch).Type == Encrypted {
			return bad("an event on an encrypted channel must name only that channel")
		}
	}
	if e.SocketID != "" && !ValidSocketID(e.SocketID) {
		return bad("invalid socket_id")
	}
	return channels, data, nil
}

// Info is what an info parameter asks for ("user_count,subscription_count").
type Info struct{ UserCount, SubscriptionCount, Cache bool }

// ParseInfo parses an info parameter; unknown attributes are ignored.
func ParseInfo(s string) Info {
	var in Info
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "user_count":
			in.UserCount = true
		case "subscription_count":
			in.SubscriptionCount = true
		case "cache":
			in.Cache = true
		}
	}
	return in
}

// ChannelInfo is one channel as the API reports it.
type ChannelInfo struct {
	Name          string
	Subscriptions int
	Users         int // presence channels
	// Cache is a cache channel's last event, nil if none or not asked.
	Cache *CachedEvent
}

// CachedEvent is a cache channel's last event and its remaining lifetime.
type CachedEvent struct {
	Event, Data string
	TTLSeconds  int
}

// AppendChannelAttrs appends the attributes in asks for, without braces:
// "user_count" (presence channels only) and "subscription_count".
func AppendChannelAttrs(dst []byte, c ChannelInfo, in Info) []byte {
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	if in.UserCount && Classify(c.Name).Type == Presence {
		sep()
		dst = append(dst, `"user_count":`...)
		dst = strconv.AppendInt(dst, int64(c.Users), 10)
	}
	if in.SubscriptionCount {
		sep()
		dst = append(dst, `"subscription_count":`...)
		dst = strconv.AppendInt(dst, int64(c.Subscriptions), 10)
	}
	return dst
}

// ChannelsBody is the answer of GET /channels and of a trigger with info:
// {"channels":{"name":{attributes},…}}, always an object (§4.5).
func ChannelsBody(list []ChannelInfo, in Info) []byte {
	b := []byte(`{"channels":{`)
	for i, c := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, c.Name)
		b = append(b, ":{"...)
		b = append(AppendChannelAttrs(b, c, in), '}')
	}
	return append(b, "}}"...)
}

// ChannelBody is the answer of GET /channels/{name}:
// {"occupied":…,attributes,"cache":{"event","data","ttl"}}.
func ChannelBody(c ChannelInfo, in Info) []byte {
	b := []byte(`{"occupied":`)
	b = strconv.AppendBool(b, c.Subscriptions > 0)
	if attrs := AppendChannelAttrs(nil, c, in); len(attrs) > 0 {
		b = append(b, ',')
		b = append(b, attrs...)
	}
	if c.Cache != nil {
		b = append(b, `,"cache":{"event":`...)
		b = AppendString(b, c.Cache.Event)
		b = append(b, `,"data":`...)
		b = AppendString(b, c.Cache.Data)
		b = append(b, `,"ttl":`...)
		b = strconv.AppendInt(b, int64(c.Cache.TTLSeconds), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// BatchBody is the answer of a batch with info: {"batch":[{attributes},…]},
// one object per event, empty for an event that did not ask (nil info).
func BatchBody(list []ChannelInfo, infos []*Info) []byte {
	b := []byte(`{"batch":[`)
	for i, c := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if infos[i] != nil {
			b = AppendChannelAttrs(b, c, *infos[i])
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// UsersBody is the answer of GET /channels/{name}/users:
// {"users":[{"id":…},…]}.
func UsersBody(ids []string) []byte {
	b := []byte(`{"users":[`)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = AppendString(b, id)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
