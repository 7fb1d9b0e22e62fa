package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestHandshake(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dialRaw(t, "", nil)
	f := c.next()
	if f.Event != "pusher:connection_established" {
		t.Fatalf("first frame %s", f.raw)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := json.Unmarshal([]byte(f.dataString(t)), &d); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+$`).MatchString(d.SocketID) || d.ActivityTimeout != 120 {
		t.Fatalf("bad handshake data %+v", d)
	}
}

func TestRefusals(t *testing.T) {
	disabled := testApp()
	disabled.ID, disabled.Key, disabled.Enabled = "off", "off-key", false
	quota := testApp()
	quota.ID, quota.Key, quota.MaxConnections = "q", "q-key", 1
	origins := testApp()
	origins.ID, origins.Key, origins.AllowedOrigins = "o", "o-key", []string{"https://good.example.com", "https://*.example.org"}
	ts := newTestServer(t, Config{}, testApp(), disabled, quota, origins)
	ts.dial(t) // uses no quota
	qc := ts.dialRaw(t, "/app/q-key", nil)
	qc.expect("pusher:connection_established")

	tcs := []struct {
		name   string
		path   string
		origin string
		code   uint16
	}{
		{"unknown key", "/app/nope", "", 4001},
		{"disabled app", "/app/off-key", "", 4003},
		{"over app quota", "/app/q-key", "", 4004},
		{"bad path", "/app/app-key/extra", "", 4005},
		{"protocol too old", "/app/app-key?protocol=3", "", 4007},
		{"origin refused", "/app/o-key", "https://evil.example.com", 4009},
		{"wildcard needs a label", "/app/o-key", "https://.example.org", 4009},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c := ts.dialRaw(t, tc.path, h)
			f := c.expect("pusher:error")
			var d struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(f.Data, &d); err != nil || d.Code != int(tc.code) || d.Message == "" {
				t.Fatalf("error frame %s", f.raw)
			}
			if code := c.expectClose(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
		})
	}
	for _, origin := range []string{"https://good.example.com", "https://a.example.org", ""} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c := ts.dialRaw(t, "/app/o-key", h)
		c.expect("pusher:connection_established")
	}
}

func TestPingPongAndBadInput(t *testing.T) {
	ts := newTestServer(t, Config{MaxPayloadBytes: 1024})
	c := ts.dial(t)
	c.sendJSON(`{"event":"pusher:ping","data":{}}`)
	if f := c.expect("pusher:pong"); f.raw != `{"event":"pusher:pong","data":"{}"}` {
		t.Fatalf("pong %s", f.raw)
	}
	tcs := []struct{ name, msg string }{
		{"malformed", `{"event":`},
		{"no event", `{"data":{}}`},
		{"unknown event", `{"event":"pusher:nope","data":{}}`},
		{"oversized", `{"event":"pusher:ping","data":"` + strings.Repeat("x", 2000) + `"}`},
		{"subscribe without channel", `{"event":"pusher:subscribe","data":{}}`},
		{"unsubscribe unknown", `{"event":"pusher:unsubscribe","data":{"channel":"x"}}`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			c.sendJSON(tc.msg)
			f := c.expect("pusher:error")
			var d struct {
				Code    *int   `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(f.Data, &d); err != nil || d.Message == "" || d.Code != nil {
				t.Fatalf("error frame %s", f.raw)
			}
		})
	}
	if err := c.ws.WriteMessage(2, []byte{1, 2, 3}); err != nil { // binary
		t.Fatal(err)
	}
	c.expect("pusher:error")
	c.ping() // still open
}

func TestServerPingRearmsAfterPong(t *testing.T) {
	// A long pong timeout: the second ping must come one activity period
	// after the pong, not when the pong timeout would have expired.
	ts := newTestServer(t, Config{ActivityTimeout: time.Second, PongTimeout: time.Minute})
	c := ts.dial(t)
	if f := c.expect("pusher:ping"); f.dataString(t) != "{}" {
		t.Fatalf("ping %s", f.raw)
	}
	c.sendJSON(`{"event":"pusher:pong","data":{}}`)
	c.expect("pusher:ping")
}

func TestServerPingUnansweredCloses4201(t *testing.T) {
	ts := newTestServer(t, Config{ActivityTimeout: time.Second, PongTimeout: 300 * time.Millisecond})
	c := ts.dial(t)
	c.expect("pusher:ping")
	c.expect("pusher:error")
	if code := c.expectClose(); code != 4201 {
		t.Fatalf("close %d, want 4201", code)
	}
}
