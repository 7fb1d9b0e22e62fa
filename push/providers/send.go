package providers

import (
	"context"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/apns"
	"github.com/sockudo/sockudo/push/fcm"
	"github.com/sockudo/sockudo/push/webpush"
	"github.com/sockudo/sockudo/storage"
)

// Send is the push.Sender of the clients Builder makes: it copies a
// rendered message into the provider's request for one device. A device
// that does not fit its credential's client (a web device whose keys no
// longer parse, a client of the wrong kind) is a CallerError: it fails
// that delivery and never touches the credential.
func Send(ctx context.Context, c *push.LiveCredential, d *storage.Device, m *push.Message) push.Result {
	switch cl := c.Client.(type) {
	case *apns.Client:
		topic := d.Topic
		if topic == "" {
			topic = c.Topic
		}
		if topic == "" {
			return push.Result{Outcome: push.CallerError, Reason: "no_topic"}
		}
		a := m.APNs
		return cl.Send(ctx, &apns.Notification{Token: d.Token, Topic: topic, PushType: a.PushType, Priority: a.Priority,
			Expiration: a.Expiration, CollapseID: a.CollapseID, Payload: a.Payload})
	case *fcm.Client:
		return cl.Send(ctx, fcm.Message{Token: d.Token, Body: m.FCM})
	case *webpush.Sender:
		sub, err := webpush.ParseSubscription(d.Token, d.WebP256dh, d.WebAuth)
		if err != nil {
			return push.Result{Outcome: push.CallerError, Reason: "invalid_subscription"}
		}
		w := m.Web
		return cl.Send(ctx, sub, w.Payload, webpush.Options{TTL: w.TTL, Urgency: webpush.Urgency(w.Urgency), Topic: w.Topic})
	}
	return push.Result{Outcome: push.CallerError, Reason: "no_client"}
}
