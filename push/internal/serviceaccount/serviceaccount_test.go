package serviceaccount

import (
	"slices"
	"strings"
	"testing"
)

func TestJWTConfig(t *testing.T) {
	tcs := []struct {
		name     string
		key      string
		tokenURL string
		err      string
	}{
		{"default token url", `{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"PEM","private_key_id":"kid"}`, TokenURL, ""},
		{"own token url", `{"type":"service_account","client_email":"a@b","private_key":"PEM","token_uri":"https://accounts.google.com/o/oauth2/token"}`, "https://accounts.google.com/o/oauth2/token", ""},
		{"other type", `{"type":"authorized_user"}`, "", `'type' field is "authorized_user"`},
		{"not json", `{`, "", "unexpected end"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			scopes := []string{"https://www.googleapis.com/auth/firebase.messaging"}
			c, err := JWTConfig([]byte(tc.key), scopes...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TokenURL != tc.tokenURL || c.Email == "" || string(c.PrivateKey) != "PEM" || !slices.Equal(c.Scopes, scopes) {
				t.Fatalf("config = %+v", c)
			}
			scopes[0] = "changed"
			if c.Scopes[0] == "changed" {
				t.Fatal("scopes not copied")
			}
		})
	}
}
