package push

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// envelopePrefix starts every sealed credential: the format version, then
// the key id of the encryption key, then base64(nonce ‖ ciphertext ‖ tag)
// (spec §4.5 "Storage"). The key id lets a future master-key rotation tell
// which key sealed a blob, and lets an operator who started the server
// with the wrong key get a clear error rather than "authentication failed".
const envelopePrefix = "sockudo-credential:v1:"

var (
	// ErrCredentialKeyMissing is returned by every operation that needs to
	// seal or open a credential when the server has no credential
	// encryption key (PUSH_CREDENTIAL_ENCRYPTION_KEY or _FILE).
	ErrCredentialKeyMissing = errors.New("push credential encryption key not configured: set " +
		"PUSH_CREDENTIAL_ENCRYPTION_KEY (32 bytes in base64) or PUSH_CREDENTIAL_ENCRYPTION_KEY_FILE")
	// ErrCredentialOtherKey is returned when a credential was sealed with
	// another encryption key than the configured one.
	ErrCredentialOtherKey = errors.New("push: credential sealed with another encryption key")
	// ErrCredentialTampered is returned when a sealed credential fails
	// authentication: it was altered, or moved to another app, provider or
	// version.
	ErrCredentialTampered = errors.New("push: sealed credential failed authentication")
)

// sealer encrypts credentials with AES-256-GCM. It is safe for concurrent
// use (cipher.AEAD from crypto/cipher is).
type sealer struct {
	aead cipher.AEAD
	// kid names the key without revealing it: a hash of a 256-bit random
	// key tells nothing about the key.
	kid string
	// previous open what earlier keys sealed, by key id; they never seal.
	previous map[string]cipher.AEAD
}

// newSealer seals with key and opens with key and the previous keys (a
// master-key rotation in progress).
func newSealer(key []byte, previous ...[]byte) (*sealer, error) {
	aead, kid, err := keyAEAD(key)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead, kid: kid, previous: map[string]cipher.AEAD{}}
	for _, k := range previous {
		a, id, err := keyAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("previous key: %w", err)
		}
		if id != kid {
			s.previous[id] = a
		}
	}
	return s, nil
}

func keyAEAD(key []byte) (cipher.AEAD, string, error) {
	if len(key) != 32 {
		return nil, "", errors.New("push: the credential encryption key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, "", fmt.Errorf("push: credential key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, "", fmt.Errorf("push: credential key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("sockudo push credential key id\x00"), key...))
	return aead, hex.EncodeToString(sum[:4]), nil
}

// keyID returns the id of the key that sealed blob, "" when blob is not an
// envelope.
func keyID(blob []byte) string {
	rest, ok := bytes.CutPrefix(blob, []byte(envelopePrefix))
	if !ok {
		return ""
	}
	kid, _, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return ""
	}
	return string(kid)
}

// additionalData binds a sealed blob to where it is stored, so a blob
// copied to another app, provider or version does not open.
func additionalData(app string, p CredentialProvider, version uint64) []byte {
	return []byte("sockudo push credential\x00" + app + "\x00" + string(p) + "\x00" + strconv.FormatUint(version, 10))
}

// seal encrypts plaintext for (app, p, version) with a fresh random nonce.
func (s *sealer) seal(app string, p CredentialProvider, version uint64, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("push: seal credential: %w", err)
	}
	ct := s.aead.Seal(nonce, nonce, plaintext, additionalData(app, p, version))
	out := make([]byte, 0, len(envelopePrefix)+len(s.kid)+1+base64.StdEncoding.EncodedLen(len(ct)))
	out = append(out, envelopePrefix...)
	out = append(out, s.kid...)
	out = append(out, ':')
	return base64.StdEncoding.AppendEncode(out, ct), nil
}

// open decrypts a blob sealed for (app, p, version).
func (s *sealer) open(app string, p CredentialProvider, version uint64, blob []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(blob, []byte(envelopePrefix))
	if !ok {
		return nil, fmt.Errorf("%w: unknown envelope", ErrCredentialTampered)
	}
	kid, b64, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return nil, fmt.Errorf("%w: unknown envelope", ErrCredentialTampered)
	}
	aead := s.aead
	if string(kid) != s.kid {
		if aead = s.previous[string(kid)]; aead == nil {
			return nil, fmt.Errorf("%w (key id %s; the configured key is %s)", ErrCredentialOtherKey, kid, s.kid)
		}
	}
	ct, err := base64.StdEncoding.AppendDecode(nil, b64)
	if err != nil || len(ct) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: malformed envelope", ErrCredentialTampered)
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, ct[:n], ct[n:], additionalData(app, p, version))
	if err != nil {
		return nil, ErrCredentialTampered
	}
	return pt, nil
}
