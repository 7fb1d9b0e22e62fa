// Package apns sends notifications through the APNs provider API over
// HTTP/2 with token authentication (shared/spec/push-api.md §2.1).
//
// A [Client] serves one credential (team id, key id, .p8 key) and one
// endpoint. It owns a dedicated HTTP/2 transport, reused for the life of
// the process: Apple treats rapid connect/disconnect as a DoS. The ES256
// provider token is signed once and shared by every goroutine (and by
// every Client given the same [ProviderTokens]); it is refreshed after
// [TokenRefresh] and never more often than every [MinTokenAge], because
// APNs answers 429 TooManyProviderTokenUpdates to faster refreshes and 403
// ExpiredProviderToken to tokens older than an hour.
//
// Every answer becomes a push.Result classified per spec §2.1 and §3.3.
// Device tokens and keys are never logged and never appear in a Result.
//
// The endpoint is an operator setting, never per tenant. apns imports push
// and push/internal/jws only.
package apns
