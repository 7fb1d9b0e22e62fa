package fcm

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sockudo/sockudo/internal/backoff"
	"github.com/sockudo/sockudo/push"
)

// apiError is FCM's error body.
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

const (
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
	// badTokenMessage is how FCM says the registration token is malformed.
	badTokenMessage = "not a valid FCM registration token"
)

// classify turns an FCM response into a Result (spec §2.2, §3.3). The
// FcmError errorCode decides; without one, the google.rpc status; without
// that, the HTTP status. rejected reports an HTTP 401 without an FcmError:
// our access token was refused, and the caller may refresh it once.
//
// Decisions beyond the table: a NOT_FOUND status without an FcmError is
// CallerError, not DeviceGone (it is a wrong project or path, and must not
// purge devices); PERMISSION_DENIED without an FcmError is
// CredentialProblem (the service account may not send).
func classify(status int, h http.Header, body []byte, now time.Time) (r push.Result, rejected bool) {
	r.Status = status
	if status == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(body, &ok)
		r.Outcome, r.MessageID = push.Delivered, ok.Name
		return r, false
	}
	var e apiError
	_ = json.Unmarshal(body, &e)
	code, namesToken := "", strings.Contains(e.Error.Message, badTokenMessage)
	for _, d := range e.Error.Details {
		switch d.Type {
		case fcmErrorType:
			if code == "" {
				code = d.ErrorCode
			}
		case badRequestType:
			for _, v := range d.FieldViolations {
				if v.Field == "message.token" {
					namesToken = true
				}
			}
		}
	}
	fcmError := code != ""
	if code == "" {
		code = e.Error.Status
	}
	r.Reason = code
	if r.Reason == "" {
		r.Reason = "HTTP " + strconv.Itoa(status)
	}
	retryAfter := backoff.RetryAfter(h.Get("Retry-After"), now)

	switch code {
	case "UNREGISTERED":
		r.Outcome = push.DeviceGone
	case "INVALID_ARGUMENT":
		r.Outcome = push.CallerError
		if namesToken {
			r.Outcome = push.DeviceGone
			r.Reason = "INVALID_ARGUMENT (registration token)"
		}
	case "SENDER_ID_MISMATCH":
		r.Outcome = push.DeviceFailing
	case "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED":
		r.Outcome, r.RetryAfter = push.ProviderQuota, retryAfter
	case "UNAVAILABLE", "INTERNAL", "UNSPECIFIED_ERROR":
		r.Outcome, r.RetryAfter = push.ProviderTransient, retryAfter
	case "THIRD_PARTY_AUTH_ERROR", "PERMISSION_DENIED":
		r.Outcome = push.CredentialProblem
	case "NOT_FOUND":
		r.Outcome = push.CallerError
	default:
		switch {
		case status == http.StatusUnauthorized:
			r.Outcome = push.CredentialProblem
		case status == http.StatusForbidden:
			r.Outcome = push.CredentialProblem
		case status == http.StatusTooManyRequests:
			r.Outcome, r.RetryAfter = push.ProviderQuota, retryAfter
		case status >= 400 && status < 500:
			r.Outcome = push.CallerError
		default:
			r.Outcome, r.RetryAfter = push.ProviderTransient, retryAfter
		}
	}
	return r, status == http.StatusUnauthorized && !fcmError
}
