package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

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

// publishEvent delivers one validated event to its channels, through the
// one publish path (publish.go).
func (s *Server) publishEvent(r *http.Request, a *app, cfg *appConfig, e *triggerEvent, channels []string, data string) {
	ttl := time.Duration(cfg.CacheTTLSeconds) * time.Second
	for _, ch := range channels {
		err := s.publish(r.Context(), publication{app: a.id, channel: ch, event: e.Name, data: data, except: e.SocketID, cacheTTL: ttl})
		if err != nil {
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

// appendCounts appends the requested count attributes of c to an object
// being built (without braces). user_count is given for presence channels
// only.
func appendCounts(b []byte, c ChannelCounts, in infoAttrs) []byte {
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	if in.userCount && protocol.Classify(c.Name).Type == protocol.Presence {
		sep()
		b = append(b, `"user_count":`...)
		b = strconv.AppendInt(b, int64(c.Users), 10)
	}
	if in.subscriptionCount {
		sep()
		b = append(b, `"subscription_count":`...)
		b = strconv.AppendInt(b, int64(c.Subscriptions), 10)
	}
	return b
}

// appendChannel appends "name":{counts} to a channels object.
func appendChannel(b []byte, c ChannelCounts, in infoAttrs) []byte {
	b = protocol.AppendString(b, c.Name)
	b = append(b, ":{"...)
	return append(appendCounts(b, c, in), '}')
}

// errPresence answers a request that Presence could not serve.
func (s *Server) errPresence(w http.ResponseWriter, a *app, err error) {
	s.warnLimited("presence-read", "reading presence failed", "app_id", a.id, "err", err)
	writeError(w, http.StatusServiceUnavailable, "channel state unavailable, retry later")
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
	s.publishEvent(r, a, cfg, &e, channels, data)
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
		c, err := s.presence.Channel(r.Context(), a.id, ch)
		if err != nil {
			s.errPresence(w, a, err)
			return
		}
		b = appendChannel(b, c, in)
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
		s.publishEvent(r, a, cfg, &req.Batch[i], checked[i].channels, checked[i].data)
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
			c, err := s.presence.Channel(r.Context(), a.id, checked[i].channels[0])
			if err != nil {
				s.errPresence(w, a, err)
				return
			}
			b = appendCounts(b, c, parseInfo(req.Batch[i].Info))
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
	list, err := s.presence.Channels(r.Context(), a.id, prefix)
	if err != nil {
		s.errPresence(w, a, err)
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	// Always an object, never [] or null (§4.5).
	b := []byte(`{"channels":{`)
	for i, c := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendChannel(b, c, in)
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
	c, err := s.presence.Channel(r.Context(), a.id, name)
	if err != nil {
		s.errPresence(w, a, err)
		return
	}
	b := []byte(`{"occupied":`)
	b = strconv.AppendBool(b, c.Subscriptions > 0)
	if counts := appendCounts(nil, c, in); len(counts) > 0 {
		b = append(b, ',')
		b = append(b, counts...)
	}
	if in.cache && kind.Cache {
		e, ok, err := s.broker.Cache(r.Context(), a.id, name)
		if err != nil {
			s.warnLimited("broker-cache", "reading a cache channel failed", "app_id", a.id, "err", err)
		}
		if ok {
			ttl := int(time.Until(e.Expires).Seconds() + 0.5)
			b = append(b, `,"cache":{"event":`...)
			b = protocol.AppendString(b, e.Event)
			b = append(b, `,"data":`...)
			b = protocol.AppendString(b, e.Data)
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
	members, err := s.presence.Members(r.Context(), a.id, name)
	if err != nil {
		s.errPresence(w, a, err)
		return
	}
	sort.Slice(members, func(i, j int) bool { return members[i].UserID < members[j].UserID })
	b := []byte(`{"users":[`)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = protocol.AppendString(b, m.UserID)
		b = append(b, '}')
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

func (s *Server) apiTerminate(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	if err := s.broker.Command(r.Context(), Command{Kind: CommandTerminate, App: a.id, User: r.PathValue("user_id")}); err != nil {
		s.warnLimited("broker-command", "broker command failed", "app_id", a.id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "terminating the connections failed, retry later")
		return
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
