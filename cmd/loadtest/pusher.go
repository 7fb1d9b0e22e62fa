package main

// Pure helpers: URL building, loopback checks, REST request signing, event
// payload construction and cheap parsing of incoming Pusher frames. Nothing in
// this file does I/O, so all of it is covered by table-driven tests.

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// pusher-js query string (spec §1.1).
const wsQuery = "protocol=7&client=js&version=8.6.0&flash=false"

// buildWSURL returns <base>/app/<key>?protocol=7&client=js&version=8.6.0&flash=false.
func buildWSURL(base, key string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("bad -url %q: %w", base, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("bad -url %q: scheme must be ws or wss", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("bad -url %q: no host", base)
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/") +
		"/app/" + url.PathEscape(key) + "?" + wsQuery, nil
}

// deriveHTTPBase maps ws://h:p/x to http://h:p/x and wss:// to https://.
func deriveHTTPBase(wsBase string) (string, error) {
	u, err := url.Parse(wsBase)
	if err != nil {
		return "", fmt.Errorf("bad -url %q: %w", wsBase, err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("bad -url %q: scheme must be ws or wss", wsBase)
	}
	if u.Host == "" {
		return "", fmt.Errorf("bad -url %q: no host", wsBase)
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// eventsURLParts splits the REST base into the scheme://host prefix and the
// path of the events endpoint, <basepath>/apps/<id>/events.
func eventsURLParts(httpBase, appID string) (origin, path string, err error) {
	u, err := url.Parse(httpBase)
	if err != nil {
		return "", "", fmt.Errorf("bad -http %q: %w", httpBase, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("bad -http %q: scheme must be http or https", httpBase)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("bad -http %q: no host", httpBase)
	}
	return u.Scheme + "://" + u.Host, strings.TrimRight(u.Path, "/") + "/apps/" + appID + "/events", nil
}

var errNotLoopback = errors.New("target is not a loopback address (127.0.0.0/8, ::1, localhost); pass -allow-remote to override")

// isLoopbackHost reports whether host (no port) is a loopback IP literal or
// "localhost". Other names are not resolved: they are treated as remote.
func isLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if i := strings.IndexByte(h, '%'); i >= 0 { // zone, e.g. ::1%lo
		h = h[:i]
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkLoopbackURL returns errNotLoopback unless raw's host is loopback.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Hostname() == "" || !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%s: %w", raw, errNotLoopback)
	}
	return nil
}

// checkLoopbackAddr checks a resolved "ip:port" dial address (used by the
// dialers' Control hook, so a redirect or DNS surprise cannot escape).
func checkLoopbackAddr(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, errNotLoopback)
	}
	return nil
}

// bodyMD5 is the lowercase hex MD5 of the raw body (spec §4.2).
func bodyMD5(body []byte) string {
	sum := md5.Sum(body)
	return hex.EncodeToString(sum[:])
}

// canonicalQuery joins params as k=v with '&', keys lowercased and sorted,
// values not escaped, auth_signature excluded (spec §4.2).
func canonicalQuery(params map[string]string) string {
	keys := make([]string, 0, len(params))
	lower := make(map[string]string, len(params))
	for k, v := range params {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		keys = append(keys, lk)
		lower[lk] = v
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(lower[k])
	}
	return b.String()
}

// stringToSign is METHOD\nPATH\nQS.
func stringToSign(method, path string, params map[string]string) string {
	return strings.ToUpper(method) + "\n" + path + "\n" + canonicalQuery(params)
}

// hmacHex is the lowercase hex HMAC-SHA256 of msg keyed with secret.
func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// signParams returns the auth query parameters for a REST request, including
// auth_signature. body_md5 is present only for a non-empty body.
func signParams(method, path, key, secret string, body []byte, ts int64) map[string]string {
	p := map[string]string{
		"auth_key":       key,
		"auth_timestamp": strconv.FormatInt(ts, 10),
		"auth_version":   "1.0",
	}
	if len(body) > 0 {
		p["body_md5"] = bodyMD5(body)
	}
	p["auth_signature"] = hmacHex(secret, stringToSign(method, path, p))
	return p
}

// signedURL is origin+path+"?"+ the signed query (values URL-encoded; the
// server signs the decoded values).
func signedURL(origin, path, method, key, secret string, body []byte, ts int64) string {
	p := signParams(method, path, key, secret, body, ts)
	v := make(url.Values, len(p))
	for k, val := range p {
		v.Set(k, val)
	}
	return origin + path + "?" + v.Encode()
}

// minEventData is the size of the data string with no padding for a 19-digit
// nanosecond timestamp: {"t":1234567890123456789,"p":""}.
const minEventData = len(`{"t":,"p":""}`) + 19

// eventData builds the event's data string: {"t":<ns>,"p":"xxx..."} padded
// with 'x' so that its length is size bytes (or the minimum if size is smaller).
func eventData(sentNs int64, size int) []byte {
	b := make([]byte, 0, max(size, minEventData+2))
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, sentNs, 10)
	b = append(b, `,"p":"`...)
	for pad := size - len(b) - 2; pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// eventBody builds the REST trigger body (spec §4.3) with "data" as a JSON
// string containing eventData.
func eventBody(eventName, channel string, sentNs int64, size int) []byte {
	q := func(s string) []byte { b, _ := json.Marshal(s); return b }
	data := eventData(sentNs, size)
	b := make([]byte, 0, len(data)+len(data)/4+len(channel)+len(eventName)+48)
	b = append(b, `{"name":`...)
	b = append(b, q(eventName)...)
	b = append(b, `,"channel":`...)
	b = append(b, q(channel)...)
	b = append(b, `,"data":`...)
	b = append(b, q(string(data))...)
	return append(b, '}')
}

// subscribeFrame is the pusher-js subscribe frame for a public channel.
func subscribeFrame(channel string) string {
	c, _ := json.Marshal(channel)
	return `{"event":"pusher:subscribe","data":{"auth":"","channel":` + string(c) + `}}`
}

const pongFrame = `{"event":"pusher:pong","data":{}}`

var (
	eventKey  = []byte(`"event"`)
	tsEscaped = []byte(`\"t\":`)
	tsPlain   = []byte(`"t":`)
)

// frameEvent returns the value of the top-level "event" key without
// allocating. Inside JSON strings quotes are escaped, so the unescaped token
// "event" only matches a real key. Returns nil if not found.
func frameEvent(msg []byte) []byte {
	i := bytes.Index(msg, eventKey)
	if i < 0 {
		return nil
	}
	i += len(eventKey)
	i = skipSpace(msg, i)
	if i >= len(msg) || msg[i] != ':' {
		return nil
	}
	i = skipSpace(msg, i+1)
	if i >= len(msg) || msg[i] != '"' {
		return nil
	}
	i++
	j := bytes.IndexByte(msg[i:], '"')
	if j < 0 {
		return nil
	}
	return msg[i : i+j]
}

// frameTimestamp extracts the send timestamp from a delivered event, whose
// data is the JSON string {"t":<ns>,...} (so it appears as \"t\": in the
// frame). A server that wrongly re-encoded data as an object is tolerated.
func frameTimestamp(msg []byte) (int64, bool) {
	i := bytes.Index(msg, tsEscaped)
	if i >= 0 {
		i += len(tsEscaped)
	} else if i = bytes.Index(msg, tsPlain); i >= 0 {
		i += len(tsPlain)
	} else {
		return 0, false
	}
	i = skipSpace(msg, i)
	var n int64
	start := i
	for ; i < len(msg) && msg[i] >= '0' && msg[i] <= '9'; i++ {
		if i-start >= 19 {
			return 0, false
		}
		n = n*10 + int64(msg[i]-'0')
	}
	if i == start {
		return 0, false
	}
	return n, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
