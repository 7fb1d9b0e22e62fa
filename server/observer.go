package server

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

// This file is what the operator console (package console) sees of the
// server: a non-blocking hook on live activity and read-only views of the
// apps, their counts and their channels, plus a test trigger through the
// one publish path.

// Kinds of Observation.
const (
	ObserveConnected    = "connected"
	ObserveDisconnected = "disconnected"
	ObserveSubscribed   = "subscribed"
	ObserveUnsubscribed = "unsubscribed"
	ObserveClientEvent  = "client_event"
	ObserveAPIEvent     = "api_event"
)

// Observation is one thing that happened on this node, for a live view.
// It never carries a secret, a signature or a payload; fields a Kind does
// not use are empty.
type Observation struct {
	Time     time.Time `json:"time"`
	App      string    `json:"app_id"`
	Kind     string    `json:"kind"`
	Channel  string    `json:"channel,omitempty"`
	Event    string    `json:"event,omitempty"`
	SocketID string    `json:"socket_id,omitempty"`
	UserID   string    `json:"user_id,omitempty"`
}

// Observer receives Observations. Observe is called on the hot path,
// outside hub locks, and must not block: implementations drop what they
// cannot queue.
type Observer interface {
	Observe(Observation)
}

type observerRef struct{ o Observer }

// SetObserver installs o, or removes the observer when o is nil. It may be
// called at any time: a console installs itself while someone watches and
// removes itself after, so that an unwatched server pays one atomic load
// per observation point.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&observerRef{o})
}

// observe reports an observation when an observer is installed. Call sites
// on hot paths check s.observer themselves to avoid building the value.
func (s *Server) observe(kind, app, channel, event, socketID, userID string) {
	if r := s.observer.Load(); r != nil {
		r.o.Observe(Observation{Time: time.Now(), App: app, Kind: kind, Channel: channel, Event: event,
			SocketID: socketID, UserID: userID})
	}
}

// observeConn reports a socket's connect (up) or disconnect.
func (s *Server) observeConn(c *conn, up bool) {
	if s.observer.Load() == nil {
		return
	}
	kind := ObserveDisconnected
	if up {
		kind = ObserveConnected
	}
	s.observe(kind, c.app.id, "", "", c.socketID, "")
}

// AppStats are the live counters of one app on this node.
type AppStats struct {
	// Connections is the number of open sockets.
	Connections int64
	// MessagesIn counts messages received: client frames and HTTP API
	// events (one per channel).
	MessagesIn uint64
	// MessagesOut counts event frames delivered to sockets by the fan-out.
	MessagesOut uint64
}

// AppIDs returns the ids of the loaded apps, sorted.
func (s *Server) AppIDs() []string {
	idx := s.apps.index.Load()
	if idx == nil {
		return nil
	}
	ids := make([]string, 0, len(idx.byID))
	for id := range idx.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// AppStats returns app's counters; ok is false for an unknown app.
func (s *Server) AppStats(appID string) (st AppStats, ok bool) {
	a := s.apps.byID(appID)
	if a == nil {
		return AppStats{}, false
	}
	return AppStats{Connections: a.conns.Load(), MessagesIn: a.msgsIn.Load(), MessagesOut: a.msgsOut.Load()}, true
}

// AppByKey returns the id and the valid secrets of the app with key; ok is
// false when there is none. The secrets are for constant-time comparison
// only and must never be shown.
func (s *Server) AppByKey(key string) (appID string, secrets []string, ok bool) {
	a := s.apps.byKey(key)
	if a == nil {
		return "", nil, false
	}
	return a.id, a.config().secrets(), true
}

// Channels returns app's occupied channels starting with prefix, sorted by
// name.
func (s *Server) Channels(ctx context.Context, appID, prefix string) ([]ChannelCounts, error) {
	cs, err := s.presence.Channels(ctx, appID, prefix)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs, err
}

// ChannelDetail is one channel as the console's inspector shows it.
type ChannelDetail struct {
	Counts ChannelCounts
	// Members are the presence members (presence channels only).
	Members []protocol.Member
	// CachedEvent and CachedData are a cache channel's last event; empty
	// when none.
	CachedEvent, CachedData string
}

// ErrUnknownApp is returned for an app id that is not loaded.
var ErrUnknownApp = errors.New("server: unknown app")

// ErrInvalidEvent is returned by Trigger for a channel or event name the
// app's limits refuse.
var ErrInvalidEvent = errors.New("server: invalid channel or event")

// Channel returns the detail of app's channel name.
func (s *Server) Channel(ctx context.Context, appID, name string) (ChannelDetail, error) {
	a := s.apps.byID(appID)
	if a == nil {
		return ChannelDetail{}, ErrUnknownApp
	}
	var d ChannelDetail
	var err error
	if d.Counts, err = s.presence.Channel(ctx, appID, name); err != nil {
		return d, err
	}
	d.Counts.Name = name
	kind := protocol.Classify(name)
	if kind.Type == protocol.Presence {
		if d.Members, err = s.presence.Members(ctx, appID, name); err != nil {
			return d, err
		}
	}
	if kind.Cache {
		if e, ok, err := s.broker.Cache(ctx, appID, name); err == nil && ok {
			d.CachedEvent, d.CachedData = e.Event, e.Data
		}
	}
	return d, nil
}

// Trigger publishes event with data on app's channel through the one
// publish path, as the HTTP API would, and reports it as an API event.
func (s *Server) Trigger(ctx context.Context, appID, channel, event, data string) error {
	a := s.apps.byID(appID)
	if a == nil {
		return ErrUnknownApp
	}
	cfg := a.config()
	if !protocol.ValidChannelName(channel, cfg.MaxChannelNameLength) || !protocol.ValidEventName(event, cfg.MaxEventNameLength) ||
		len(data) > cfg.MaxEventPayloadInKB*1024 {
		return ErrInvalidEvent
	}
	ttl := time.Duration(cfg.CacheTTLSeconds) * time.Second
	a.msgsIn.Add(1)
	s.observe(ObserveAPIEvent, a.id, channel, event, "", "")
	return s.publish(ctx, publication{app: a.id, channel: channel, event: event, data: data, cacheTTL: ttl})
}
