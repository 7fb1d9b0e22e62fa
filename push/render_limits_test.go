package push_test

import (
	"testing"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/apns"
	"github.com/sockudo/sockudo/push/fcm"
	"github.com/sockudo/sockudo/push/webpush"
)

// push repeats its provider packages' limits, which it cannot import.
func TestRenderLimitsMatchProviders(t *testing.T) {
	if push.MaxAPNsPayload != apns.MaxPayload || push.MaxFCMMessage != fcm.MaxMessage ||
		push.MaxWebPayload != webpush.DefaultMaxPayload || push.MaxCollapseKey != apns.MaxCollapseID ||
		push.MaxPublishTTL != webpush.DefaultTTL {
		t.Fatal("push's provider limits differ from the providers'")
	}
}
