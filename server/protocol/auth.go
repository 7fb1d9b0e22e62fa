package protocol

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sign returns the lowercase hex HMAC-SHA256 of msg keyed with secret.
func Sign(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelString is the string to sign for channel auth (§3):
// socket_id:channel, plus :channel_data for presence.
func ChannelString(socketID, channel, channelData string) string {
	if channelData == "" {
		return socketID + ":" + channel
	}
	return socketID + ":" + channel + ":" + channelData
}

// UserString is the string to sign for pusher:signin (§3).
func UserString(socketID, userData string) string {
	return socketID + "::user::" + userData
}

// Auth errors.
var (
	ErrAuthFormat = errors.New("invalid auth format, expected <key>:<signature>")
	ErrAuthKey    = errors.New("invalid key in auth")
	ErrAuthSig    = errors.New("invalid signature")
)

// VerifyAuth checks an auth token "<key>:<hexsig>" against toSign. It
// accepts the signature of any of secrets (rotation), comparing in constant
// time.
func VerifyAuth(token, key string, secrets []string, toSign string) error {
	k, sig, ok := strings.Cut(token, ":")
	if !ok || sig == "" {
		return ErrAuthFormat
	}
	if k != key {
		return ErrAuthKey
	}
	if !signedByAny(sig, secrets, toSign) {
		return ErrAuthSig
	}
	return nil
}

// signedByAny reports whether hexSig is the HMAC-SHA256 of msg under one of
// secrets, comparing in constant time.
func signedByAny(hexSig string, secrets []string, msg string) bool {
	given, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	for _, s := range secrets {
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte(msg))
		if hmac.Equal(m.Sum(nil), given) {
			return true
		}
	}
	return false
}

// REST request verification errors (§4.2); all map to HTTP 401.
var (
	ErrMissingAuthParams = errors.New("missing auth_key, auth_timestamp or auth_signature")
	ErrWrongKey          = errors.New("auth_key does not belong to this app")
	ErrBadTimestamp      = errors.New("auth_timestamp is not a unix time")
	ErrStaleTimestamp    = errors.New("timestamp expired: not within 600s of server time")
	ErrBodyMD5           = errors.New("body_md5 does not match the body")
	ErrMissingBodyMD5    = errors.New("body_md5 is required with a request body")
	ErrBadSignature      = errors.New("invalid signature")
)

// MaxClockSkew is the accepted |now - auth_timestamp| (§4.2).
const MaxClockSkew = 600 * time.Second

// RequestString builds the REST string to sign: METHOD\nPATH\nQS, with QS
// every parameter but auth_signature, keys lowercased and sorted, values
// decoded (§4.2).
func RequestString(method, path string, query url.Values) string {
	type kv struct{ k, v string }
	pairs := make([]kv, 0, len(query))
	for k, vs := range query {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		pairs = append(pairs, kv{lk, strings.Join(vs, ",")})
	}
	// Keys that differ only in case ("a" and "A") lowercase to the same
	// key: order them by value too so the string is deterministic despite
	// random map order.
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// VerifyRequest checks a signed REST request. secrets are the app's valid
// secrets (current first). It returns one of the errors above.
func VerifyRequest(method, path string, query url.Values, body []byte, key string, secrets []string, now time.Time) error {
	// get reads a parameter by case-insensitive name. The exact lowercase
	// key wins; among other casings the smallest key does, so the answer
	// does not depend on map order.
	get := func(name string) string {
		if v := query[name]; len(v) > 0 {
			return v[0]
		}
		best, val := "", ""
		for k, v := range query {
			if len(v) > 0 && strings.EqualFold(k, name) && (best == "" || k < best) {
				best, val = k, v[0]
			}
		}
		return val
	}
	authKey, ts, sig := get("auth_key"), get("auth_timestamp"), get("auth_signature")
	if authKey == "" || ts == "" || sig == "" {
		return ErrMissingAuthParams
	}
	if authKey != key {
		return ErrWrongKey
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(t, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return ErrStaleTimestamp
	}
	if len(body) > 0 {
		want := get("body_md5")
		if want == "" {
			return ErrMissingBodyMD5
		}
		sum := md5.Sum(body)
		if !hmac.Equal([]byte(hex.EncodeToString(sum[:])), []byte(strings.ToLower(want))) {
			return ErrBodyMD5
		}
	}
	if !signedByAny(sig, secrets, RequestString(method, path, query)) {
		return ErrBadSignature
	}
	return nil
}
