package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/webhooks"
)

// webhookSink adapts the server's lifecycle events to the webhook
// dispatcher, which does not import server.
type webhookSink struct{ d *webhooks.Dispatcher }

var _ server.EventSink = webhookSink{}

func (s webhookSink) Emit(e server.Event) {
	s.d.Emit(webhooks.Event{
		App:               e.App,
		Name:              e.Name,
		Channel:           e.Channel,
		UserID:            e.UserID,
		Event:             e.Event,
		Data:              e.Data,
		SocketID:          e.SocketID,
		SubscriptionCount: e.SubscriptionCount,
	})
}

// maxDeadLetterList bounds one dead-letter listing.
const maxDeadLetterList = 10_000

// routeWebhooks adds the signed webhook API routes (signed like the REST
// API, shared/spec/pusher-protocol.md §4.2). They answer an app's backend,
// not the operator, so target URLs lose their userinfo and query (where
// receivers' tokens live); the admin socket and the CLI show them whole.
//
//	GET  /apps/{app_id}/webhooks                      the targets and their queues
//	GET  /apps/{app_id}/webhooks/dead_letters?limit=N the dead letters, oldest first
//	POST /apps/{app_id}/webhooks/dead_letters/replay  {"ids":[…]} or {} for all
//
// A replay is audited through record, like one through the admin socket.
func routeWebhooks(srv *server.Server, d *webhooks.Dispatcher, record func(app, action, reason string)) {
	srv.HandleSigned("GET /apps/{app_id}/webhooks", func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		targets := d.Queues(appID)
		for i := range targets {
			targets[i].URL = webhooks.RedactURL(targets[i].URL)
		}
		writeJSONValue(w, map[string]any{"targets": targets})
	})
	srv.HandleSigned("GET /apps/{app_id}/webhooks/dead_letters", func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		limit := 1000
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxDeadLetterList {
				server.WriteError(w, http.StatusBadRequest, "limit must be 1-"+strconv.Itoa(maxDeadLetterList))
				return
			}
			limit = n
		}
		dead, err := d.DeadLetters(appID, limit)
		if err != nil {
			server.WriteError(w, http.StatusInternalServerError, "reading the dead letters failed")
			return
		}
		for i := range dead {
			dead[i].URL = webhooks.RedactURL(dead[i].URL)
		}
		writeJSONValue(w, map[string]any{"dead_letters": dead})
	})
	srv.HandleSigned("POST /apps/{app_id}/webhooks/dead_letters/replay", func(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
		var req struct {
			IDs []uint64 `json:"ids"`
		}
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				server.WriteError(w, http.StatusBadRequest, `body must be {"ids":[…]} or empty`)
				return
			}
		}
		replayed, skipped, err := d.Replay(appID, req.IDs)
		if err != nil {
			server.WriteError(w, http.StatusInternalServerError, "replaying the dead letters failed")
			return
		}
		record(appID, "dead_letters_replayed", strconv.Itoa(replayed)+" replayed (HTTP API)")
		writeJSONValue(w, map[string]int{"replayed": replayed, "skipped": skipped})
	})
}

func writeJSONValue(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		server.WriteError(w, http.StatusInternalServerError, "encoding the response failed")
		return
	}
	server.WriteJSON(w, http.StatusOK, b)
}

// webhookCollector exports the dispatcher's Stats as Prometheus metrics,
// read at scrape time.
type webhookCollector struct {
	d     *webhooks.Dispatcher
	descs map[string]*prometheus.Desc
}

func newWebhookCollector(d *webhooks.Dispatcher) *webhookCollector {
	c := &webhookCollector{d: d, descs: map[string]*prometheus.Desc{}}
	for name, help := range map[string]string{
		"queued_total":        "Webhook events committed to the durable queue (one per target).",
		"sent_total":          "Webhook events delivered with a 2xx.",
		"failed_total":        "Failed webhook requests (network errors and non-2xx statuses).",
		"retried_total":       "Webhook events scheduled for another attempt.",
		"dead_lettered_total": "Webhook events given up on.",
		"coalesced_total":     "Webhook events never sent because a later one made them moot (occupied then vacated, a newer subscription_count).",
		"queue_depth":         "Webhook events waiting in the durable queue.",
	} {
		c.descs[name] = prometheus.NewDesc("sockudo_webhook_"+name, help, nil, nil)
	}
	c.descs["dropped_total"] = prometheus.NewDesc("sockudo_webhook_dropped_total",
		"Webhook events dropped, by reason: not_persisted (lost before reaching the queue: buffer full, "+
			"shutdown, failed final write) or queue_full (the oldest of a full queue, moved to the dead letters).",
		[]string{"reason"}, nil)
	return c
}

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v))
	}
	counter("queued_total", s.Queued)
	counter("sent_total", s.Sent)
	counter("failed_total", s.Failed)
	counter("retried_total", s.Retried)
	counter("dead_lettered_total", s.DeadLettered)
	counter("coalesced_total", s.Coalesced)
	ch <- prometheus.MustNewConstMetric(c.descs["dropped_total"], prometheus.CounterValue, float64(s.Dropped),
		"not_persisted")
	ch <- prometheus.MustNewConstMetric(c.descs["dropped_total"], prometheus.CounterValue, float64(s.QueueFull),
		"queue_full")
	ch <- prometheus.MustNewConstMetric(c.descs["queue_depth"], prometheus.GaugeValue, float64(s.QueueDepth))
}
