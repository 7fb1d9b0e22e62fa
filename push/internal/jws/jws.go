// Package jws signs the compact ES256 JSON Web Tokens that APNs (provider
// tokens) and Web Push (VAPID, RFC 8292) expect. The signature is raw
// r‖s, 64 bytes, base64url (RFC 7518 §3.4), not ASN.1.
package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

var b64 = base64.RawURLEncoding

// SignES256 returns header.claims.signature for the JSON of header and
// claims, signed with key (P-256).
func SignES256(key *ecdsa.PrivateKey, header, claims any) (string, error) {
	if key.Curve != elliptic.P256() {
		return "", errors.New("jws: ES256 needs a P-256 key")
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("jws: header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jws: claims: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	der, err := ecdsa.SignASN1(rand.Reader, key, sha256Sum(signing))
	if err != nil {
		return "", fmt.Errorf("jws: sign: %w", err)
	}
	raw, err := rawSignature(der)
	if err != nil {
		return "", err
	}
	return signing + "." + b64.EncodeToString(raw), nil
}

// ParseP8 reads a PKCS#8 PEM EC P-256 private key (an APNs .p8 file).
func ParseP8(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("jws: no PEM block in the key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("jws: parse PKCS#8 key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("jws: the key is not an EC P-256 key")
	}
	return ec, nil
}
