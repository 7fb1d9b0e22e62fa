package server

import (
	"context"
	"time"

	"github.com/sockudo/sockudo/server/protocol"
)

// Message is one event for sockets on every node: the subscribers of
// Channel or, when User is set, the sockets signed in as User (a
// #server-to-user- channel; Channel still names it).
type Message struct {
	App     string
	Channel string
	User    string
	// Frame is the complete WebSocket frame; read-only once published.
	Frame []byte
	// Except is the socket_id that must not receive the message ("" = none).
	Except string
}

// CommandKind names a node-to-node command.
type CommandKind uint8

// Commands act on sockets wherever they are connected.
const (
	// CommandTerminate closes every socket signed in as the user with 4009
	// (POST /apps/{id}/users/{user}/terminate_connections).
	CommandTerminate CommandKind = iota + 1
	// CommandOnline and CommandOffline tell the sockets whose watchlist
	// names the user that it came online or went offline (§2.3).
	CommandOnline
	CommandOffline
)

// Command is an instruction for the sockets of one user on every node.
type Command struct {
	Kind CommandKind
	App  string
	User string
}

// CacheEntry is the last event published to a cache channel, replayed to
// its new subscribers until Expires (§2.3 pusher:cache_miss).
type CacheEntry struct {
	Event, Data string
	// Frame is the encoded event, replayed as is.
	Frame   []byte
	Expires time.Time
}

// Broker carries messages and commands to every node, this one included,
// and keeps the cache channels' last events. The local broker, the
// default, hands everything straight to this node's handler; a Redis
// broker (Redis mode) fans out across nodes.
//
// Calls must not block on sockets: they return once the message is handed
// to the handler or the transport. Delivery is at most once and ordered
// per channel from one publisher. A broker is safe for concurrent use.
type Broker interface {
	// Register installs the receiver of every message and command, from
	// every node. The server calls it once, in New, before any other
	// method; a broker must not deliver before it.
	Register(h BrokerHandler) error
	// Publish delivers m to its channel's subscribers or its user's sockets
	// on every node.
	Publish(ctx context.Context, m Message) error
	// Command runs c on every node.
	Command(ctx context.Context, c Command) error
	// SetCache remembers e as the last event of a cache channel.
	SetCache(ctx context.Context, app, channel string, e CacheEntry) error
	// Cache returns the channel's unexpired last event; ok is false when
	// there is none.
	Cache(ctx context.Context, app, channel string) (e CacheEntry, ok bool, err error)
}

// BrokerHandler receives what a Broker delivers. The server implements it;
// its methods only enqueue on local sockets and never block.
type BrokerHandler interface {
	HandleMessage(m Message)
	HandleCommand(c Command)
}

// brokerHandler is the server's BrokerHandler: it delivers to this node's
// sockets.
type brokerHandler struct{ s *Server }

var _ BrokerHandler = brokerHandler{}

func (h brokerHandler) HandleMessage(m Message) {
	if m.User != "" {
		h.s.users.deliver(m.App, m.User, m.Frame, m.Except)
		return
	}
	if n := h.s.hub.publish(m.App, m.Channel, m.Frame, m.Except); n > 0 {
		if a := h.s.apps.byID(m.App); a != nil {
			a.msgsOut.Add(uint64(n))
		}
	}
}

func (h brokerHandler) HandleCommand(cmd Command) {
	switch cmd.Kind {
	case CommandTerminate:
		h.s.users.each(cmd.App, cmd.User, false, func(c *conn) { c.close(protocol.ErrTerminated, false) })
	case CommandOnline, CommandOffline:
		frame := watchlistFrame(cmd.User, cmd.Kind == CommandOnline)
		h.s.users.each(cmd.App, cmd.User, true, func(c *conn) { c.send(frame) })
	}
}
