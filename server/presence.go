package server

import (
	"context"
	"errors"

	"github.com/sockudo/sockudo/server/protocol"
)

// Presence knows who is where across the cluster: the subscribers of every
// channel (counted), the members of presence channels, and the users
// signed in. The local implementation, the default, keeps it in memory; a
// Redis one (Redis mode) keeps per-node entries that other nodes expire
// when a node dies.
//
// Join and Leave return the transitions the server turns into events:
// member_added/member_removed go to the channel and channel_occupied/
// channel_vacated to webhooks, once across the cluster. The server calls
// Join and Leave for one channel one at a time on a node (channelLocks),
// and never under a hub or connection lock, so an implementation may do
// network I/O. A Presence is safe for concurrent use.
type Presence interface {
	// Join records socketID as a subscriber of channel; m is its presence
	// member (nil for other channels). A new member is refused with
	// ErrPresenceFull when the channel already has maxMembers users.
	Join(ctx context.Context, app, channel, socketID string, m *protocol.Member, maxMembers int) (JoinResult, error)
	// Leave undoes a Join; userID is the member's user id ("" if none).
	Leave(ctx context.Context, app, channel, socketID, userID string) (LeaveResult, error)
	// Members returns the users of a presence channel, each once.
	Members(ctx context.Context, app, channel string) ([]protocol.Member, error)
	// Channel returns one channel's counts; zero counts mean unoccupied.
	Channel(ctx context.Context, app, channel string) (ChannelCounts, error)
	// Channels returns the occupied channels of app whose names start with
	// prefix, in no particular order.
	Channels(ctx context.Context, app, prefix string) ([]ChannelCounts, error)
	// SignIn records socketID as signed in as userID; first reports the
	// user's first socket.
	SignIn(ctx context.Context, app, userID, socketID string) (first bool, err error)
	// SignOut undoes a SignIn; last reports that the user has no socket
	// left.
	SignOut(ctx context.Context, app, userID, socketID string) (last bool, err error)
	// Online reports for each user id whether it has a signed-in socket.
	Online(ctx context.Context, app string, userIDs []string) ([]bool, error)
}

// ErrPresenceFull refuses a new member of a presence channel that has
// reached the app's member limit.
var ErrPresenceFull = errors.New("server: presence channel is full")

// JoinResult is what a Join changed.
type JoinResult struct {
	// Occupied: the channel had no subscriber before.
	Occupied bool
	// Count is the channel's subscriber count after the join.
	Count int
	// FirstForUser: the member's user was not in the channel before.
	FirstForUser bool
	// Members are a presence channel's members after the join, for
	// subscription_succeeded; nil for other channels.
	Members []protocol.Member
}

// LeaveResult is what a Leave changed.
type LeaveResult struct {
	// Vacated: the channel has no subscriber left.
	Vacated bool
	// Count is the channel's subscriber count after the leave.
	Count int
	// LastForUser: the member's user has no socket left in the channel.
	LastForUser bool
}

// ChannelCounts are one channel's counts.
type ChannelCounts struct {
	Name string
	// Subscriptions counts subscribed sockets.
	Subscriptions int
	// Users counts the distinct users of a presence channel.
	Users int
}

// PresenceHandler receives the transitions no Join, Leave or SignOut of
// this node returned: those of a node that died, found by a Presence that
// expires a dead node's entries. The server implements it and answers them
// as if the sockets had left here (member_removed, subscription_count,
// lifecycle events, watchlist offline). A Presence reports each transition
// once across the cluster.
type PresenceHandler interface {
	HandleLeave(app, channel, userID string, res LeaveResult)
	HandleSignOut(app, userID string)
}

// PresenceReporter is a Presence that reports other nodes' transitions (an
// optional capability: the local Presence has none). New registers the
// server's handler with it.
type PresenceReporter interface {
	RegisterHandler(h PresenceHandler) error
}

// presenceHandler is the server's PresenceHandler.
type presenceHandler struct{ s *Server }

var _ PresenceHandler = presenceHandler{}

func (h presenceHandler) HandleLeave(app, channel, userID string, res LeaveResult) {
	a := h.s.apps.byID(app)
	if a == nil {
		return // the app is gone, and its sockets with it
	}
	mu := h.s.channelLocks.of(app, channel)
	mu.Lock()
	defer mu.Unlock()
	h.s.leftLocked(a, channel, userID, res)
}

func (h presenceHandler) HandleSignOut(app, userID string) {
	if a := h.s.apps.byID(app); a != nil {
		h.s.signedOut(a, userID)
	}
}
