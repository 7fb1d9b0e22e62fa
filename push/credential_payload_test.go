package push

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzCredentialBody feeds arbitrary PUT bodies to every provider's
// parser: no panic, and every refusal is a CredentialError with a 4xx
// status (never a 500 for a tenant's input).
func FuzzCredentialBody(f *testing.F) {
	f.Add([]byte(`{"team_id":"TEAM123456","key_id":"KEY1234567","p8":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`))
	f.Add([]byte(`{"service_account":{"type":"service_account","project_id":"p","client_email":"a@b","private_key":"x"}}`))
	f.Add([]byte(`{"service_account":"{\"type\":\"service_account\"}"}`))
	f.Add([]byte(`{"subject":"mailto:a@example.com","private_key":"AAAA"}`))
	f.Add([]byte(`{"subject":"https://example.com","private_key":"` + "x" + `","public_key":"y"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range CredentialProviders {
			parsed, err := parseCredential(p, body)
			if err != nil {
				var ce *CredentialError
				if !errors.As(err, &ce) || ce.Status < 400 || ce.Status >= 500 || ce.Code == "" || ce.Description == "" {
					t.Fatalf("%s: refusal %T %v", p, err, err)
				}
				continue
			}
			// What is accepted opens again for the builder.
			if !json.Valid(parsed.plain) || parsed.fingerprint == "" {
				t.Fatalf("%s: accepted %q as %q", p, body, parsed.plain)
			}
			if _, err := openCredential("a", p, 1, parsed.plain); err != nil {
				t.Fatalf("%s: accepted but does not open: %v", p, err)
			}
		}
	})
}
