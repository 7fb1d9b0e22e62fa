package push

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const tokenTestKey = "BEAMS0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"

// sdkToken was made by @pusher/push-notifications-server 1.2.7's
// generateToken("alice") for instance "app" with tokenTestKey, at iat
// 1796213462 (exp 24 hours later).
const sdkToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3OTYyMTM0NjIsImV4cCI6MTc5NjI5OTg2MiwiaXNzIjoiaHR0cHM6Ly9hcHAucHVzaG5vdGlmaWNhdGlvbnMucHVzaGVyLmNvbSIsInN1YiI6ImFsaWNlIn0.tzo5vUnhMOGc8Q4PGfMXksfeZFm7va1ByAbOWKVtqIE"

// makeToken signs header and claims with key, as jsonwebtoken does.
func makeToken(t *testing.T, header, claims map[string]any, key string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyBeamsToken(t *testing.T) {
	now := time.Unix(1796213462+3600, 0)
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"iat": now.Unix() - 10, "exp": now.Unix() + 3600, "iss": BeamsIssuer("app"), "sub": "alice"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	good := makeToken(t, hs256, claims(), tokenTestKey)
	parts := strings.Split(good, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	tcs := []struct {
		name, token string
		keys        []string
		at          time.Time
		want        string // the user; "" means refused
	}{
		{"the Node SDK's generateToken", sdkToken, []string{tokenTestKey}, now, "alice"},
		{"the Node SDK's token after 24h", sdkToken, []string{tokenTestKey}, time.Unix(1796299862, 0), ""},
		{"valid", good, []string{tokenTestKey}, now, "alice"},
		{"previous key during grace", good, []string{"NEWKEY", tokenTestKey}, now, "alice"},
		{"replayed: still valid until exp", good, []string{tokenTestKey}, now.Add(59 * time.Minute), "alice"},
		{"replayed after exp", good, []string{tokenTestKey}, now.Add(time.Hour), ""},
		{"wrong key", good, []string{"OTHERKEY"}, now, ""},
		{"no keys", good, nil, now, ""},
		{"signed with the key but for another instance", makeToken(t, hs256, claims("iss", BeamsIssuer("other")), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"wrong issuer scheme", makeToken(t, hs256, claims("iss", "http://app.pushnotifications.pusher.com"), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"no issuer", makeToken(t, hs256, claims("iss", nil), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"expired", makeToken(t, hs256, claims("exp", now.Unix()-1), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"no exp", makeToken(t, hs256, claims("exp", nil), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"exp not a number", makeToken(t, hs256, claims("exp", "tomorrow"), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"not before later", makeToken(t, hs256, claims("nbf", now.Unix()+60), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"no subject", makeToken(t, hs256, claims("sub", nil), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"subject too long", makeToken(t, hs256, claims("sub", strings.Repeat("u", 1000)), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"alg none", none, []string{tokenTestKey}, now, ""},
		{"alg HS512 header", makeToken(t, map[string]any{"alg": "HS512"}, claims(), tokenTestKey), []string{tokenTestKey}, now, ""},
		{"payload changed after signing", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":9999999999,"iss":"`+BeamsIssuer("app")+`","sub":"mallory"}`)) + "." + parts[2], []string{tokenTestKey}, now, ""},
		{"two parts", parts[0] + "." + parts[1], []string{tokenTestKey}, now, ""},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".***", []string{tokenTestKey}, now, ""},
		{"empty", "", []string{tokenTestKey}, now, ""},
		{"huge", strings.Repeat("a", maxBeamsToken+1), []string{tokenTestKey}, now, ""},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			user, e := verifyBeamsToken(tc.token, "app", tc.keys, tc.at)
			if user != tc.want || (tc.want == "") != (e != nil) {
				t.Fatalf("got %q, %v; want %q", user, e, tc.want)
			}
			if e != nil && (e.status != 401 || strings.Contains(e.descr, tokenTestKey)) {
				t.Fatalf("refusal %+v", e)
			}
		})
	}
}
