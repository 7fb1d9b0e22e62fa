// Package serviceaccount reads a Google service account key (the JSON file
// FCM credentials carry) into the x/oauth2 JWT flow that mints FCM access
// tokens. It is what golang.org/x/oauth2/google.JWTConfigFromJSON does for
// a service account, without importing that package: it links and
// initialises the external-account, impersonation and metadata-server
// support (about 20 KiB of heap and the pages of their code at every
// start) that a service-account key never uses.
package serviceaccount

import (
	"encoding/json"
	"fmt"

	"golang.org/x/oauth2/jwt"
)

// TokenURL is Google's OAuth 2.0 token endpoint, used when the key names
// none (google.JWTTokenURL).
const TokenURL = "https://oauth2.googleapis.com/token"

// key is the part of a service account key file the JWT flow uses.
type key struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	TokenURL     string `json:"token_uri"`
	Audience     string `json:"audience"`
}

// JWTConfig parses a service account key file and returns the JWT flow
// for scopes, as google.JWTConfigFromJSON does: a key of another type is an
// error, and a key without token_uri uses TokenURL.
func JWTConfig(keyJSON []byte, scopes ...string) (*jwt.Config, error) {
	var k key
	if err := json.Unmarshal(keyJSON, &k); err != nil {
		return nil, err
	}
	if k.Type != "service_account" {
		return nil, fmt.Errorf("read JWT from JSON credentials: 'type' field is %q (expected %q)", k.Type,
			"service_account")
	}
	c := &jwt.Config{
		Email:        k.ClientEmail,
		PrivateKey:   []byte(k.PrivateKey),
		PrivateKeyID: k.PrivateKeyID,
		Scopes:       append([]string(nil), scopes...),
		TokenURL:     k.TokenURL,
		Audience:     k.Audience,
	}
	if c.TokenURL == "" {
		c.TokenURL = TokenURL
	}
	return c, nil
}
