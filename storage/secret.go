package storage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// NewSecret returns a fresh app secret: 40 random hex digits.
func NewSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("storage: new secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// NewBeamsKey returns a fresh Beams secret key: 64 random upper-case hex
// digits, the form Pusher Beams gives its keys.
func NewBeamsKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("storage: new beams key: %w", err)
	}
	return strings.ToUpper(hex.EncodeToString(b)), nil
}
