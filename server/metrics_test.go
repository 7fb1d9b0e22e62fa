package server

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.dial(t)
	c.subscribeAuth("private-m", "", "wrong")
	c.expect("pusher:subscription_error")
	c.subscribe("pub")
	ts.dialRaw(t, "/app/nope", nil).expectClose()
	ts.trigger(t, "pub", "e", "1")
	c.expect("e")
	ts.apiSigned(t, "GET", "/apps/app-id/channels", nil, "", "app-key", "app-secret", time.Now().Add(-time.Hour))

	rec := httptest.NewRecorder()
	ts.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`sockudo_connections{app_id="app-id"} 1`,
		`sockudo_connections_refused_total{reason="app_not_found"} 1`,
		`sockudo_auth_failures_total{reason="channel_signature"} 1`,
		`sockudo_subscriptions_total{type="public"} 1`,
		`sockudo_http_requests_total{route="POST /apps/{app_id}/events",status="200"} 1`,
		`sockudo_http_requests_total{route="GET /apps/{app_id}/channels",status="401"} 1`,
		`sockudo_api_signature_failures_total{reason="timestamp"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), "app-secret") || strings.Contains(string(body), "private-m") {
		t.Error("metrics leak a secret or a channel name")
	}
}

// An app's series are on the first scrape although New no longer resolves
// them (app.resolveMetrics), and a socket's close finds them resolved.
func TestMetricsAppSeriesBeforeAnySocket(t *testing.T) {
	ts := newTestServer(t, Config{})
	scrape := func() string {
		rec := httptest.NewRecorder()
		ts.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		return string(body)
	}
	first := scrape()
	for _, want := range []string{`sockudo_connections{app_id="app-id"} 0`, `sockudo_connections_opened_total{app_id="app-id"} 0`} {
		if !strings.Contains(first, want) {
			t.Errorf("first scrape lacks %s", want)
		}
	}
	c := ts.dial(t)
	c.subscribe("pub")
	if body := scrape(); !strings.Contains(body, `sockudo_connections{app_id="app-id"} 1`) {
		t.Error("the socket is not counted")
	}
}
