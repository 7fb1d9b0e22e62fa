package server

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sockudo/sockudo/server/protocol"
)

// metrics are the server's Prometheus collectors, prefixed sockudo_.
// Labels are bounded: app ids, enums of reasons, route patterns. Never
// channel names, socket ids or user ids. Hot-path counters are resolved
// once, so counting costs an atomic add.
type metrics struct {
	reg *prometheus.Registry

	connections      *prometheus.GaugeVec   // app_id
	connsOpened      *prometheus.CounterVec // app_id
	connsClosed      *prometheus.CounterVec // reason
	connsRefused     *prometheus.CounterVec // reason
	messagesIn       prometheus.Counter
	messagesOut      prometheus.Counter
	bytesIn          prometheus.Counter
	bytesOut         prometheus.Counter
	subscriptions    *prometheus.CounterVec // type
	httpRequests     *prometheus.CounterVec // route, status
	authFailures     *prometheus.CounterVec // reason
	signatureFailure *prometheus.CounterVec // reason
	rateLimited      *prometheus.CounterVec // limiter
	slowConsumers    prometheus.Counter
	pushProvider     *prometheus.CounterVec // provider, class
	triggerPush      *prometheus.CounterVec // result

	// The results of triggerPush, resolved once.
	triggerPushAccepted, triggerPushFailed, triggerPushRefused prometheus.Counter

	subsByType [5]prometheus.Counter // indexed by protocol.ChannelType
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg}
	m.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sockudo_connections",
		Help: "Open WebSocket connections."}, []string{"app_id"})
	m.connsOpened = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_connections_opened_total",
		Help: "WebSocket connections accepted."}, []string{"app_id"})
	m.connsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_connections_closed_total",
		Help: "WebSocket connections closed, by reason."}, []string{"reason"})
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_connections_refused_total",
		Help: "WebSocket connections refused after the upgrade, by reason."}, []string{"reason"})
	m.messagesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "sockudo_ws_messages_received_total",
		Help: "WebSocket frames received from clients."})
	m.messagesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "sockudo_ws_messages_sent_total",
		Help: "WebSocket frames queued to clients."})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "sockudo_ws_received_bytes_total",
		Help: "Payload bytes received from clients."})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "sockudo_ws_sent_bytes_total",
		Help: "Bytes written to client sockets."})
	m.subscriptions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_subscriptions_total",
		Help: "Successful channel subscriptions, by channel type."}, []string{"type"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_http_requests_total",
		Help: "HTTP API requests, by route pattern and status."}, []string{"route", "status"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_auth_failures_total",
		Help: "Refused channel authorisations and signins, by reason."}, []string{"reason"})
	m.signatureFailure = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_api_signature_failures_total",
		Help: "HTTP API requests refused by signature checks, by reason."}, []string{"reason"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_rate_limited_total",
		Help: "Requests refused by a rate limiter, by limiter."}, []string{"limiter"})
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{Name: "sockudo_slow_consumers_total",
		Help: "Sockets closed because their outbound queue was full."})
	m.pushProvider = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_push_provider_failures_total",
		Help: "Push provider failures (APNs, FCM, Web Push), by provider and class such as credentials."}, []string{"provider", "class"})
	m.triggerPush = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sockudo_trigger_push_total",
		Help: "Push objects on HTTP API events, by result: accepted (handed to push after the event was published), " +
			"failed (push failed after the event was published; the answer was still 200) or refused (400, nothing published)."},
		[]string{"result"})
	m.triggerPushAccepted = m.triggerPush.WithLabelValues("accepted")
	m.triggerPushFailed = m.triggerPush.WithLabelValues("failed")
	m.triggerPushRefused = m.triggerPush.WithLabelValues("refused")
	for _, c := range []prometheus.Collector{m.pushProvider, m.triggerPush, m.connections, m.connsOpened, m.connsClosed, m.connsRefused,
		m.messagesIn, m.messagesOut, m.bytesIn, m.bytesOut, m.subscriptions, m.httpRequests, m.authFailures,
		m.signatureFailure, m.rateLimited, m.slowConsumers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for t := range m.subsByType {
		m.subsByType[t] = m.subscriptions.WithLabelValues(channelTypeLabel(protocol.Channel{Type: protocol.ChannelType(t)}))
	}
	return m
}

// Registry is the server's Prometheus registry; other packages register
// their collectors (webhooks, push) here so one endpoint serves them all.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// MetricsHandler serves the registry in the Prometheus text format, for
// the separate metrics listener.
func (s *Server) MetricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every app has its series from the first scrape on, sockets or
		// not, as when New resolved them all (app.resolveMetrics).
		s.resolveAppMetrics()
		h.ServeHTTP(w, r)
	})
}

// resolveAppMetrics resolves the metric series of every app; after the
// first call it costs one atomic load per app.
func (s *Server) resolveAppMetrics() {
	for _, a := range s.apps.index.Load().byID {
		a.resolveMetrics()
	}
}

// PushProviderFailure counts a push provider failure; class is a bounded
// word such as "credentials", "rejected" or "unavailable". The push
// service reports through it, so the failures share the metrics endpoint.
func (s *Server) PushProviderFailure(provider, class string) {
	s.metrics.pushProvider.WithLabelValues(provider, class).Inc()
}

// closeReason names a close code for the connections_closed metric.
func closeReason(code protocol.Code) string {
	switch code {
	case protocol.CodeOverCapacity:
		return "over_capacity"
	case protocol.CodeReconnect:
		return "shutdown"
	case protocol.CodePongTimeout:
		return "pong_timeout"
	case protocol.CodeUnauthorized:
		return "unauthorized"
	case 0:
		return "client"
	}
	return "code_" + strconv.Itoa(int(code))
}

// refusalReason names a handshake refusal for the connections_refused
// metric.
func refusalReason(e *protocol.Error) string {
	switch e.Code {
	case protocol.CodeAppNotFound:
		return "app_not_found"
	case protocol.CodeAppDisabled:
		return "app_disabled"
	case protocol.CodeOverQuota:
		return "app_over_quota"
	case protocol.CodePathNotFound:
		return "bad_path"
	case protocol.CodeUnsupportedProtocol:
		return "protocol"
	case protocol.CodeUnauthorized:
		return "origin"
	case protocol.CodeReconnect:
		return "draining"
	case protocol.CodeOverCapacity:
		if e == protocol.ErrRateLimited {
			return "rate_limited"
		}
		return "over_capacity"
	}
	return "other"
}

// channelTypeLabel names a channel type for the subscriptions metric.
func channelTypeLabel(c protocol.Channel) string {
	switch c.Type {
	case protocol.Private:
		return "private"
	case protocol.Encrypted:
		return "encrypted"
	case protocol.Presence:
		return "presence"
	case protocol.ServerToUser:
		return "server_to_user"
	}
	return "public"
}
