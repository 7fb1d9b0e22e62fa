package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestCodeCloses(t *testing.T) {
	tcs := []struct {
		name string
		code Code
		want bool
	}{
		{name: "none", code: CodeNone, want: false},
		{name: "normal websocket close", code: 1000, want: false},
		{name: "below pusher range", code: 3999, want: false},
		{name: "ssl only 4000", code: CodeSSLOnly, want: true},
		{name: "app not found 4001", code: CodeAppNotFound, want: true},
		{name: "app disabled 4003", code: CodeAppDisabled, want: true},
		{name: "over quota 4004", code: CodeOverQuota, want: true},
		{name: "unauthorized 4009", code: CodeUnauthorized, want: true},
		{name: "over capacity 4100", code: CodeOverCapacity, want: true},
		{name: "reconnect 4200", code: CodeReconnect, want: true},
		{name: "pong timeout 4201", code: CodePongTimeout, want: true},
		{name: "inactive 4202", code: CodeInactive, want: true},
		{name: "top of retry range 4299", code: 4299, want: true},
		{name: "4300", code: 4300, want: false},
		{name: "rate limit 4301", code: CodeClientEventRateLimit, want: false},
		{name: "watchlist 4302", code: CodeWatchlistLimit, want: false},
		{name: "above pusher range", code: 5000, want: false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.code.Closes(); got != tc.want {
				t.Fatalf("Code(%d).Closes() = %v, want %v", tc.code, got, tc.want)
			}
		})
	}
}

func TestErrorFrame(t *testing.T) {
	tcs := []struct {
		name string
		err  *Error
		want string
	}{
		{
			name: "app not found",
			err:  ErrAppNotFound,
			want: `{"event":"pusher:error","data":{"code":4001,"message":"Application does not exist"}}`,
		},
		{
			name: "terminated",
			err:  ErrTerminated,
			want: `{"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}}`,
		},
		{
			name: "rate limit",
			err:  ErrClientEventRate,
			want: `{"event":"pusher:error","data":{"code":4301,"message":"Client event rejected due to rate limit"}}`,
		},
		{
			name: "code none",
			err:  &Error{Message: "No current subscription to channel x, or subscription in progress"},
			want: `{"event":"pusher:error","data":{"code":null,"message":"No current subscription to channel x, or subscription in progress"}}`,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Payload(); string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Every predefined error renders as a pusher:error carrying its code, and
// only the 43xx ones leave the socket open (pusher-js would stop
// reconnecting on a 43xx close).
func TestPredefinedErrors(t *testing.T) {
	tcs := []struct {
		name   string
		err    *Error
		code   Code
		closes bool
	}{
		{name: "app not found", err: ErrAppNotFound, code: 4001, closes: true},
		{name: "app disabled", err: ErrAppDisabled, code: 4003, closes: true},
		{name: "over quota", err: ErrOverQuota, code: 4004, closes: true},
		{name: "path not found", err: ErrPathNotFound, code: 4005, closes: true},
		{name: "unsupported protocol", err: ErrUnsupportedProtocol, code: 4007, closes: true},
		{name: "origin not allowed", err: ErrOriginNotAllowed, code: 4009, closes: true},
		{name: "over capacity", err: ErrOverCapacity, code: 4100, closes: true},
		{name: "slow consumer", err: ErrSlowConsumer, code: 4100, closes: true},
		{name: "reconnect", err: ErrReconnect, code: 4200, closes: true},
		{name: "pong timeout", err: ErrPongTimeout, code: 4201, closes: true},
		{name: "terminated", err: ErrTerminated, code: 4009, closes: true},
		{name: "client event rate", err: ErrClientEventRate, code: 4301, closes: false},
		{name: "watchlist limit", err: ErrWatchlistLimit, code: 4302, closes: false},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err.Code != tc.code || tc.err.Code.Closes() != tc.closes {
				t.Fatalf("code %d closes %v, want %d closes %v", tc.err.Code, tc.err.Code.Closes(), tc.code, tc.closes)
			}
			var frame struct {
				Event string `json:"event"`
				Data  struct {
					Code    *int   `json:"code"`
					Message string `json:"message"`
				} `json:"data"`
			}
			if err := json.Unmarshal(tc.err.Payload(), &frame); err != nil {
				t.Fatalf("frame is not JSON: %v", err)
			}
			if frame.Event != "pusher:error" || frame.Data.Code == nil || Code(*frame.Data.Code) != tc.code ||
				frame.Data.Message != tc.err.Message || frame.Data.Message == "" {
				t.Fatalf("frame %s does not carry code %d and the message", tc.err.Payload(), tc.code)
			}
			wrapped := fmt.Errorf("handshake: %w", tc.err)
			var pe *Error
			if !errors.Is(wrapped, tc.err) || !errors.As(wrapped, &pe) || pe.Code != tc.code {
				t.Fatalf("wrapped error lost its identity")
			}
		})
	}
}

func TestSubscriptionErrorFrame(t *testing.T) {
	tcs := []struct {
		name    string
		err     *SubscriptionError
		channel string
		want    string
	}{
		{
			name:    "bad auth",
			err:     &SubscriptionError{Status: 401, Message: "Invalid signature"},
			channel: "private-x",
			want:    `{"event":"pusher:subscription_error","channel":"private-x","data":{"type":"AuthError","error":"Invalid signature","status":401}}`,
		},
		{
			name:    "rate limited auth",
			err:     &SubscriptionError{Status: 429, Message: "slow down"},
			channel: "private-x",
			want:    `{"event":"pusher:subscription_error","channel":"private-x","data":{"type":"AuthError","error":"slow down","status":429}}`,
		},
		{
			name:    "bad name",
			err:     &SubscriptionError{Status: 400, Message: "Invalid channel name"},
			channel: "bad name",
			want:    `{"event":"pusher:subscription_error","channel":"bad name","data":{"type":"SubscriptionError","error":"Invalid channel name","status":400}}`,
		},
		{
			name:    "presence full",
			err:     &SubscriptionError{Status: 4100, Message: "Presence channel is full"},
			channel: "presence-room",
			want:    `{"event":"pusher:subscription_error","channel":"presence-room","data":{"type":"SubscriptionError","error":"Presence channel is full","status":4100}}`,
		},
		{
			name:    "member too large",
			err:     &SubscriptionError{Status: 413, Message: "user_info too large"},
			channel: "presence-room",
			want:    `{"event":"pusher:subscription_error","channel":"presence-room","data":{"type":"SubscriptionError","error":"user_info too large","status":413}}`,
		},
		{
			name:    "escaped message and channel",
			err:     &SubscriptionError{Status: 401, Message: "Expected HMAC of \"1.1:private-x\"\n"},
			channel: "private-\"x\"",
			want:    `{"event":"pusher:subscription_error","channel":"private-\"x\"","data":{"type":"AuthError","error":"Expected HMAC of \"1.1:private-x\"\n","status":401}}`,
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.err.Payload(tc.channel)
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("frame is not valid JSON")
			}
		})
	}
}
