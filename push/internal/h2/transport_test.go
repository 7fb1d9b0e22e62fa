package h2

import "testing"

func TestTransportProtocols(t *testing.T) {
	tcs := []struct {
		name                    string
		cfg                     Config
		http1, http2, cleartext bool
	}{
		{name: "default: HTTP/2 attempted, HTTP/1.1 allowed", cfg: Config{}},
		{name: "HTTP/2 only", cfg: Config{Only: true}, http2: true},
		{name: "h2c", cfg: Config{Cleartext: true}, cleartext: true},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			tr := Transport(tc.cfg)
			if tr.MaxConnsPerHost != 4 || tr.IdleConnTimeout == 0 || tr.HTTP2 == nil || !tr.ForceAttemptHTTP2 {
				t.Fatalf("defaults not applied: %+v", tr)
			}
			if tc.cfg == (Config{}) {
				if tr.Protocols != nil {
					t.Fatalf("protocols %v", tr.Protocols)
				}
				return
			}
			p := tr.Protocols
			if p.HTTP1() || p.HTTP2() != tc.http2 || p.UnencryptedHTTP2() != tc.cleartext {
				t.Fatalf("protocols %v", p)
			}
		})
	}
}
