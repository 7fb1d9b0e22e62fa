package admin

import (
	"net/http"
	"net/url"
	"time"
)

// WebhookQueue is one webhook target's queue as the admin socket reports
// it.
type WebhookQueue struct {
	App string `json:"app_id"`
	// URL is the target as configured (the admin socket shows it whole).
	URL string `json:"url"`
	// Pending is the number of events waiting in the durable queue.
	Pending int64 `json:"pending"`
	// Failures counts the consecutive failed requests.
	Failures int64 `json:"failures"`
	// NextAttempt is when the next request may go; zero if now.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// WebhookQueueService reports the webhook targets' queues of app ("" =
// every app); main adapts the running dispatcher to it.
type WebhookQueueService interface {
	WebhookQueues(app string) ([]WebhookQueue, error)
}

// listWebhookQueues is GET /webhooks/queues[?app=id].
func (s *Server) listWebhookQueues(w http.ResponseWriter, r *http.Request) {
	if s.WebhookQueues == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "webhooks are not running"})
		return
	}
	qs, err := s.WebhookQueues.WebhookQueues(r.URL.Query().Get("app"))
	if err != nil {
		writeErr(w, err)
		return
	}
	if qs == nil {
		qs = []WebhookQueue{}
	}
	writeJSON(w, http.StatusOK, qs)
}

// WebhookQueues returns the running server's webhook queues of app ("" =
// every app).
func (c *Client) WebhookQueues(app string) ([]WebhookQueue, error) {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	var qs []WebhookQueue
	return qs, c.do("GET", "/webhooks/queues?"+q.Encode(), nil, &qs)
}
