// Package webpush sends Web Push notifications: RFC 8030 delivery to the
// endpoint of a browser's push subscription, the payload encrypted with
// RFC 8291 (aes128gcm, RFC 8188) and the request authenticated with RFC
// 8292 VAPID (an ES256 JWT signed through push/internal/jws). It uses the
// standard library only (shared/spec/push-api.md §2.3, §3.1).
//
// A [Sender] holds one VAPID key. A subscription is bound to the key it was
// created with, so a server that rotates its key keeps a Sender per key
// version and picks the one a subscription was made with; the choice is
// the caller's. Senders share one *http.Client ([NewHTTPClient]).
//
// [Sender.Send] answers with a push.Result classified as every provider's
// is (spec §3.3): 201/200/202 Delivered, 404/410 DeviceGone, 401/403
// CredentialProblem, 400/413 (and other 4xx, and a 3xx since redirects
// are not followed) CallerError, 429 ProviderQuota with Retry-After, 5xx,
// 408 and network errors ProviderTransient. An endpoint refused by the
// SSRF rules, before sending or at dial time, is a CallerError: retrying
// cannot help, and the device is not known to be gone.
//
// Endpoints come from subscriptions, that is from whoever runs the browser,
// so they go through the SSRF rules webhooks use (internal/netguard): https
// only, no IP literals, no non-public address after DNS, no redirects, no
// proxy. Config.AllowedHosts can also limit them to known push services
// ([DefaultAllowedHosts]). Only AllowLocal (tests;
// PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS) lifts these rules.
//
// Caveats:
//   - An endpoint URL embeds the device's token: it never appears in a
//     Result's Reason, an error's text or a log line. This package logs
//     nothing.
//   - The payload limit is checked before anything is sent. The default,
//     [DefaultMaxPayload], keeps the encrypted body inside what Firefox for
//     Android accepts; one aes128gcm record could hold [MaxRecordPlaintext].
//   - Padding is off by default: padding every message to 4096 bytes is what
//     made Firefox for Android answer 413 to other libraries.
//
// webpush imports push and internal packages only.
package webpush
