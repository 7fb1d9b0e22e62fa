package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
)

// The token verifies with the public key when r and s are read as the two
// 32-byte halves of the signature (raw, not ASN.1).
func TestSignES256RawSignature(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ { // leading zeros in r or s must still give 64 bytes
		tok, err := SignES256(key, map[string]string{"alg": "ES256", "kid": "ABC123DEFG"}, map[string]any{"iss": "TEAM", "iat": 1})
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q", tok)
		}
		sig, err := b64.DecodeString(parts[2])
		if err != nil || len(sig) != 64 {
			t.Fatalf("signature of %d bytes (%v), want 64 raw", len(sig), err)
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(&key.PublicKey, sha256Sum(parts[0]+"."+parts[1]), r, s) {
			t.Fatal("signature does not verify")
		}
		var claims map[string]any
		c, _ := b64.DecodeString(parts[1])
		if err := json.Unmarshal(c, &claims); err != nil || claims["iss"] != "TEAM" {
			t.Fatalf("claims %s", c)
		}
	}
}

func TestParseP8(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	got, err := ParseP8(good)
	if err != nil || !got.Equal(key) {
		t.Fatalf("ParseP8: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.MarshalPKCS8PrivateKey(p384)
	for name, in := range map[string][]byte{
		"not PEM":   []byte("hello"),
		"not PKCS8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"P-384":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der384}),
	} {
		if _, err := ParseP8(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := SignES256(p384, nil, nil); err == nil {
		t.Error("SignES256 accepted a P-384 key")
	}
}
