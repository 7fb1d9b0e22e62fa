package push

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the push pipeline's Prometheus metrics. Labels are bounded:
// providers, publish states, outcome classes and recipient kinds, never
// apps, devices or provider reason strings. A nil *Metrics records nothing.
type Metrics struct {
	accepted   *prometheus.CounterVec   // kind
	refused    *prometheus.CounterVec   // reason: rate_limited, daily_quota, recipients
	dispatched *prometheus.CounterVec   // provider
	delivered  *prometheus.CounterVec   // provider
	failures   *prometheus.CounterVec   // provider, class
	retries    *prometheus.CounterVec   // provider
	removed    *prometheus.CounterVec   // provider
	finishedN  *prometheus.CounterVec   // state
	credErrors *prometheus.CounterVec   // provider
	latency    *prometheus.HistogramVec // provider
}

// NewMetrics registers the push metrics on reg; queueDepth, when not nil,
// is read at scrape time for sockudo_push_queue_depth.
func NewMetrics(reg prometheus.Registerer, queueDepth func() float64) *Metrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sockudo", Subsystem: "push", Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		accepted:   cv("publishes_accepted_total", "Publishes accepted, by recipient kind.", "kind"),
		refused:    cv("publishes_refused_total", "Publishes refused by a per-app limit, by limit.", "limit"),
		dispatched: cv("dispatched_total", "Notifications handed to a provider.", "provider"),
		delivered:  cv("delivered_total", "Notifications a provider accepted.", "provider"),
		failures:   cv("failed_total", "Deliveries that failed, by class (outcome or our reason).", "provider", "class"),
		retries:    cv("retries_total", "Deliveries scheduled for another attempt.", "provider"),
		removed:    cv("devices_invalidated_total", "Devices removed because their provider reported them gone.", "provider"),
		finishedN:  cv("publishes_finished_total", "Publishes that reached a final state, by state.", "state"),
		credErrors: cv("credential_errors_total", "Credentials that started failing (a provider refused them).", "provider"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sockudo", Subsystem: "push", Name: "provider_latency_seconds",
			Help: "Time of one provider request.", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"provider"}),
	}
	reg.MustRegister(m.latency)
	if queueDepth != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "sockudo", Subsystem: "push", Name: "queue_depth",
			Help: "Deliveries pending or in flight."}, queueDepth))
	}
	return m
}

// failureClasses bounds the class label: our reasons and the outcome
// names; a provider's own reason is counted as its outcome's class.
var failureClasses = map[string]bool{ReasonDeviceDeleted: true, ReasonNoCredential: true, ReasonCredentialRevoked: true,
	ReasonNoPayload: true, "dead": true, "expired": true, "publish_unreadable": true}

func (m *Metrics) accept(kind RecipientKind) {
	if m != nil {
		m.accepted.WithLabelValues(string(kind)).Inc()
	}
}

func (m *Metrics) refuse(limit string) {
	if m != nil {
		m.refused.WithLabelValues(limit).Inc()
	}
}

func (m *Metrics) sent(platform string, o Outcome, took time.Duration) {
	if m == nil {
		return
	}
	m.dispatched.WithLabelValues(platform).Inc()
	m.latency.WithLabelValues(platform).Observe(took.Seconds())
	switch o {
	case Delivered:
		m.delivered.WithLabelValues(platform).Inc()
	case DeviceGone, DeviceFailing, CredentialProblem, CallerError:
		m.failures.WithLabelValues(platform, o.String()).Inc()
	}
}

func (m *Metrics) failed(platform, reason string) {
	if m == nil || !failureClasses[reason] {
		return
	}
	m.failures.WithLabelValues(platform, reason).Inc()
}

func (m *Metrics) retried(platform string) {
	if m != nil {
		m.retries.WithLabelValues(platform).Inc()
	}
}

func (m *Metrics) invalidated(platform string) {
	if m != nil {
		m.removed.WithLabelValues(platform).Inc()
	}
}

func (m *Metrics) finished(state string) {
	if m != nil {
		m.finishedN.WithLabelValues(state).Inc()
	}
}

func (m *Metrics) credentialError(provider string) {
	if m != nil {
		m.credErrors.WithLabelValues(provider).Inc()
	}
}
