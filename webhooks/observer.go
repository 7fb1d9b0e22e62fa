package webhooks

// Outcomes of a Delivery.
const (
	DeliveryDelivered = "delivered"
	DeliveryRetry     = "retry"
	DeliveryGaveUp    = "gave_up"
)

// Delivery reports one webhook request for a live view (the console): its
// app, its target's URL without userinfo or query (RedactURL), how many
// events it carried and its outcome. Reason never holds the URL, the
// secret or the signature.
type Delivery struct {
	App     string `json:"app_id"`
	URL     string `json:"url"`
	Events  int    `json:"events"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

type deliveryObserver struct{ f func(Delivery) }

// SetObserver makes the delivery loops call f after every request; nil
// removes it. f runs on a delivery loop and must not block. Without an
// observer a request costs one atomic load more.
func (d *Dispatcher) SetObserver(f func(Delivery)) {
	if f == nil {
		d.observer.Store(nil)
		return
	}
	d.observer.Store(&deliveryObserver{f})
}

func (d *Dispatcher) observe(t *target, events int, res result) {
	o := d.observer.Load()
	if o == nil {
		return
	}
	out := DeliveryDelivered
	switch res.outcome {
	case retry:
		out = DeliveryRetry
	case giveUp:
		out = DeliveryGaveUp
	}
	o.f(Delivery{App: t.app, URL: RedactURL(t.url), Events: events, Outcome: out, Reason: res.reason})
}
