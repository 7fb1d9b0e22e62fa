package server

import (
	"testing"

	"github.com/sockudo/sockudo/storage"
)

func TestOriginMatrix(t *testing.T) {
	patterns := []string{"https://app.example.com", "https://*.example.org", "http://localhost:*", "HTTPS://Upper.Example.NET/"}
	cfg := newAppConfig(storage.App{ID: "a", Key: "k", Secret: "s", AllowedOrigins: patterns})
	tcs := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://APP.example.com", true}, // case-insensitive
		{"https://app.example.com/", true},
		{"http://app.example.com", false}, // scheme matters
		{"https://app.example.com:8443", false},
		{"https://evil.com?https://app.example.com", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://.example.org", false}, // the wildcard stands for at least one character
		{"https://example.org", false},
		{"https://example.org.evil.com", false},
		{"http://a.example.org", false},
		{"http://localhost:3000", true},
		{"http://localhost", false},
		{"https://upper.example.net", true},
		{"", true}, // no Origin: a non-browser client
		{"null", false},
	}
	for _, tc := range tcs {
		t.Run(tc.origin, func(t *testing.T) {
			if got := cfg.originAllowed(tc.origin); got != tc.want {
				t.Fatalf("originAllowed(%q) = %v, want %v", tc.origin, got, tc.want)
			}
		})
	}
	anyCfg := newAppConfig(storage.App{AllowedOrigins: []string{"*"}})
	if !anyCfg.originAllowed("https://whatever.test") {
		t.Fatal(`"*" refuses an origin`)
	}
	if !newAppConfig(storage.App{}).originAllowed("https://whatever.test") {
		t.Fatal("an empty list refuses an origin")
	}
}
