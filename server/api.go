package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
)

// maxBodyBytes bounds an HTTP API request body. A full batch (10 events of
// 10 KB) is far below it; per-event limits are checked separately.
const maxBodyBytes = 1 << 20

// routeAPI registers the Pusher HTTP API (§4).
func (s *Server) routeAPI(mux *http.ServeMux) {
	routes := []struct {
		method, path string
		h            apiHandler
	}{
		{"POST", "/apps/{app_id}/events", s.apiTrigger},
		{"POST", "/apps/{app_id}/batch_events", s.apiBatch},
		{"GET", "/apps/{app_id}/channels", s.apiChannels},
		{"GET", "/apps/{app_id}/channels/{channel_name}", s.apiChannel},
		{"GET", "/apps/{app_id}/channels/{channel_name}/users", s.apiUsers},
		{"POST", "/apps/{app_id}/users/{user_id}/terminate_connections", s.apiTerminate},
	}
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, s.signed(rt.h))
		// Other methods get the API's JSON error shape, not ServeMux's
		// plain-text 405.
		allow := rt.method
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
		})
	}
	for _, e := range s.extraAPI {
		h := e.h
		mux.Handle(e.pattern, s.signed(func(w http.ResponseWriter, r *http.Request, a *app, _ *appConfig, body []byte) {
			h(w, r, a.id, body)
		}))
	}
	mux.HandleFunc("/apps/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "unknown API route "+r.Method+" "+r.URL.Path)
	})
}

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

// triggerEvent is one event in a trigger or batch body (§4.3, §4.4).
type triggerEvent struct {
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	SocketID string          `json:"socket_id"`
	Info     string          `json:"info"`
}

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// apiStatus is an HTTP API failure: status and message.
type apiStatus struct {
	code int
	msg  string
}

// validate checks one event and returns its channels and data string.
func (e *triggerEvent) validate(cfg *appConfig, allowMany bool) ([]string, string, *apiStatus) {
	if e.Name == "" {
		return nil, "", &apiStatus{400, "missing event name"}
	}
	if !protocol.ValidEventName(e.Name, cfg.MaxEventNameLength) {
		return nil, "", &apiStatus{400, "invalid event name: at most " + strconv.Itoa(cfg.MaxEventNameLength) + " characters, not pusher: or pusher_internal:"}
	}
	if len(e.Data) == 0 {
		return nil, "", &apiStatus{400, "missing data"}
	}
	data := protocol.DataString(e.Data)
	if limit := cfg.MaxEventPayloadInKB * 1024; len(data) > limit {
		return nil, "", &apiStatus{413, "The data content of this event exceeds the allowed maximum (" + strconv.Itoa(limit) + " bytes)"}
	}
	channels := e.Channels
	if e.Channel != "" {
		channels = append(channels, e.Channel)
	}
	if len(channels) == 0 {
		return nil, "", &apiStatus{400, "missing channel or channels"}
	}
	if !allowMany && len(channels) > 1 {
		return nil, "", &apiStatus{400, "a batch event has one channel"}
	}
	if len(channels) > cfg.MaxEventChannelsAtOnce {
		return nil, "", &apiStatus{400, "too many channels: at most " + strconv.Itoa(cfg.MaxEventChannelsAtOnce)}
	}
	for _, ch := range channels {
		if !protocol.ValidChannelName(ch, cfg.MaxChannelNameLength) {
			return nil, "", &apiStatus{400, "invalid channel name " + strconv.Quote(truncate(ch, 64))}
		}
		if len(channels) > 1 && protocol.Classify(ch).Type == protocol.Encrypted {
			return nil, "", &apiStatus{400, "an event on an encrypted channel must name only that channel"}
		}
	}
	if e.SocketID != "" && !socketIDPattern.MatchString(e.SocketID) {
		return nil, "", &apiStatus{400, "invalid socket_id"}
	}
	return channels, data, nil
}

