package push

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
)

// replyJSON writes v as JSON with status.
func replyJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		replyError(w, errorf(500, "internal_error", "encoding the answer failed"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// replyError writes the push API's error shape (spec §4 conventions):
// {"error":"<code>","description":"…"}.
func replyError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"description"`
	}{e.code, e.descr})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	_, _ = w.Write(append(b, '\n'))
}

// readBody reads r's body, at most limit bytes: more is a 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(413, "body_too_large", "request body larger than %d bytes", limit)
		}
		return nil, errorf(400, "bad_request", "could not read the request body")
	}
	return b, nil
}

// decodeBody decodes a JSON body into v; an empty body leaves v as it is
// when optional.
func decodeBody(body []byte, v any, optional bool) *apiError {
	if len(body) == 0 && optional {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(400, "invalid_json", "the body is not the JSON expected")
	}
	return nil
}

// rateLimited sets the RateLimit-* headers of d and, when refused, answers
// 429 with Retry-After (whole seconds, at least 1) and reports true.
func rateLimited(w http.ResponseWriter, d ratelimit.Decision) bool {
	secs := func(t time.Duration) string { return strconv.FormatInt(int64((t+time.Second-1)/time.Second), 10) }
	h := w.Header()
	if d.Limit > 0 {
		h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
		h.Set("RateLimit-Reset", secs(d.Reset))
	}
	if d.Allowed {
		return false
	}
	retry := max(d.RetryAfter, time.Second)
	h.Set("Retry-After", secs(retry))
	replyError(w, errorf(429, "rate_limited", "too many registrations from this address, retry after %ss", secs(retry)))
	return true
}
