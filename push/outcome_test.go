package push

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestOutcomeNamesAndRetry(t *testing.T) {
	tcs := []struct {
		o     Outcome
		name  string
		retry bool
	}{
		{Delivered, "delivered", false},
		{DeviceGone, "device_gone", false},
		{DeviceFailing, "device_failing", false},
		{DeviceRetryLater, "device_retry_later", true},
		{ProviderTransient, "provider_transient", true},
		{ProviderQuota, "provider_quota", true},
		{CredentialProblem, "credential_problem", false},
		{CallerError, "caller_error", false},
		{0, "unknown", false},
		{200, "unknown", false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if tc.o.String() != tc.name || tc.o.Retry() != tc.retry {
				t.Fatalf("%d: %q retry %v, want %q retry %v", tc.o, tc.o.String(), tc.o.Retry(), tc.name, tc.retry)
			}
		})
	}
}

// A failed round trip never quotes the URL: provider URLs hold device
// tokens.
func TestTransportFailureHidesTheURL(t *testing.T) {
	err := &url.Error{Op: "Post", URL: "https://api.push.apple.com/3/device/abcdef0123456789", Err: errors.New("connection refused")}
	r := TransportFailure(context.Background(), err)
	if r.Outcome != ProviderTransient || r.Reason != "network error: connection refused" || strings.Contains(r.Reason, "abcdef") {
		t.Fatalf("%+v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := TransportFailure(ctx, err); r.Reason != "context canceled" {
		t.Fatalf("cancelled: %+v", r)
	}
}
