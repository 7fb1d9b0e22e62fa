package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Inbound is one client frame (§2.2). Data is the raw JSON of the data
// field; pusher-js sends objects, other clients send JSON strings.
type Inbound struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// Decode errors. Their text is sent to the client in a pusher:error.
var (
	ErrMalformed   = errors.New("invalid JSON: expected an object with an \"event\" string")
	ErrMissingData = errors.New("missing data")
)

// Decode parses one client frame.
func Decode(b []byte) (Inbound, error) {
	var in Inbound
	if err := json.Unmarshal(b, &in); err != nil {
		return Inbound{}, ErrMalformed
	}
	if in.Event == "" {
		return Inbound{}, ErrMalformed
	}
	return in, nil
}

// object returns the data as a JSON object's bytes: a JSON string holding
// an object is unwrapped (§2.1: accept both for pusher:* events).
func object(data json.RawMessage) (json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil, ErrMissingData
	}
	if data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, ErrMalformed
		}
		data = bytes.TrimSpace([]byte(s))
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, errors.New("data must be an object")
	}
	return data, nil
}

// DataString returns data as the string to relay: a JSON string's content,
// or the raw JSON text of any other value (§10: client events are relayed
// with data as a JSON string). Missing data is "".
func DataString(data json.RawMessage) string {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return ""
	}
	if data[0] == '"' {
		var s string
		if json.Unmarshal(data, &s) == nil {
			return s
		}
	}
	return string(data)
}

// Subscribe is the data of pusher:subscribe.
type Subscribe struct {
	Channel string
	Auth    string
	// ChannelData is the exact presence channel_data string; "" when
	// missing, null or empty.
	ChannelData string
}

// ParseSubscribe decodes pusher:subscribe data. It also serves
// pusher:unsubscribe, which carries only the channel.
func ParseSubscribe(data json.RawMessage) (Subscribe, error) {
	obj, err := object(data)
	if err != nil {
		return Subscribe{}, err
	}
	var raw struct {
		Channel     *string         `json:"channel"`
		Auth        json.RawMessage `json:"auth"`
		ChannelData json.RawMessage `json:"channel_data"`
	}
	if err := json.Unmarshal(obj, &raw); err != nil {
		return Subscribe{}, ErrMalformed
	}
	if raw.Channel == nil || *raw.Channel == "" {
		return Subscribe{}, errors.New("missing channel")
	}
	s := Subscribe{Channel: *raw.Channel}
	if s.Auth, err = optString(raw.Auth, "auth"); err != nil {
		return Subscribe{}, err
	}
	if s.ChannelData, err = optString(raw.ChannelData, "channel_data"); err != nil {
		return Subscribe{}, err
	}
	return s, nil
}

// optString reads a field that may be absent, null or a string.
func optString(raw json.RawMessage, name string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s must be a string", name)
	}
	return s, nil
}

// Signin is the data of pusher:signin.
type Signin struct {
	Auth     string
	UserData string
}

// ParseSignin decodes pusher:signin data.
func ParseSignin(data json.RawMessage) (Signin, error) {
	obj, err := object(data)
	if err != nil {
		return Signin{}, err
	}
	var raw struct {
		Auth     json.RawMessage `json:"auth"`
		UserData json.RawMessage `json:"user_data"`
	}
	if err := json.Unmarshal(obj, &raw); err != nil {
		return Signin{}, ErrMalformed
	}
	var s Signin
	if s.Auth, err = optString(raw.Auth, "auth"); err != nil {
		return Signin{}, err
	}
	if s.UserData, err = optString(raw.UserData, "user_data"); err != nil {
		return Signin{}, err
	}
	if s.Auth == "" || s.UserData == "" {
		return Signin{}, errors.New("signin requires auth and user_data")
	}
	return s, nil
}

// User is the parsed signin user_data (§2.2).
type User struct {
	ID        string
	Info      json.RawMessage // nil when absent
	Watchlist []string
}

// MaxUserIDLength bounds user ids in signin and presence (§6).
const MaxUserIDLength = 128

// ParseUserData decodes signin user_data: id must be a non-empty string.
func ParseUserData(s string) (User, error) {
	var raw struct {
		ID        json.RawMessage   `json:"id"`
		UserInfo  json.RawMessage   `json:"user_info"`
		Watchlist []json.RawMessage `json:"watchlist"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return User{}, errors.New("user_data must be a JSON object")
	}
	var id string
	if err := json.Unmarshal(raw.ID, &id); err != nil || id == "" {
		return User{}, errors.New("user_data must contain a non-empty string id")
	}
	if len(id) > MaxUserIDLength {
		return User{}, errors.New("user id too long")
	}
	u := User{ID: id}
	if len(raw.UserInfo) > 0 && string(raw.UserInfo) != "null" {
		u.Info = raw.UserInfo
	}
	for _, w := range raw.Watchlist {
		wid, err := idString(w)
		if err != nil {
			return User{}, errors.New("watchlist must be an array of user ids")
		}
		u.Watchlist = append(u.Watchlist, wid)
	}
	return u, nil
}

// Member is one presence member.
type Member struct {
	// UserID is the string form of user_id, the identity key (§7.7).
	UserID string
	// Info is the raw user_info JSON, nil when absent.
	Info json.RawMessage
}

// ParseChannelData decodes presence channel_data. user_id may be a string
// or a number; numbers keep their JSON text ("10").
func ParseChannelData(s string) (Member, error) {
	var raw struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return Member{}, errors.New("channel_data must be a JSON object")
	}
	id, err := idString(raw.UserID)
	if err != nil {
		return Member{}, errors.New("channel_data must contain user_id")
	}
	if len(id) > MaxUserIDLength {
		return Member{}, errors.New("user_id too long")
	}
	m := Member{UserID: id}
	if len(raw.UserInfo) > 0 && string(raw.UserInfo) != "null" {
		m.Info = raw.UserInfo
	}
	return m, nil
}

// idString accepts a non-empty JSON string or a JSON number.
func idString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("missing id")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", errors.New("bad id")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("bad id")
	}
	if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
		return "", errors.New("bad id")
	}
	return n.String(), nil
}
