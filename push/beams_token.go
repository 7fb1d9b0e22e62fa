package push

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// maxBeamsToken bounds a Beams user token (the Node SDK's are ~250 bytes).
const maxBeamsToken = 4096

// BeamsIssuer is the issuer of the Beams user tokens of an instance, as
// the server SDKs' generateToken sets it.
func BeamsIssuer(instanceID string) string {
	return "https://" + instanceID + ".pushnotifications.pusher.com"
}

// verifyBeamsToken checks a Beams user token, the JWT that the server
// SDKs' generateToken(userId) makes, at now: HS256 (no other algorithm)
// signed with one of keys (the app's Beams keys: the previous one during
// its grace period), issued by BeamsIssuer(instanceID), with an exp in the
// future and no nbf in the future. It returns the token's subject, the
// user id.
//
// A token is a bearer credential until it expires, as in Beams: it carries
// no nonce, so it binds any device of the instance to its user until exp.
func verifyBeamsToken(token, instanceID string, keys []string, now time.Time) (userID string, e *apiError) {
	bad := func(why string) (string, *apiError) {
		return "", errorf(401, "Unauthorized", "invalid Beams user token: %s", why)
	}
	if token == "" || len(token) > maxBeamsToken {
		return bad("missing or too long")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return bad("not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if !decodeJWTPart(parts[0], &header) {
		return bad("bad header")
	}
	if header.Alg != "HS256" {
		return bad("the algorithm must be HS256")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != sha256.Size {
		return bad("bad signature")
	}
	signed := false
	for _, k := range keys {
		m := hmac.New(sha256.New, []byte(k))
		m.Write([]byte(parts[0] + "." + parts[1]))
		if hmac.Equal(m.Sum(nil), sig) {
			signed = true
		}
	}
	if !signed || len(keys) == 0 {
		return bad("wrong signature")
	}
	var claims struct {
		Sub string   `json:"sub"`
		Iss string   `json:"iss"`
		Exp *float64 `json:"exp"`
		Nbf *float64 `json:"nbf"`
	}
	if !decodeJWTPart(parts[1], &claims) {
		return bad("bad claims")
	}
	if claims.Iss != BeamsIssuer(instanceID) {
		return bad("wrong issuer")
	}
	if claims.Exp == nil || math.IsNaN(*claims.Exp) || float64(now.Unix()) >= *claims.Exp {
		return bad("expired or without exp")
	}
	if claims.Nbf != nil && float64(now.Unix()) < *claims.Nbf {
		return bad("not valid yet")
	}
	if e := checkUserID(claims.Sub); e != nil {
		return bad("bad subject")
	}
	return claims.Sub, nil
}

func decodeJWTPart(s string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && json.Unmarshal(b, v) == nil
}
