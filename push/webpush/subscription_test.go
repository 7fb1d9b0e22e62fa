package webpush

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseSubscription(t *testing.T) {
	ua := mustB64(t, rfcUAPublic)
	offCurve := append([]byte{4}, make([]byte, 64)...)
	compressed := append([]byte{2}, ua[1:33]...)
	std := base64.StdEncoding.EncodeToString(ua) // padded, maybe with + and /
	const ep = "https://fcm.googleapis.com/fcm/send/abc:def"
	tcs := []struct {
		name, endpoint, p256dh, auth string
		err                          error
	}{
		{"browser encoding", ep, rfcUAPublic, rfcAuth, nil},
		{"padded standard base64", ep, std, rfcAuth + "==", nil},
		{"compressed point", ep, base64.RawURLEncoding.EncodeToString(compressed), rfcAuth, ErrBadKeys},
		{"point off the curve", ep, base64.RawURLEncoding.EncodeToString(offCurve), rfcAuth, ErrBadKeys},
		{"short auth", ep, rfcUAPublic, base64.RawURLEncoding.EncodeToString(make([]byte, 15)), ErrBadKeys},
		{"auth not base64", ep, rfcUAPublic, "!!!!", ErrBadKeys},
		{"empty keys", ep, "", "", ErrBadKeys},
		{"no scheme", "fcm.googleapis.com/fcm/send/x", rfcUAPublic, rfcAuth, ErrBadEndpoint},
		{"ftp", "ftp://push.example/x", rfcUAPublic, rfcAuth, ErrBadEndpoint},
		{"no host", "https:///x", rfcUAPublic, rfcAuth, ErrBadEndpoint},
		{"too long", "https://push.example/" + strings.Repeat("a", MaxEndpointLength), rfcUAPublic, rfcAuth, ErrBadEndpoint},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSubscription(tc.endpoint, tc.p256dh, tc.auth)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "fcm") {
				t.Fatalf("error quotes the endpoint: %v", err)
			}
			if err == nil && (len(s.P256dh) != P256dhSize || len(s.Auth) != AuthSize || s.Endpoint != tc.endpoint) {
				t.Fatalf("subscription %+v", s)
			}
		})
	}
}

func TestParseSubscriptionJSON(t *testing.T) {
	s, err := ParseSubscriptionJSON([]byte(`{"endpoint":"https://updates.push.services.mozilla.com/wpush/v2/gAAA","expirationTime":null,"keys":{"p256dh":"` + rfcUAPublic + `","auth":"` + rfcAuth + `"}}`))
	if err != nil || s.Endpoint != "https://updates.push.services.mozilla.com/wpush/v2/gAAA" {
		t.Fatalf("%+v, %v", s, err)
	}
	if _, err := ParseSubscriptionJSON([]byte(`{"endpoint":"https://x.example/a","keys":{}}`)); !errors.Is(err, ErrBadKeys) {
		t.Fatalf("no keys: %v", err)
	}
	if _, err := ParseSubscriptionJSON([]byte(`[`)); err == nil {
		t.Fatal("bad JSON accepted")
	}
}

func TestCheckEndpoint(t *testing.T) {
	tcs := []struct {
		name, endpoint string
		allowLocal     bool
		err            error
	}{
		{"fcm", "https://fcm.googleapis.com/fcm/send/tok", false, nil},
		{"apple", "https://web.push.apple.com/QGu", false, nil},
		{"http refused", "http://push.example/tok", false, ErrEndpointNotAllowed},
		{"IPv4 literal", "https://127.0.0.1/tok", false, ErrEndpointNotAllowed},
		{"public IPv4 literal", "https://8.8.8.8/tok", false, ErrEndpointNotAllowed},
		{"IPv6 literal", "https://[::1]:8443/tok", false, ErrEndpointNotAllowed},
		{"localhost", "https://LocalHost./tok", false, ErrEndpointNotAllowed},
		{"sub.localhost", "https://a.localhost/tok", false, ErrEndpointNotAllowed},
		{"credentials", "https://u:p@push.example/tok", false, ErrEndpointNotAllowed},
		{"garbage", "https://%zz/", false, ErrBadEndpoint},
		{"local allowed", "http://127.0.0.1:8080/wp/1", true, nil},
		{"local still needs a URL", "127.0.0.1:8080", true, ErrBadEndpoint},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckEndpoint(tc.endpoint, tc.allowLocal)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "tok") {
				t.Fatalf("error quotes the endpoint: %v", err)
			}
		})
	}
}

func TestAudience(t *testing.T) {
	for in, want := range map[string]string{
		"https://fcm.googleapis.com/fcm/send/x":     "https://fcm.googleapis.com",
		"https://Web.Push.Apple.com:443/x":          "https://web.push.apple.com",
		"https://push.example:8443/x":               "https://push.example:8443",
		"http://127.0.0.1:9000/wp/1":                "http://127.0.0.1:9000",
		"http://[::1]:80/wp":                        "http://[::1]",
		"https://wns2-par02p.notify.windows.com/w/": "https://wns2-par02p.notify.windows.com",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := audience(u); got != want {
			t.Errorf("audience(%s) = %s, want %s", in, got, want)
		}
	}
}

// Parsing never panics and its errors never quote the endpoint.
func FuzzParseSubscriptionJSON(f *testing.F) {
	f.Add([]byte(`{"endpoint":"https://fcm.googleapis.com/fcm/send/SECRET","keys":{"p256dh":"` + rfcUAPublic + `","auth":"` + rfcAuth + `"}}`))
	f.Add([]byte(`{"endpoint":"https://%zzSECRET","keys":{"p256dh":"","auth":""}}`))
	f.Add([]byte(`{"endpoint":"http://[::1]:80/SECRET","keys":{"p256dh":"BA","auth":"=="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSubscriptionJSON(b)
		if err != nil {
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error quotes the endpoint: %v", err)
			}
			return
		}
		if _, err := s.uaPublic(); err != nil {
			t.Fatalf("accepted keys that do not parse: %v", err)
		}
		_ = CheckEndpoint(s.Endpoint, false)
	})
}

func TestHostAllowed(t *testing.T) {
	for ep, ok := range map[string]bool{
		"https://fcm.googleapis.com/fcm/send/x":                true,
		"https://web.push.apple.com/QGu":                       true,
		"https://wns2-par02p.notify.windows.com/w/?token=x":    true,
		"https://updates.push.services.mozilla.com/wpush/v2/x": true,
		"https://FCM.GoogleAPIs.com./fcm/send/x":               true,
		"https://googleapis.com/x":                             false,
		"https://evilgoogleapis.com/x":                         false,
		"https://fcm.googleapis.com.evil.example/x":            false,
		"https://push.example/x":                               false,
		"https://%zz/":                                         false,
	} {
		if got := HostAllowed(ep, DefaultAllowedHosts); got != ok {
			t.Errorf("HostAllowed(%s) = %v, want %v", ep, got, ok)
		}
	}
	if !HostAllowed("https://push.example/x", []string{"Push.Example"}) {
		t.Error("exact host not matched")
	}
}
