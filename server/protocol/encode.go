package protocol

import (
	"strconv"
	"unicode/utf8"
)

// AppendEvent appends a server event envelope to dst:
// {"event":…,"channel":…,"data":"<data as a JSON string>","user_id":…}.
// channel and userID are omitted when empty. data is always sent as a JSON
// string, the double encoding real Pusher uses (§2.1).
func AppendEvent(dst []byte, event, channel, data, userID string) []byte {
	dst = append(dst, `{"event":`...)
	dst = AppendString(dst, event)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	dst = append(dst, `,"data":`...)
	dst = AppendString(dst, data)
	if userID != "" {
		dst = append(dst, `,"user_id":`...)
		dst = AppendString(dst, userID)
	}
	return append(dst, '}')
}

// AppendEventNoData appends {"event":…,"channel":…} (pusher:cache_miss).
func AppendEventNoData(dst []byte, event, channel string) []byte {
	dst = append(dst, `{"event":`...)
	dst = AppendString(dst, event)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	return append(dst, '}')
}

// AppendError appends a pusher:error event whose data is an object
// {"code":…,"message":…} (§1.6). CodeNone renders as null.
func AppendError(dst []byte, code Code, message, channel string) []byte {
	dst = append(dst, `{"event":"pusher:error"`...)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	dst = append(dst, `,"data":{"code":`...)
	if code == CodeNone {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, int64(code), 10)
	}
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD so the output is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript eval'd JSON.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
