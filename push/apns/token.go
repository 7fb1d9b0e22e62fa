package apns

import (
	"crypto/ecdsa"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockudo/sockudo/push/internal/jws"
)

// Provider token ages (spec §2.1: refresh no more than once every 20 min
// and no less than once every 60 min).
const (
	// TokenRefresh is the age after which a provider token is replaced.
	TokenRefresh = 50 * time.Minute
	// MinTokenAge is the youngest a token may be when it is replaced on
	// an ExpiredProviderToken answer.
	MinTokenAge = 20 * time.Minute
)

// ProviderTokens signs and caches the provider token of one (team id,
// key id). It is safe for concurrent use; share one value among the
// Clients of the same key so that the key has one token on the node.
type ProviderTokens struct {
	teamID, keyID string
	key           *ecdsa.PrivateKey
	now           func() time.Time

	cur atomic.Pointer[providerToken] // read without mu on the hot path
	mu  sync.Mutex                    // serialises signing
	// signed counts tokens signed, for tests and metrics.
	signed atomic.Int64
}

type providerToken struct {
	jwt string
	iat time.Time
}

// NewProviderTokens parses the .p8 key (PKCS#8 PEM, EC P-256). now is the
// clock; nil means time.Now. It signs nothing until the first use.
func NewProviderTokens(teamID, keyID string, p8 []byte, now func() time.Time) (*ProviderTokens, error) {
	if teamID == "" || keyID == "" {
		return nil, fmt.Errorf("apns: team id and key id are required")
	}
	key, err := jws.ParseP8(p8)
	if err != nil {
		return nil, fmt.Errorf("apns: key %s: %w", keyID, err)
	}
	if now == nil {
		now = time.Now
	}
	return &ProviderTokens{teamID: teamID, keyID: keyID, key: key, now: now}, nil
}

// Signed is the number of tokens signed so far.
func (p *ProviderTokens) Signed() int64 { return p.signed.Load() }

// token returns the cached token, signing a new one when there is none or
// it is TokenRefresh old.
func (p *ProviderTokens) token() (*providerToken, error) {
	if t := p.cur.Load(); t != nil && p.now().Sub(t.iat) < TokenRefresh {
		return t, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.cur.Load(); t != nil && p.now().Sub(t.iat) < TokenRefresh {
		return t, nil
	}
	return p.signLocked()
}

// expired handles an ExpiredProviderToken answer to used. It returns the
// token to retry with, or nil when no retry is allowed: used is younger
// than MinTokenAge, so a new one would risk TooManyProviderTokenUpdates.
// Concurrent callers that saw the same expired token share one new token.
func (p *ProviderTokens) expired(used *providerToken) (*providerToken, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.cur.Load(); t != used {
		return t, nil // another sender already replaced it
	}
	if p.now().Sub(used.iat) < MinTokenAge {
		return nil, nil
	}
	return p.signLocked()
}

// signLocked signs and caches a token. Lock mu.
func (p *ProviderTokens) signLocked() (*providerToken, error) {
	now := p.now()
	s, err := jws.SignES256(p.key,
		struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		}{"ES256", p.keyID},
		struct {
			Iss string `json:"iss"`
			Iat int64  `json:"iat"`
		}{p.teamID, now.Unix()})
	if err != nil {
		return nil, fmt.Errorf("apns: sign provider token: %w", err)
	}
	t := &providerToken{jwt: s, iat: now}
	p.cur.Store(t)
	p.signed.Add(1)
	return t, nil
}
