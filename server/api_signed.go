package server

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
)

// SignedHandler serves an extra HTTP API route after the same checks as
// the Pusher API: known app, body limit, request signature, app enabled.
// appID is the app of the {app_id} path wildcard; body is the raw body.
type SignedHandler func(w http.ResponseWriter, r *http.Request, appID string, body []byte)

// HandleSigned registers an extra API route such as
// "GET /apps/{app_id}/webhooks/dead_letters"; the pattern must contain
// {app_id}. Call it before Serve. Errors should be written with WriteError.
func (s *Server) HandleSigned(pattern string, h SignedHandler) {
	s.extraAPI = append(s.extraAPI, signedRoute{pattern, h})
}

type signedRoute struct {
	pattern string
	h       SignedHandler
}

// WriteJSON writes body (already JSON) with status.
func WriteJSON(w http.ResponseWriter, status int, body []byte) { writeJSON(w, status, body) }

// WriteError writes the HTTP API's error shape, {"error":msg,"code":status}.
func WriteError(w http.ResponseWriter, status int, msg string) { writeError(w, status, msg) }

// apiHandler is an API endpoint after signature checks: it gets the app's
// config and the raw body.
type apiHandler func(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, body []byte)

// signed wraps h with app lookup, body limits and Pusher request signature
// verification (§4.2).
func (s *Server) signed(h apiHandler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw, status: http.StatusOK}
		defer func() { s.metrics.httpRequests.WithLabelValues(r.Pattern, strconv.Itoa(w.status)).Inc() }()
		a := s.apps.byID(r.PathValue("app_id"))
		if a == nil {
			writeError(w, http.StatusNotFound, "app not found")
			return
		}
		cfg := a.config()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(maxBodyBytes)+" bytes")
				return
			}
			writeError(w, http.StatusBadRequest, "could not read the request body")
			return
		}
		if err := protocol.VerifyRequest(r.Method, r.URL.Path, r.URL.Query(), body, cfg.Key, cfg.secrets(), time.Now()); err != nil {
			s.metrics.signatureFailure.WithLabelValues(signatureReason(err)).Inc()
			s.audit.Record(AuditRecord{App: a.id, Action: AuditAPIDenied, IP: clientIP(r, s.cfg.TrustHops), Reason: signatureReason(err)})
			s.warnLimited("api-signature", "HTTP API signature refused", "app_id", a.id, "reason", err.Error())
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if !cfg.Enabled {
			writeError(w, http.StatusForbidden, "app disabled")
			return
		}
		limiter, name := s.cfg.Limits.APIRead, "api_read"
		if r.Method != http.MethodGet {
			limiter, name = s.cfg.Limits.APIPublish, "api_publish"
		}
		override := cfg.RateLimits.APIReadMaxRequests
		if r.Method != http.MethodGet {
			override = cfg.RateLimits.APIMaxRequests
		}
		if d := allow(limiter, a.id, override); d.Limit > 0 {
			setRateLimitHeaders(w.Header(), d)
			if !d.Allowed {
				s.rateLimited(name, a.id, clientIP(r, s.cfg.TrustHops))
				writeError(w, http.StatusTooManyRequests, "rate limit exceeded for this app, retry after "+w.Header().Get("Retry-After")+"s")
				return
			}
		}
		h(w, r, a, cfg, body)
	})
}

// quotaLimiter is a limiter that takes a per-call limit (ratelimit.Memory).
type quotaLimiter interface {
	AllowQuota(key string, q ratelimit.Quota) ratelimit.Decision
}

// allow checks key against l, with the per-app limit override instead of
// l's own when it is set and l supports overrides.
func allow(l ratelimit.Limiter, key string, override int) ratelimit.Decision {
	if override > 0 {
		if q, ok := l.(quotaLimiter); ok {
			return q.AllowQuota(key, ratelimit.Quota{Limit: override})
		}
	}
	return l.Allow(key)
}

// setRateLimitHeaders sets the RateLimit-* headers (IETF draft) and, when
// refused, Retry-After, in whole seconds rounded up.
func setRateLimitHeaders(h http.Header, d ratelimit.Decision) {
	secs := func(t time.Duration) string { return strconv.FormatInt(int64((t+time.Second-1)/time.Second), 10) }
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", secs(d.Reset))
	if !d.Allowed {
		retry := d.RetryAfter
		if retry < time.Second {
			retry = time.Second
		}
		h.Set("Retry-After", secs(retry))
	}
}

// statusWriter records the status of a response for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// signatureReason labels a request verification error.
func signatureReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrStaleTimestamp), errors.Is(err, protocol.ErrBadTimestamp):
		return "timestamp"
	case errors.Is(err, protocol.ErrWrongKey):
		return "key"
	case errors.Is(err, protocol.ErrBodyMD5), errors.Is(err, protocol.ErrMissingBodyMD5):
		return "body_md5"
	case errors.Is(err, protocol.ErrMissingAuthParams):
		return "missing_params"
	}
	return "signature"
}