// publish delivers one validated event to its channels: the frame is
// encoded once per channel and shared by every receiving socket.
func (s *Server) publish(a *app, cfg *appConfig, e *triggerEvent, channels []string, data string) {
	for _, ch := range channels {
		frame := textFrame(protocol.AppendEvent(nil, e.Name, ch, data, ""))
		kind := protocol.Classify(ch)
		if kind.Cache {
			s.hub.cache.put(chanKey{a.id, ch}, cacheEntry{event: e.Name, data: data, frame: frame,
				expires: time.Now().Add(time.Duration(cfg.CacheTTLSeconds) * time.Second)})
		}
		if kind.Type == protocol.ServerToUser {
			s.users.deliver(a.id, strings.TrimPrefix(ch, protocol.ServerToUserPrefix), frame, e.SocketID)
			continue
		}
		if err := s.broker.Publish(Message{App: a.id, Channel: ch, Frame: frame, Except: e.SocketID}); err != nil {
			s.log.Error("publish failed", "app_id", a.id, "err", err)
		}
	}
}

// infoAttrs parses an info parameter ("user_count,subscription_count").
type infoAttrs struct{ userCount, subscriptionCount, cache bool }

func parseInfo(s string) infoAttrs {
	var in infoAttrs
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "user_count":
			in.userCount = true
		case "subscription_count":
			in.subscriptionCount = true
		case "cache":
			in.cache = true
		}
	}
	return in
}

// appendCounts appends the requested count attributes of ci to an object
// being built (without braces). user_count is given for presence channels
// only.
func appendCounts(b []byte, ci channelInfo, in infoAttrs) []byte {
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	if in.userCount && ci.presence {
		sep()
		b = append(b, `"user_count":`...)
		b = strconv.AppendInt(b, int64(ci.userCount), 10)
	}
	if in.subscriptionCount {
		sep()
		b = append(b, `"subscription_count":`...)
		b = strconv.AppendInt(b, int64(ci.subscriptionCount), 10)
	}
	return b
}

func (s *Server) apiTrigger(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, body []byte) {
	var e triggerEvent
	if err := json.Unmarshal(body, &e); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	channels, data, st := e.validate(cfg, true)
	if st != nil {
		writeError(w, st.code, st.msg)
		return
	}
	s.publish(a, cfg, &e, channels, data)
	if e.Info == "" {
		writeJSON(w, http.StatusOK, []byte("{}"))
		return
	}
	in := parseInfo(e.Info)
	b := []byte(`{"channels":{`)
	seen := make(map[string]bool, len(channels))
	for _, ch := range channels {
		if seen[ch] {
			continue
		}
		if len(seen) > 0 {
			b = append(b, ',')
		}
		seen[ch] = true
		ci, _ := s.hub.info(a.id, ch)
		ci.presence = protocol.Classify(ch).Type == protocol.Presence
		b = protocol.AppendString(b, ch)
		b = append(b, ":{"...)
		b = appendCounts(b, ci, in)
		b = append(b, '}')
	}
	writeJSON(w, http.StatusOK, append(b, "}}"...))
}

