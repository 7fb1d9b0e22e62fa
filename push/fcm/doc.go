// Package fcm sends messages through FCM HTTP v1 with a service-account
// access token (shared/spec/push-api.md §2.2).
//
// A [Client] serves one service account (one credential version). The
// OAuth2 access token comes from golang.org/x/oauth2/google's JWT-bearer
// flow, is cached until shortly before it expires and is shared by every
// goroutine. FCM has no batch API: Send is one request per registration
// token, multiplexed over HTTP/2.
//
// Every answer becomes a push.Result classified per spec §2.2 and §3.3.
// Registration tokens, access tokens and keys are never logged and never
// appear in a Result.
//
// The endpoint and the token URL are operator settings, never per tenant.
// fcm imports push and golang.org/x/oauth2 only.
package fcm
