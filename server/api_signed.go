package server

import (
	"container/heap"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
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

// signed wraps h with app lookup, body limits, Pusher request signature
// verification (§4.2), the app's API rate limit and, when Config.Replay is
// set, replay refusal.
//
// An unknown app id is answered exactly like a known app with a wrong
// auth_key (401, the same body), after the same work: the body is read and
// verified against a stand-in app whose key nobody knows. So neither the
// answer nor much of its timing tells which app ids exist; only a caller
// who already has an app's key gets further.
func (s *Server) signed(h apiHandler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw, status: http.StatusOK}
		defer func() { s.metrics.httpRequests.WithLabelValues(r.Pattern, strconv.Itoa(w.status)).Inc() }()
		a := s.apps.byID(r.PathValue("app_id"))
		cfg, appID := strangerApp, ""
		if a != nil {
			cfg, appID = a.config(), a.id
		}
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
		now := time.Now()
		err = protocol.VerifyRequest(r.Method, r.URL.Path, r.URL.Query(), body, cfg.Key, cfg.secrets(), now)
		if a == nil && err == nil {
			err = protocol.ErrWrongKey // the stand-in's key was guessed
		}
		if err != nil {
			reason := signatureReason(err)
			if a == nil {
				reason = "unknown_app" // for metrics and the operator's audit log only
			}
			s.apiRefused(w, r, appID, reason, http.StatusUnauthorized, err.Error())
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
				s.rateLimited(name, a.id, s.clientIP(r))
				writeError(w, http.StatusTooManyRequests, "rate limit exceeded for this app, retry after "+w.Header().Get("Retry-After")+"s")
				return
			}
		}
		// Last, so that only accepted requests are remembered: a request
		// refused above may be sent again as is.
		if s.cfg.Replay != nil && r.Method != http.MethodGet && !s.cfg.Replay.firstSeen(a.id, r, now) {
			s.apiRefused(w, r, a.id, "replay", http.StatusConflict,
				"request already accepted: each signed request is accepted once; sign it again to repeat it")
			return
		}
		h(w, r, a, cfg, body)
	})
}

// strangerApp stands in for unknown app ids in signed: its key is random,
// so a request for an unknown app fails like one with a wrong auth_key.
var strangerApp = func() *appConfig {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return newAppConfig(storage.App{Key: hex.EncodeToString(b[:16]), Secret: hex.EncodeToString(b[16:])})
}()

// apiRefused answers an HTTP API request refused for its credentials (a
// bad signature, an unknown app, a replay) with status and msg, and audits
// it. The refusal first counts against the client's AuthFailures budget:
// past it the answer is 429 and nothing is audited, so a flood from one
// client (an IPv6 /64) costs a metric and at most one warning per interval,
// not an audit entry per request.
func (s *Server) apiRefused(w http.ResponseWriter, r *http.Request, app, reason string, status int, msg string) {
	s.metrics.signatureFailure.WithLabelValues(reason).Inc()
	ip := s.clientIP(r)
	if d := s.cfg.Limits.AuthFailures.Allow(s.limitKey(ip)); !d.Allowed {
		setRateLimitHeaders(w.Header(), d)
		s.metrics.rateLimited.WithLabelValues("auth_failures").Inc()
		s.warnLimited("ratelimit-api-auth-failures", "rate limit reached: refused HTTP API requests", "limiter", "auth_failures")
		writeError(w, http.StatusTooManyRequests, "too many refused requests, retry after "+w.Header().Get("Retry-After")+"s")
		return
	}
	s.audit.Record(AuditRecord{App: app, Action: AuditAPIDenied, IP: ip, Reason: reason})
	s.warnLimited("api-signature", "HTTP API request refused", "app_id", app, "reason", reason)
	writeError(w, status, msg)
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

// DefaultReplayEntries is the size of a ReplayCache made with no size.
const DefaultReplayEntries = 100_000

// replayShards splits a ReplayCache so that concurrent writes of different
// requests rarely share a lock.
const replayShards = 16

// ReplayCache remembers the signed HTTP API writes accepted while their
// auth_timestamp is still within protocol.MaxClockSkew of the clock, so
// that a copy of one is refused (Config.Replay). A request is identified by
// its app and what its signature covers (method, path, every parameter but
// auth_signature, the body through body_md5), so re-encoding the
// signature or adding unsigned parameters does not make a copy new.
//
// Caveats: two identical writes signed in the same second are the same
// request to it, so a backend that sends one event twice within a second
// gets 409 for the second. Memory is bounded: when full, the entry closest
// to leaving the window is forgotten first, so only more than the bound of
// accepted writes within 20 minutes shortens the protection, and only
// holders of the app's secret can make writes accepted. It is per node: in
// a cluster a copy sent to another node is accepted.
type ReplayCache struct {
	seed   maphash.Seed
	max    int // entries per shard
	shards [replayShards]replayShard
}

type replayShard struct {
	mu      sync.Mutex
	seen    map[[sha256.Size]byte]struct{} // guarded by mu
	expires replayHeap                     // guarded by mu: the keys in seen, soonest expiry first
}

// NewReplayCache returns a cache holding at most maxEntries requests
// (rounded up to a multiple of 16); non-positive means
// DefaultReplayEntries. It starts no goroutine: expired entries are dropped
// as new ones arrive.
func NewReplayCache(maxEntries int) *ReplayCache {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayEntries
	}
	c := &ReplayCache{seed: maphash.MakeSeed(), max: (maxEntries + replayShards - 1) / replayShards}
	for i := range c.shards {
		c.shards[i].seen = map[[sha256.Size]byte]struct{}{}
	}
	return c
}

// firstSeen records the verified request r of app and reports whether it
// is new. The entry lasts until r's auth_timestamp leaves the window.
func (c *ReplayCache) firstSeen(app string, r *http.Request, now time.Time) bool {
	q := r.URL.Query()
	h := sha256.New()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(protocol.RequestString(r.Method, r.URL.Path, q)))
	var key [sha256.Size]byte
	h.Sum(key[:0])
	// VerifyRequest read the timestamp case-insensitively; when it was not
	// sent under its lowercase name, keep the entry for the longest any
	// request verified now can stay valid.
	expiry := now.Add(2 * protocol.MaxClockSkew).Unix()
	if ts, err := strconv.ParseInt(q.Get("auth_timestamp"), 10, 64); err == nil && ts+int64(protocol.MaxClockSkew/time.Second) < expiry {
		expiry = ts + int64(protocol.MaxClockSkew/time.Second) + 1
	}
	sh := &c.shards[maphash.Bytes(c.seed, key[:])%replayShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for len(sh.expires) > 0 && sh.expires[0].expiry < now.Unix() {
		delete(sh.seen, heap.Pop(&sh.expires).(replayEntry).key)
	}
	if _, ok := sh.seen[key]; ok {
		return false
	}
	if len(sh.seen) >= c.max {
		delete(sh.seen, heap.Pop(&sh.expires).(replayEntry).key)
	}
	sh.seen[key] = struct{}{}
	heap.Push(&sh.expires, replayEntry{key, expiry})
	return true
}

// Len is the number of requests remembered.
func (c *ReplayCache) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].seen)
		c.shards[i].mu.Unlock()
	}
	return n
}

type replayEntry struct {
	key    [sha256.Size]byte
	expiry int64 // unix seconds
}

// replayHeap is a container/heap of entries, soonest expiry first.
type replayHeap []replayEntry

func (h replayHeap) Len() int           { return len(h) }
func (h replayHeap) Less(i, j int) bool { return h[i].expiry < h[j].expiry }
func (h replayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *replayHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *replayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