func (s *Server) apiBatch(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, body []byte) {
	var req struct {
		Batch []triggerEvent `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	if len(req.Batch) == 0 {
		writeError(w, http.StatusBadRequest, "missing batch")
		return
	}
	if len(req.Batch) > cfg.MaxEventBatchSize {
		writeError(w, http.StatusBadRequest, "too many events in batch: at most "+strconv.Itoa(cfg.MaxEventBatchSize))
		return
	}
	type valid struct {
		channels []string
		data     string
	}
	checked := make([]valid, len(req.Batch))
	anyInfo := false
	// Validate everything first: a batch is accepted or refused whole.
	for i := range req.Batch {
		chs, data, st := req.Batch[i].validate(cfg, false)
		if st != nil {
			writeError(w, st.code, "batch["+strconv.Itoa(i)+"]: "+st.msg)
			return
		}
		checked[i] = valid{chs, data}
		anyInfo = anyInfo || req.Batch[i].Info != ""
	}
	for i := range req.Batch {
		s.publish(a, cfg, &req.Batch[i], checked[i].channels, checked[i].data)
	}
	if !anyInfo {
		writeJSON(w, http.StatusOK, []byte("{}"))
		return
	}
	b := []byte(`{"batch":[`)
	for i := range req.Batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if req.Batch[i].Info != "" {
			ch := checked[i].channels[0]
			ci, _ := s.hub.info(a.id, ch)
			ci.presence = protocol.Classify(ch).Type == protocol.Presence
			b = appendCounts(b, ci, parseInfo(req.Batch[i].Info))
		}
		b = append(b, '}')
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

func (s *Server) apiChannels(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	q := r.URL.Query()
	prefix := q.Get("filter_by_prefix")
	in := parseInfo(q.Get("info"))
	if in.userCount && !strings.HasPrefix(prefix, "presence-") {
		writeError(w, http.StatusBadRequest, "info=user_count requires filter_by_prefix=presence-")
		return
	}
	list := s.hub.channels(a.id, prefix)
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	// Always an object, never [] or null (§4.5).
	b := []byte(`{"channels":{`)
	for i, ci := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendString(b, ci.name)
		b = append(b, ":{"...)
		b = appendCounts(b, ci, in)
		b = append(b, '}')
	}
	writeJSON(w, http.StatusOK, append(b, "}}"...))
}

func (s *Server) apiChannel(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	name := r.PathValue("channel_name")
	if !protocol.ValidChannelName(name, cfg.MaxChannelNameLength) {
		writeError(w, http.StatusBadRequest, "invalid channel name")
		return
	}
	kind := protocol.Classify(name)
	in := parseInfo(r.URL.Query().Get("info"))
	if in.userCount && kind.Type != protocol.Presence {
		writeError(w, http.StatusBadRequest, "info=user_count is only available for presence channels")
		return
	}
	ci, occupied := s.hub.info(a.id, name)
	ci.presence = kind.Type == protocol.Presence
	b := []byte(`{"occupied":`)
	b = strconv.AppendBool(b, occupied)
	if counts := appendCounts(nil, ci, in); len(counts) > 0 {
		b = append(b, ',')
		b = append(b, counts...)
	}
	if in.cache && kind.Cache {
		if e, ok := s.hub.cache.entry(chanKey{a.id, name}); ok {
			ttl := int(time.Until(e.expires).Seconds() + 0.5)
			b = append(b, `,"cache":{"event":`...)
			b = protocol.AppendString(b, e.event)
			b = append(b, `,"data":`...)
			b = protocol.AppendString(b, e.data)
			b = append(b, `,"ttl":`...)
			b = strconv.AppendInt(b, int64(ttl), 10)
			b = append(b, '}')
		}
	}
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func (s *Server) apiUsers(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	name := r.PathValue("channel_name")
	if protocol.Classify(name).Type != protocol.Presence {
		writeError(w, http.StatusBadRequest, "users are only available for presence channels")
		return
	}
	ids := s.hub.users(a.id, name)
	sort.Strings(ids)
	b := []byte(`{"users":[`)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = protocol.AppendString(b, id)
		b = append(b, '}')
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

func (s *Server) apiTerminate(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	user := r.PathValue("user_id")
	for _, c := range s.users.conns(a.id, user) {
		c.close(protocol.ErrTerminated, false)
	}
	writeJSON(w, http.StatusOK, []byte("{}"))
}

// writeJSON writes a JSON body with status.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes {"error":msg,"code":status}: every failure of the HTTP
// API has a status and a JSON body.
func writeError(w http.ResponseWriter, status int, msg string) {
	b := append([]byte(`{"error":`), protocol.AppendString(nil, msg)...)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	writeJSON(w, status, append(b, '}'))
}
