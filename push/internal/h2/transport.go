// Package h2 builds the dedicated HTTP transport of a push provider
// client (APNs, FCM): long-lived connections that multiplex many streams,
// pinged while idle so a dead one is noticed before a send waits on it
// (spec §3.2).
package h2

import (
	"crypto/tls"
	"net/http"
	"time"
)

// Config shapes a Transport. Zero values mean the defaults.
type Config struct {
	// Only forces HTTP/2 (APNs accepts nothing else); false lets the
	// server choose, with HTTP/2 attempted first.
	Only bool
	// Cleartext speaks HTTP/2 without TLS, with prior knowledge (h2c): for
	// loopback fakes in tests. It implies Only.
	Cleartext bool
	// MaxConnsPerHost bounds connections per host; 0 means 4.
	MaxConnsPerHost int
	// IdleConnTimeout closes idle connections; 0 means 5 minutes.
	IdleConnTimeout time.Duration
}

// Transport returns a new transport for one provider client.
func Transport(c Config) *http.Transport {
	if c.MaxConnsPerHost <= 0 {
		c.MaxConnsPerHost = 4
	}
	if c.IdleConnTimeout <= 0 {
		c.IdleConnTimeout = 5 * time.Minute
	}
	t := &http.Transport{
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:       c.MaxConnsPerHost,
		MaxIdleConnsPerHost:   c.MaxConnsPerHost,
		IdleConnTimeout:       c.IdleConnTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	switch {
	case c.Cleartext:
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	case c.Only:
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
	}
	return t
}
