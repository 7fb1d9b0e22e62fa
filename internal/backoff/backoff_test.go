package backoff

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestExponential(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, Exponential(n, time.Second, time.Minute, func() float64 { return 0 }))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backoff = %v, want %v", got, want)
	}
	// Jitter shortens by at most a fifth and never lengthens.
	if d := Exponential(3, time.Second, time.Minute, func() float64 { return 0.999999 }); d <= 3200*time.Millisecond || d > 4*time.Second {
		t.Fatalf("jittered Exponential(3) = %s, want (3.2s, 4s]", d)
	}
	if d := Exponential(100, time.Second, time.Minute, func() float64 { return 0.5 }); d != 54*time.Second {
		t.Fatalf("Exponential(100) = %s, want 54s", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tcs := []struct {
		name, v string
		want    time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "7", 7 * time.Second},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"garbage", "soon", 0},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"huge", "99999999999999999", MaxRetryAfter},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetryAfter(tc.v, now); got != tc.want {
				t.Fatalf("RetryAfter(%q) = %s, want %s", tc.v, got, tc.want)
			}
		})
	}
}
