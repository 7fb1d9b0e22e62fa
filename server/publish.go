package server

import (
	"context"
	"strings"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

// publication is one event on its way to sockets: from the HTTP API, from
// a client (client events) or to a user (#server-to-user- channels).
type publication struct {
	app     string
	channel string
	event   string
	data    string
	// userID is the sender of a client event on a presence channel.
	userID string
	// except is the socket_id that must not receive the event.
	except string
	// cacheTTL > 0 keeps the event as a cache channel's last event.
	cacheTTL time.Duration
}

// publish is the one way an event reaches sockets: it is encoded once
// into a frame that every receiving socket shares, remembered for a cache
// channel, and handed to the broker, which delivers it on every node.
func (s *Server) publish(ctx context.Context, p publication) error {
	frame := protocol.EventFrame(p.event, p.channel, p.data, p.userID)
	m := Message{App: p.app, Channel: p.channel, Frame: frame, Except: p.except}
	kind := protocol.Classify(p.channel)
	switch {
	case kind.Type == protocol.ServerToUser:
		m.User = strings.TrimPrefix(p.channel, protocol.ServerToUserPrefix)
	case kind.Cache && p.cacheTTL > 0:
		e := CacheEntry{Event: p.event, Data: p.data, Frame: frame, Expires: time.Now().Add(p.cacheTTL)}
		if err := s.broker.SetCache(ctx, p.app, p.channel, e); err != nil {
			s.warnLimited("broker-cache", "caching the last event failed", "app_id", p.app, "err", err)
		}
	}
	return s.broker.Publish(ctx, m)
}

// broadcast hands a message the server built (presence and count events)
// to the broker; a failure is logged, at most once per interval.
func (s *Server) broadcast(m Message) {
	if err := s.broker.Publish(s.ctx, m); err != nil {
		s.warnLimited("broker-publish", "broker publish failed", "app_id", m.App, "err", err)
	}
}
