package push

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// Outcome classifies a provider's answer for one device (spec §3.3). It
// decides what happens next: nothing, a retry, or a change to the device
// or the credential.
type Outcome uint8

// Outcomes. The zero Outcome is not valid.
const (
	// Delivered: the provider accepted the notification.
	Delivered Outcome = iota + 1
	// DeviceGone: the token or subscription is finally invalid (APNs 410
	// Unregistered, FCM UNREGISTERED, Web Push 404/410). Remove the device
	// and audit it; a spike guard pauses mass removals.
	DeviceGone
	// DeviceFailing: the device does not fit the credential (APNs
	// DeviceTokenNotForTopic, FCM SENDER_ID_MISMATCH). Mark it failing,
	// keep it: usually a configuration mistake, not a dead device.
	DeviceFailing
	// DeviceRetryLater: too many notifications to this one device (APNs
	// 429 TooManyRequests). Back off for the device.
	DeviceRetryLater
	// ProviderTransient: 5xx or a network error. Retry with backoff,
	// bounded by the publish's expiry.
	ProviderTransient
	// ProviderQuota: the project or sender is over its rate (429). Retry
	// after Result.RetryAfter.
	ProviderQuota
	// CredentialProblem: the provider refused our credential (APNs 403,
	// FCM 401 / THIRD_PARTY_AUTH_ERROR, VAPID 401/403). Never touch the
	// devices; mark the credential unhealthy and alert.
	CredentialProblem
	// CallerError: the notification itself is wrong (400, 413). Fail it
	// for this provider, no retry.
	CallerError
)

var outcomeNames = [...]string{
	Delivered:         "delivered",
	DeviceGone:        "device_gone",
	DeviceFailing:     "device_failing",
	DeviceRetryLater:  "device_retry_later",
	ProviderTransient: "provider_transient",
	ProviderQuota:     "provider_quota",
	CredentialProblem: "credential_problem",
	CallerError:       "caller_error",
}

// String is the outcome's name, a bounded label for metrics and logs.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return "unknown"
}

// Retry reports whether the notification should be sent again later.
func (o Outcome) Retry() bool {
	return o == DeviceRetryLater || o == ProviderTransient || o == ProviderQuota
}

// Result is a provider's answer for one device.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status; 0 when no response arrived.
	Status int
	// Reason is the provider's reason code ("Unregistered",
	// "UNREGISTERED", "BadJwtToken", …) or a short description of a local
	// failure. It never holds a token or a credential.
	Reason string
	// RetryAfter is the provider's Retry-After, 0 if none.
	RetryAfter time.Duration
	// MessageID is the provider's id of an accepted notification.
	MessageID string
	// InvalidSince is when APNs says a token stopped being valid (410
	// timestamp): a device that re-registered after it keeps its token.
	InvalidSince time.Time
}

// TransportFailure is the Result of a round trip that got no response:
// ProviderTransient, with a reason that never quotes the URL (a provider
// URL may hold a device token).
func TransportFailure(ctx context.Context, err error) Result {
	reason := "network error"
	var ue *url.Error
	switch {
	case ctx.Err() != nil:
		reason = ctx.Err().Error()
	case errors.As(err, &ue):
		reason = "network error: " + ue.Err.Error()
	}
	return Result{Outcome: ProviderTransient, Reason: reason}
}
