package storage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// NewSecret returns a fresh app secret: 40 random hex digits.
func NewSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("storage: new secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
