package apns

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/internal/backoff"
	"github.com/sockudo/sockudo/push"
)

// classify turns an APNs response into a Result (spec §2.1 reason table,
// §3.3 outcomes).
//
// Decisions beyond the table:
//   - 429 TooManyProviderTokenUpdates is ProviderQuota, not
//     CredentialProblem: the key is valid and the cached token keeps
//     working once APNs's update window passes, so marking the credential
//     unhealthy would page someone for a condition that heals itself. It
//     means tokens for this key are made too often (several nodes or
//     processes with their own caches); RetryAfter is Retry-After or
//     tokenUpdatesBackoff, and the token is not regenerated.
//   - 400 IdleTimeout is ProviderTransient: the connection idled out, the
//     notification itself was fine.
//   - 400 BadDeviceToken is DeviceGone although a sandbox token sent to
//     production answers the same; the per-device environment and the
//     spike guard (push.InvalidationGuard) keep that mix-up from purging
//     devices.
//   - Statuses outside the table: other 4xx are CallerError, anything
//     else ProviderTransient.
func classify(resp *http.Response, now time.Time) push.Result {
	r := push.Result{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		r.Outcome = push.Delivered
		r.MessageID = resp.Header.Get("apns-id")
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return r
	}
	var body struct {
		Reason    string `json:"reason"`
		Timestamp int64  `json:"timestamp"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_ = json.Unmarshal(b, &body)
	r.Reason = body.Reason
	if r.Reason == "" {
		r.Reason = "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	retryAfter := backoff.RetryAfter(resp.Header.Get("Retry-After"), now)

	switch s := resp.StatusCode; {
	case s == http.StatusBadRequest:
		switch body.Reason {
		case "BadDeviceToken":
			r.Outcome = push.DeviceGone
		case "DeviceTokenNotForTopic":
			r.Outcome = push.DeviceFailing
		case "IdleTimeout":
			r.Outcome = push.ProviderTransient
		default:
			r.Outcome = push.CallerError
		}
	case s == http.StatusForbidden:
		r.Outcome = push.CredentialProblem
	case s == http.StatusGone:
		r.Outcome = push.DeviceGone
		if body.Timestamp > 0 {
			r.InvalidSince = time.UnixMilli(body.Timestamp).UTC()
		}
	case s == http.StatusTooManyRequests:
		if body.Reason == "TooManyProviderTokenUpdates" {
			r.Outcome = push.ProviderQuota
			r.RetryAfter = retryAfter
			if r.RetryAfter == 0 {
				r.RetryAfter = tokenUpdatesBackoff
			}
		} else {
			r.Outcome = push.DeviceRetryLater
			r.RetryAfter = retryAfter
		}
	case s >= 400 && s < 500: // 404 BadPath, 405, 413 PayloadTooLarge, …
		r.Outcome = push.CallerError
	default: // 500 InternalServerError, 503 ServiceUnavailable/Shutdown, …
		r.Outcome = push.ProviderTransient
		r.RetryAfter = retryAfter
	}
	return r
}
