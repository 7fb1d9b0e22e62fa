package webpush

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Sizes of a subscription's keys (RFC 8291 §2, §3.2).
const (
	// P256dhSize is the size of the user agent's public key: an
	// uncompressed P-256 point.
	P256dhSize = 65
	// AuthSize is the size of the authentication secret.
	AuthSize = 16
	// MaxEndpointLength bounds an endpoint URL; real ones are a few hundred
	// bytes.
	MaxEndpointLength = 2048
)

// Errors of ParseSubscription and CheckEndpoint. Their text never quotes
// the endpoint.
var (
	// ErrBadKeys: p256dh is not a 65-byte uncompressed P-256 point or auth
	// is not 16 bytes.
	ErrBadKeys = errors.New("webpush: invalid subscription keys")
	// ErrBadEndpoint: the endpoint is not an absolute http(s) URL.
	ErrBadEndpoint = errors.New("webpush: invalid endpoint")
	// ErrEndpointNotAllowed: the endpoint breaks the SSRF rules (not https,
	// an IP literal, credentials in the URL).
	ErrEndpointNotAllowed = errors.New("webpush: endpoint not allowed")
)

// Subscription is where and for whom a notification is encrypted: a
// browser's PushSubscription. The zero value is not valid; build one with
// ParseSubscription or fill it and let Send validate it.
type Subscription struct {
	// Endpoint is the push service URL. It embeds the device's token:
	// treat it as a secret in logs.
	Endpoint string
	// P256dh is the user agent's public key, 65 bytes uncompressed.
	P256dh []byte
	// Auth is the user agent's authentication secret, 16 bytes.
	Auth []byte
}

// ParseSubscription builds a Subscription from the strings a browser hands
// out (PushSubscription.toJSON: keys in base64url; padded or standard
// base64 is accepted too). It checks the keys and that the endpoint is an
// absolute http(s) URL; the SSRF policy is CheckEndpoint's.
func ParseSubscription(endpoint, p256dh, auth string) (Subscription, error) {
	if _, err := parseEndpoint(endpoint); err != nil {
		return Subscription{}, err
	}
	p, err := decodeB64(p256dh)
	if err != nil {
		return Subscription{}, fmt.Errorf("%w: p256dh is not base64url", ErrBadKeys)
	}
	a, err := decodeB64(auth)
	if err != nil {
		return Subscription{}, fmt.Errorf("%w: auth is not base64url", ErrBadKeys)
	}
	s := Subscription{Endpoint: endpoint, P256dh: p, Auth: a}
	if _, err := s.uaPublic(); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// ParseSubscriptionJSON parses the JSON of PushSubscription.toJSON():
// {"endpoint":…,"expirationTime":…,"keys":{"p256dh":…,"auth":…}}, with
// ParseSubscription's checks.
func ParseSubscriptionJSON(b []byte) (Subscription, error) {
	var v struct {
		Endpoint string `json:"endpoint"`
		Keys     struct {
			P256dh string `json:"p256dh"`
			Auth   string `json:"auth"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Subscription{}, fmt.Errorf("webpush: subscription JSON: %w", err)
	}
	return ParseSubscription(v.Endpoint, v.Keys.P256dh, v.Keys.Auth)
}

// uaPublic validates the keys and returns the user agent's public key.
func (s Subscription) uaPublic() (*ecdh.PublicKey, error) {
	if len(s.Auth) != AuthSize {
		return nil, fmt.Errorf("%w: auth is %d bytes, want %d", ErrBadKeys, len(s.Auth), AuthSize)
	}
	if len(s.P256dh) != P256dhSize {
		return nil, fmt.Errorf("%w: p256dh is %d bytes, want %d", ErrBadKeys, len(s.P256dh), P256dhSize)
	}
	pub, err := ecdh.P256().NewPublicKey(s.P256dh)
	if err != nil {
		return nil, fmt.Errorf("%w: p256dh is not an uncompressed P-256 point", ErrBadKeys)
	}
	return pub, nil
}

// CheckEndpoint applies the SSRF rules to an endpoint (spec §2.3): an
// absolute https URL, no IP literal host, no credentials. allowLocal lifts
// the scheme and IP-literal rules (tests and development; the address check
// at dial time is lifted by the HTTP client's own AllowLocal). The address
// a name resolves to is checked when dialling, not here.
func CheckEndpoint(endpoint string, allowLocal bool) error {
	u, err := parseEndpoint(endpoint)
	if err != nil {
		return err
	}
	if allowLocal {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: https required", ErrEndpointNotAllowed)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL", ErrEndpointNotAllowed)
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return fmt.Errorf("%w: IP literal host", ErrEndpointNotAllowed)
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: localhost", ErrEndpointNotAllowed)
	}
	return nil
}

// DefaultAllowedHosts are the push services of the major browsers
// (Chrome/Edge via FCM, Safari, Edge via WNS, Firefox), for
// Config.AllowedHosts (spec §1.2: Centrifugo's default list).
var DefaultAllowedHosts = []string{
	"*.googleapis.com",
	"*.push.apple.com",
	"*.notify.windows.com",
	"*.push.services.mozilla.com",
}

// HostAllowed reports whether an endpoint's host matches one of patterns:
// an exact host name, or "*.suffix" for any name below suffix (not suffix
// itself). Matching ignores case and a trailing dot.
func HostAllowed(endpoint string, patterns []string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	for _, p := range patterns {
		p = strings.ToLower(p)
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// parseEndpoint parses an absolute http(s) URL with a host.
func parseEndpoint(endpoint string) (*url.URL, error) {
	if len(endpoint) > MaxEndpointLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadEndpoint, MaxEndpointLength)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		// url's error quotes the URL: keep it out.
		return nil, fmt.Errorf("%w: not a URL", ErrBadEndpoint)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("%w: scheme must be https", ErrBadEndpoint)
	}
	if u.Hostname() == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: no host", ErrBadEndpoint)
	}
	return u, nil
}

// audience is the VAPID aud claim: the endpoint's origin (RFC 8292 §2),
// serialised as browsers do (lower case, no default port).
func audience(u *url.URL) string {
	host := strings.ToLower(u.Host)
	if p := u.Port(); (p == "443" && u.Scheme == "https") || (p == "80" && u.Scheme == "http") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host
}

// decodeB64 decodes base64url without padding, the browsers' encoding,
// tolerating padding and the standard alphabet.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}
