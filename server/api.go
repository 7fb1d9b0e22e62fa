package server

import (
	"net/http"
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

// triggerLimits are the app's limits on API events.
func (c *appConfig) triggerLimits() protocol.TriggerLimits {
	return protocol.TriggerLimits{EventNameLength: c.MaxEventNameLength, PayloadBytes: c.MaxEventPayloadInKB * 1024,
		Channels: c.MaxEventChannelsAtOnce, ChannelNameLength: c.MaxChannelNameLength}
}

// publishEvent delivers one validated event to its channels, through the
// one publish path (publish.go).
func (s *Server) publishEvent(r *http.Request, a *app, cfg *appConfig, e *protocol.TriggerEvent, channels []string, data string) {
	ttl := time.Duration(cfg.CacheTTLSeconds) * time.Second
	for _, ch := range channels {
		a.msgsIn.Add(1)
		s.observe(ObserveAPIEvent, a.id, ch, e.Name, e.SocketID, "")
		err := s.publish(r.Context(), publication{app: a.id, channel: ch, event: e.Name, data: data, except: e.SocketID, cacheTTL: ttl})
		if err != nil {
			// The broker delivered locally; other nodes missed it (Redis
			// down). Logged at most once per interval: an outage must not
			// write a line per event.
			s.warnLimited("broker-publish", "publish failed", "app_id", a.id, "err", err)
		}
	}
}

// channelInfo reads a channel's counts from Presence.
func (s *Server) channelInfo(r *http.Request, a *app, name string) (protocol.ChannelInfo, error) {
	c, err := s.presence.Channel(r.Context(), a.id, name)
	return protocol.ChannelInfo{Name: name, Subscriptions: c.Subscriptions, Users: c.Users}, err
}

// errPresence answers a request that Presence could not serve.
func (s *Server) errPresence(w http.ResponseWriter, a *app, err error) {
	s.warnLimited("presence-read", "reading presence failed", "app_id", a.id, "err", err)
	writeError(w, http.StatusServiceUnavailable, "channel state unavailable, retry later")
}

func (s *Server) apiTrigger(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, body []byte) {
	e, err := protocol.ParseTrigger(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	channels, data, bad := e.Validate(cfg.triggerLimits(), true)
	if bad != nil {
		writeError(w, bad.Status, bad.Message)
		return
	}
	if err := s.checkPush(a.id, e.Push); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.publishEvent(r, a, cfg, &e, channels, data)
	s.pushEvent(r, a.id, channels, e.Push)
	if e.Info == "" {
		writeJSON(w, http.StatusOK, []byte("{}"))
		return
	}
	list := make([]protocol.ChannelInfo, 0, len(channels))
	seen := make(map[string]bool, len(channels))
	for _, ch := range channels {
		if seen[ch] {
			continue
		}
		seen[ch] = true
		c, err := s.channelInfo(r, a, ch)
		if err != nil {
			s.errPresence(w, a, err)
			return
		}
		list = append(list, c)
	}
	writeJSON(w, http.StatusOK, protocol.ChannelsBody(list, protocol.ParseInfo(e.Info)))
}

func (s *Server) apiBatch(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, body []byte) {
	batch, err := protocol.ParseBatch(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(batch) == 0 {
		writeError(w, http.StatusBadRequest, "missing batch")
		return
	}
	if len(batch) > cfg.MaxEventBatchSize {
		writeError(w, http.StatusBadRequest, "too many events in batch: at most "+strconv.Itoa(cfg.MaxEventBatchSize))
		return
	}
	type valid struct {
		channels []string
		data     string
	}
	checked := make([]valid, len(batch))
	anyInfo := false
	// Validate everything first: a batch is accepted or refused whole.
	limits := cfg.triggerLimits()
	for i := range batch {
		chs, data, bad := batch[i].Validate(limits, false)
		if bad != nil {
			writeError(w, bad.Status, "batch["+strconv.Itoa(i)+"]: "+bad.Message)
			return
		}
		if err := s.checkPush(a.id, batch[i].Push); err != nil {
			writeError(w, http.StatusBadRequest, "batch["+strconv.Itoa(i)+"]: "+err.Error())
			return
		}
		checked[i] = valid{chs, data}
		anyInfo = anyInfo || batch[i].Info != ""
	}
	for i := range batch {
		s.publishEvent(r, a, cfg, &batch[i], checked[i].channels, checked[i].data)
	}
	// Pushes after every publish: persisting notifications must not delay
	// the realtime events of the rest of the batch.
	for i := range batch {
		s.pushEvent(r, a.id, checked[i].channels, batch[i].Push)
	}
	if !anyInfo {
		writeJSON(w, http.StatusOK, []byte("{}"))
		return
	}
	list := make([]protocol.ChannelInfo, len(batch))
	infos := make([]*protocol.Info, len(batch))
	for i := range batch {
		if batch[i].Info == "" {
			continue
		}
		in := protocol.ParseInfo(batch[i].Info)
		if list[i], err = s.channelInfo(r, a, checked[i].channels[0]); err != nil {
			s.errPresence(w, a, err)
			return
		}
		infos[i] = &in
	}
	writeJSON(w, http.StatusOK, protocol.BatchBody(list, infos))
}

func (s *Server) apiChannels(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	q := r.URL.Query()
	prefix := q.Get("filter_by_prefix")
	in := protocol.ParseInfo(q.Get("info"))
	if in.UserCount && !strings.HasPrefix(prefix, "presence-") {
		writeError(w, http.StatusBadRequest, "info=user_count requires filter_by_prefix=presence-")
		return
	}
	counts, err := s.presence.Channels(r.Context(), a.id, prefix)
	if err != nil {
		s.errPresence(w, a, err)
		return
	}
	list := make([]protocol.ChannelInfo, len(counts))
	for i, c := range counts {
		list[i] = protocol.ChannelInfo{Name: c.Name, Subscriptions: c.Subscriptions, Users: c.Users}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	writeJSON(w, http.StatusOK, protocol.ChannelsBody(list, in))
}

func (s *Server) apiChannel(w http.ResponseWriter, r *http.Request, a *app, cfg *appConfig, _ []byte) {
	name := r.PathValue("channel_name")
	if !protocol.ValidChannelName(name, cfg.MaxChannelNameLength) {
		writeError(w, http.StatusBadRequest, "invalid channel name")
		return
	}
	kind := protocol.Classify(name)
	in := protocol.ParseInfo(r.URL.Query().Get("info"))
	if in.UserCount && kind.Type != protocol.Presence {
		writeError(w, http.StatusBadRequest, "info=user_count is only available for presence channels")
		return
	}
	c, err := s.channelInfo(r, a, name)
	if err != nil {
		s.errPresence(w, a, err)
		return
	}
	if in.Cache && kind.Cache {
		e, ok, err := s.broker.Cache(r.Context(), a.id, name)
		if err != nil {
			s.warnLimited("broker-cache", "reading a cache channel failed", "app_id", a.id, "err", err)
		}
		if ok {
			c.Cache = &protocol.CachedEvent{Event: e.Event, Data: e.Data, TTLSeconds: int(time.Until(e.Expires).Seconds() + 0.5)}
		}
	}
	writeJSON(w, http.StatusOK, protocol.ChannelBody(c, in))
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
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	sort.Strings(ids)
	writeJSON(w, http.StatusOK, protocol.UsersBody(ids))
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
