package fcm

import (
	"encoding/json"
	"errors"
)

// MaxMessage is the largest message FCM accepts, in bytes (spec §2.2),
// checked against Message.Body: the message object without the token.
const MaxMessage = 4096

// Message is one message to one registration token.
type Message struct {
	// Token is the registration token. Never logged.
	Token string
	// Body is the FCM v1 message object without its target: a JSON object
	// with any of "notification", "data", "android", "apns", "webpush" and
	// "fcm_options" (Content.Body builds one). Nil means {}. It is not
	// modified, so one Body can be shared by concurrent sends.
	Body json.RawMessage
}

// Content is the typed form of a Message body. Its blocks are raw JSON so
// that the provider mapping decides their shape.
type Content struct {
	Notification *Notification     `json:"notification,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
	Android      json.RawMessage   `json:"android,omitempty"`
	APNs         json.RawMessage   `json:"apns,omitempty"`
	Webpush      json.RawMessage   `json:"webpush,omitempty"`
	FCMOptions   json.RawMessage   `json:"fcm_options,omitempty"`
}

// Notification is the cross-platform notification block.
type Notification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
	Image string `json:"image,omitempty"`
}

// Body encodes c as a Message body. Encode it once per publish and share
// it among the sends.
func (c Content) Body() (json.RawMessage, error) {
	return json.Marshal(c)
}

// errTarget: the body carries its own target, which would override or
// conflict with the token.
var errTarget = errors.New("the message body names a target (token, topic or condition)")

// request builds {"message":{"token":…, <body fields>}}.
func request(m Message) ([]byte, error) {
	body := m.Body
	if len(body) == 0 {
		body = json.RawMessage(`{}`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, errors.New("the message body is not a JSON object")
	}
	for _, k := range [...]string{"token", "topic", "condition"} {
		if _, ok := fields[k]; ok {
			return nil, errTarget
		}
	}
	out := make([]byte, 0, len(body)+len(m.Token)+32)
	out = append(out, `{"message":{"token":`...)
	tok, err := json.Marshal(m.Token)
	if err != nil {
		return nil, err
	}
	out = append(out, tok...)
	if len(fields) > 0 {
		out = append(out, ',')
		out = append(out, trimObject(body)...)
	}
	return append(out, "}}"...), nil
}

// trimObject returns the inside of a JSON object: what lies between its
// outer braces.
func trimObject(b []byte) []byte {
	start, end := 0, len(b)
	for start < end && b[start] != '{' {
		start++
	}
	for end > start && b[end-1] != '}' {
		end--
	}
	return b[start+1 : end-1]
}
