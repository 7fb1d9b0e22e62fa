package protocol

import (
	"strconv"
)

// Frames of the messages the server sends (§2.3). Each is encoded once;
// the fan-out shares the bytes between sockets, so callers must not
// modify them.

// Fixed frames.
var (
	PingFrame = TextFrame([]byte(`{"event":"pusher:ping","data":"{}"}`))
	PongFrame = TextFrame([]byte(`{"event":"pusher:pong","data":"{}"}`))
)

// EventFrame returns an event envelope (AppendEvent) as a frame: the one
// encoding of an API, client or server-to-user event.
func EventFrame(event, channel, data, userID string) []byte {
	return endFrame(AppendEvent(beginFrame(len(event)+len(channel)+len(data)+len(userID)+48), event, channel, data, userID))
}

// ErrorFrame returns a pusher:error (AppendError) as a frame.
func ErrorFrame(code Code, message, channel string) []byte {
	return endFrame(AppendError(beginFrame(len(message)+len(channel)+64), code, message, channel))
}

// ConnectionEstablishedFrame returns the handshake's first frame (§1.2).
func ConnectionEstablishedFrame(socketID string, activityTimeoutSeconds int) []byte {
	return endFrame(AppendConnectionEstablished(beginFrame(128), socketID, activityTimeoutSeconds))
}

// AppendConnectionEstablished appends pusher:connection_established.
func AppendConnectionEstablished(dst []byte, socketID string, activityTimeoutSeconds int) []byte {
	data := make([]byte, 0, 64)
	data = append(data, `{"socket_id":`...)
	data = AppendString(data, socketID)
	data = append(data, `,"activity_timeout":`...)
	data = strconv.AppendInt(data, int64(activityTimeoutSeconds), 10)
	data = append(data, '}')
	return AppendEvent(dst, "pusher:connection_established", "", string(data), "")
}

// SubscriptionSucceededFrame confirms a subscription to a channel that is
// not a presence channel.
func SubscriptionSucceededFrame(channel string) []byte {
	return EventFrame("pusher_internal:subscription_succeeded", channel, "{}", "")
}

// PresenceSucceededFrame confirms a presence subscription with the
// channel's members: {"presence":{"ids":[…],"hash":{…},"count":n}}. A
// member without user_info is null in hash, never dropped (§7.7).
func PresenceSucceededFrame(channel string, members []Member) []byte {
	b := make([]byte, 0, 64+len(members)*32)
	b = append(b, `{"presence":{"ids":[`...)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, m.UserID)
	}
	b = append(b, `],"hash":{`...)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, m.UserID)
		b = append(b, ':')
		b = appendRawOrNull(b, m.Info)
	}
	b = append(b, `},"count":`...)
	b = strconv.AppendInt(b, int64(len(members)), 10)
	return EventFrame("pusher_internal:subscription_succeeded", channel, string(append(b, "}}"...)), "")
}

// MemberAddedFrame tells a presence channel's other subscribers that m
// joined: {"user_id":…,"user_info":…}, without user_info when it has none.
func MemberAddedFrame(channel string, m Member) []byte {
	b := append([]byte(`{"user_id":`), AppendString(nil, m.UserID)...)
	if m.Info != nil {
		b = append(b, `,"user_info":`...)
		b = append(b, m.Info...)
	}
	return EventFrame("pusher_internal:member_added", channel, string(append(b, '}')), "")
}

// MemberRemovedFrame tells a presence channel's subscribers that the
// user's last socket left: {"user_id":…}.
func MemberRemovedFrame(channel, userID string) []byte {
	b := append([]byte(`{"user_id":`), AppendString(nil, userID)...)
	return EventFrame("pusher_internal:member_removed", channel, string(append(b, '}')), "")
}

// SubscriptionCountFrame carries a channel's subscriber count.
func SubscriptionCountFrame(channel string, count int) []byte {
	return EventFrame("pusher_internal:subscription_count", channel,
		`{"subscription_count":`+strconv.Itoa(count)+`}`, "")
}

// CacheMissFrame tells a subscriber of a cache channel that there is no
// cached event to replay: {"event":"pusher:cache_miss","channel":…}.
func CacheMissFrame(channel string) []byte {
	return endFrame(AppendEventNoData(beginFrame(len(channel)+48), "pusher:cache_miss", channel))
}

// SigninSuccessFrame answers a valid pusher:signin; userData is echoed as
// the string the client sent. data is an object here, not a string.
func SigninSuccessFrame(userData string) []byte {
	b := append(beginFrame(len(userData)+64), `{"event":"pusher:signin_success","data":{"user_data":`...)
	b = AppendString(b, userData)
	return endFrame(append(b, "}}"...))
}

// WatchlistFrame is pusher_internal:watchlist_events with an "online" entry
// for the online ids and an "offline" entry for the offline ones; an empty
// list has no entry (§2.3).
func WatchlistFrame(online, offline []string) []byte {
	b := append(beginFrame(64), `{"event":"pusher_internal:watchlist_events","data":{"events":[`...)
	first := true
	for _, e := range [2]struct {
		name string
		ids  []string
	}{{"online", online}, {"offline", offline}} {
		if len(e.ids) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"name":"`...)
		b = append(b, e.name...)
		b = append(b, `","user_ids":[`...)
		for i, id := range e.ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, id)
		}
		b = append(b, "]}"...)
	}
	return endFrame(append(b, "]}}"...))
}

func appendRawOrNull(b []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	return append(b, raw...)
}
