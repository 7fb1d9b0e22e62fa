package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

type vapidClaims struct {
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Sub string `json:"sub"`
}

// verifyVAPID checks an Authorization header as a push service does (RFC
// 8292 §3): the scheme, the JWT's header, its ES256 signature under the
// key in k=, and aud, exp and sub. It returns the claims and k.
func verifyVAPID(h, aud string, now time.Time) (vapidClaims, string, error) {
	var c vapidClaims
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return c, "", fmt.Errorf("scheme in %q", h)
	}
	var tok, k string
	for p := range strings.SplitSeq(rest, ",") {
		name, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "t":
			tok = v
		case "k":
			k = v
		}
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || k == "" {
		return c, "", errors.New("malformed t= or k=")
	}
	raw, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return c, "", err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return c, "", err
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(hdr) != `{"typ":"JWT","alg":"ES256"}` {
		return c, "", fmt.Errorf("JWT header %s", hdr)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return c, "", errors.New("signature is not raw r||s")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return c, "", errors.New("bad signature")
	}
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(body, &c); err != nil {
		return c, "", err
	}
	switch exp := time.Unix(c.Exp, 0); {
	case c.Aud != aud:
		return c, "", fmt.Errorf("aud %q, want %q", c.Aud, aud)
	case !exp.After(now) || exp.After(now.Add(24*time.Hour)):
		return c, "", fmt.Errorf("exp %v, now %v", exp, now)
	case CheckSubject(c.Sub) != nil:
		return c, "", fmt.Errorf("sub %q", c.Sub)
	}
	return c, k, nil
}

func TestVAPIDKeyRoundTrip(t *testing.T) {
	k, err := GenerateVAPIDKey()
	if err != nil {
		t.Fatal(err)
	}
	if pub := mustB64(t, k.PublicKey()); len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("public key of %d bytes", len(pub))
	}
	if len(mustB64(t, k.PrivateKey())) != 32 {
		t.Fatal("private key is not 32 bytes")
	}
	k2, err := ParseVAPIDKey(k.PrivateKey())
	if err != nil || k2.PublicKey() != k.PublicKey() {
		t.Fatalf("parse: %v", err)
	}
	// The RFC 8291 sender key doubles as a known P-256 scalar.
	k3, err := ParseVAPIDKey(rfcASPrivate)
	if err != nil || k3.PublicKey() != rfcASPublic {
		t.Fatalf("known key: %v", err)
	}
	for _, bad := range []string{"", "!!", base64.RawURLEncoding.EncodeToString(make([]byte, 32)), rfcASPublic} {
		if _, err := ParseVAPIDKey(bad); !errors.Is(err, ErrBadVAPIDKey) {
			t.Errorf("ParseVAPIDKey(%q): %v", bad, err)
		}
	}
}

func TestCheckSubject(t *testing.T) {
	for sub, ok := range map[string]bool{
		"mailto:ops@example.com":         true,
		"https://example.com/contact":    true,
		"mailto:ops@localhost":           false,
		"mailto:ops@LOCALHOST.":          false,
		"mailto:ops@intranet":            false,
		"mailto:Ops <ops@example.com>":   false,
		"mailto:":                        false,
		"ops@example.com":                false,
		"https://":                       false,
		"http://example.com":             false,
		"":                               false,
		"https://localhost/contact-page": false,
	} {
		if err := CheckSubject(sub); (err == nil) != ok {
			t.Errorf("CheckSubject(%q) = %v, want ok %v", sub, err, ok)
		}
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestVAPIDTokenCache(t *testing.T) {
	key, _ := GenerateVAPIDKey()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := newVAPIDSigner(key, "mailto:ops@example.com", clock.now)
	const fcm, moz = "https://fcm.googleapis.com", "https://updates.push.services.mozilla.com"

	h1, err := s.authorization(fcm)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := verifyVAPID(h1, fcm, clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if k != key.PublicKey() || c.Exp != clock.now().Add(12*time.Hour).Unix() || c.Sub != "mailto:ops@example.com" {
		t.Fatalf("claims %+v, k %s", c, k)
	}
	h2, _ := s.authorization(moz)
	if h2 == h1 {
		t.Fatal("one token for two audiences")
	}
	if _, _, err := verifyVAPID(h2, moz, clock.now()); err != nil {
		t.Fatal(err)
	}
	clock.add(11*time.Hour - time.Second)
	if h, _ := s.authorization(fcm); h != h1 {
		t.Fatal("token not reused within its lifetime minus the margin")
	}
	clock.add(time.Second)
	h3, _ := s.authorization(fcm)
	if h3 == h1 {
		t.Fatal("token reused inside the margin before exp")
	}
	if _, _, err := verifyVAPID(h3, fcm, clock.now()); err != nil {
		t.Fatal(err)
	}
}

func TestVAPIDTokenCacheBounded(t *testing.T) {
	key, _ := GenerateVAPIDKey()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := newVAPIDSigner(key, "mailto:ops@example.com", clock.now)
	for i := range maxCachedAudiences + 5 {
		if _, err := s.authorization(fmt.Sprintf("https://wns%d.notify.windows.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.tokens); n > maxCachedAudiences {
		t.Fatalf("%d cached tokens", n)
	}
}
