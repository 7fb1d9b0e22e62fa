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
// Provider credentials (credentials.go, spec §4.5) are per app and
// versioned: checked and sealed with AES-256-GCM under the operator's key
// (credential_seal.go; the app, provider and version are the additional
// data), stored by storage, and turned into live clients by the
// CredentialRegistry (registry.go), which swaps a client when a version is
// put and drops it when one is revoked. The provider packages import push,
// so push cannot import them: clients are built by a ClientBuilder that
// main passes in (push/providers).
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
// The push audit trail (audit_trail.go, routes_audit.go, spec §4.7) is
// storage's per-app hash chain: AuditTrail appends entries in batches and
// applies retention, AuditRoute and AuditVerifyRoute read and check it, and
// Credentials.SetTrail puts every credential change in it.
//
// The Pusher Beams face (beams.go, beams_token.go, beams_devices.go) serves
// Beams' publish, user and device APIs for apps that have a Beams secret
// key (Apps.AppBeamsKeys): the same publish pipeline and devices, with the
// key as a bearer credential, Beams user tokens (HS256 JWTs signed with the
// key) for user binding, and a Beams device's random id as its secret.
//
// push imports storage and internal packages only; server never imports
// it (main wires its routes with server.HandleSigned and server.Handle).
package push
