package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sockudo/sockudo/push/internal/jws"
)

// VAPID token lifetimes (RFC 8292 §2: exp at most 24 hours ahead; Apple
// refuses more than one day).
const (
	// TokenLifetime is how far ahead a VAPID JWT's exp is set.
	TokenLifetime = 12 * time.Hour
	// tokenMargin is how long before exp a cached token stops being used,
	// so one sent late or to a push service with a skewed clock is still
	// valid when checked.
	tokenMargin = time.Hour
	// maxCachedAudiences bounds the token cache. Audiences are push service
	// origins: a handful, plus one per WNS host.
	maxCachedAudiences = 1024
)

// ErrBadVAPIDKey is wrapped by ParseVAPIDKey's errors.
var ErrBadVAPIDKey = errors.New("webpush: invalid VAPID key")

// ErrBadSubject is wrapped by CheckSubject's errors.
var ErrBadSubject = errors.New("webpush: invalid VAPID subject")

// VAPIDKey is an application server's P-256 key pair (RFC 8292 §3.2).
// Browsers bind a subscription to its public key
// (applicationServerKey), so a key is kept as long as subscriptions made
// with it are. A VAPIDKey is immutable and safe for concurrent use.
type VAPIDKey struct {
	priv   *ecdsa.PrivateKey
	public string // base64url of the 65-byte uncompressed point
}

// GenerateVAPIDKey makes a new key pair.
func GenerateVAPIDKey() (*VAPIDKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webpush: generate VAPID key: %w", err)
	}
	return newVAPIDKey(priv)
}

// ParseVAPIDKey reads a private key as PrivateKey stores it: the 32-byte
// scalar in base64url, the format of the web-push libraries' "VAPID
// private key". The public key is derived from it.
func ParseVAPIDKey(private string) (*VAPIDKey, error) {
	raw, err := decodeB64(private)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadVAPIDKey)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a P-256 private key", ErrBadVAPIDKey)
	}
	return newVAPIDKey(priv)
}

func newVAPIDKey(priv *ecdsa.PrivateKey) (*VAPIDKey, error) {
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadVAPIDKey, err)
	}
	return &VAPIDKey{priv: priv, public: base64.RawURLEncoding.EncodeToString(pub)}, nil
}

// PublicKey is the public key in base64url (65 bytes uncompressed): the
// applicationServerKey a browser subscribes with, and the k= parameter.
func (k *VAPIDKey) PublicKey() string { return k.public }

// PrivateKey is the private key in base64url (32 bytes), for storage. It
// is a secret: never log it.
func (k *VAPIDKey) PrivateKey() string {
	raw, err := k.priv.Bytes()
	if err != nil { // a key built by this package is always valid
		panic("webpush: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// CheckSubject checks a VAPID sub claim (RFC 8292 §2.1): a mailto: URI
// with a real address, or an https: URL. Apple refuses a missing subject
// and addresses at localhost.
func CheckSubject(sub string) error {
	switch {
	case strings.HasPrefix(sub, "mailto:"):
		addr, err := mail.ParseAddress(strings.TrimPrefix(sub, "mailto:"))
		if err != nil || addr.Name != "" {
			return fmt.Errorf("%w: mailto: needs a bare address", ErrBadSubject)
		}
		_, domain, _ := strings.Cut(addr.Address, "@")
		if d := strings.TrimSuffix(strings.ToLower(domain), "."); d == "localhost" || strings.HasSuffix(d, ".localhost") || !strings.Contains(d, ".") {
			return fmt.Errorf("%w: the mailto: address needs a real domain", ErrBadSubject)
		}
		return nil
	case strings.HasPrefix(sub, "https:"):
		u, err := url.Parse(sub)
		if err != nil || u.Hostname() == "" || u.Hostname() == "localhost" {
			return fmt.Errorf("%w: https: needs a host", ErrBadSubject)
		}
		return nil
	}
	return fmt.Errorf("%w: not a mailto or https URI", ErrBadSubject)
}

// vapidSigner makes the Authorization header for one key and subject and
// caches it per audience.
type vapidSigner struct {
	key *VAPIDKey
	sub string
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]vapidToken // guarded by mu; audience → header
}

type vapidToken struct {
	header string
	exp    time.Time
}

func newVAPIDSigner(key *VAPIDKey, sub string, now func() time.Time) *vapidSigner {
	return &vapidSigner{key: key, sub: sub, now: now, tokens: make(map[string]vapidToken)}
}

// authorization returns "vapid t=<jwt>, k=<public key>" for aud (RFC 8292
// §3), reusing a token until tokenMargin before its exp.
func (s *vapidSigner) authorization(aud string) (string, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[aud]; ok && now.Before(t.exp.Add(-tokenMargin)) {
		return t.header, nil
	}
	// Signing under the lock keeps a burst to a new audience at one
	// signature; it takes tens of microseconds.
	exp := now.Add(TokenLifetime)
	jwt, err := jws.SignES256(s.key.priv, struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
	}{"JWT", "ES256"}, struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}{aud, exp.Unix(), s.sub})
	if err != nil {
		return "", err
	}
	if len(s.tokens) >= maxCachedAudiences {
		for a, t := range s.tokens {
			if !now.Before(t.exp.Add(-tokenMargin)) {
				delete(s.tokens, a)
			}
		}
		if len(s.tokens) >= maxCachedAudiences {
			clear(s.tokens)
		}
	}
	h := "vapid t=" + jwt + ", k=" + s.key.public
	s.tokens[aud] = vapidToken{header: h, exp: exp}
	return h, nil
}
