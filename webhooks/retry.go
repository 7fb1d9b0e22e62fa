package webhooks

import "net/http"

// outcome is what a delivery attempt means for its entries.
type outcome int

const (
	// delivered: a 2xx; the entries are deleted.
	delivered outcome = iota
	// retry: a network error, 408, 425, 429 or 5xx; try again later.
	retry
	// give up: any other status, a refused address; dead-letter now.
	giveUp
)

// classify maps an HTTP status to an outcome.
func classify(status int) outcome {
	switch {
	case status >= 200 && status < 300:
		return delivered
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return retry
	default:
		return giveUp
	}
}
