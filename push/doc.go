// Package push is the push-notification subsystem: APNs, FCM and Web Push
// for devices bound to authenticated users (shared/spec/push-api.md).
//
// This package holds what every provider shares: the classification of a
// provider's answer for one device (Outcome, Result, spec §3.3) and the
// spike guard that pauses mass invalidation (InvalidationGuard). Each
// provider lives in its own package and speaks its wire protocol with the
// standard library (plus golang.org/x/oauth2 for FCM's access tokens):
//
//	push/apns     APNs provider API over HTTP/2 with ES256 provider tokens
//	push/fcm      FCM HTTP v1 with a service-account access token
//	push/webpush  Web Push: RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID
//
// Provider endpoints are operator settings, never per tenant: a tenant
// that could set one would have an SSRF vector. Web Push endpoints come
// from subscriptions and go through internal/netguard.
//
// Devices (devices.go, routes_devices.go) are registered by the customer's
// backend through the signed server API, or by the device itself through
// the client API: a device secret (stored as its SHA-256) plus, to bind a
// user or subscribe to a private or presence channel, a signature of the
// app's secret over a challenge, a pseudo socket id the device got from
// this server and the customer's auth endpoint signed as for
// pusher:signin or pusher:subscribe. A challenge is the device's, expires
// after DeviceConfig.ChallengeTTL and is used up by the request it
// authorizes, so signatures do not replay. webpush imports this package,
// so web subscriptions are checked through Deps.WebSubscription.
//
// push imports storage and internal packages only; server never imports
// it (main wires its routes with server.HandleSigned and server.Handle).
package push
