package server

import (
	"errors"
	"strconv"
	"strings"

	"golang.org/x/time/rate"

	"github.com/sockudo/sockudo/server/protocol"
)

// The client: what a socket may ask of the server (§2.2). Messages of one
// socket are handled one at a time, in order, on its read side (gws runs
// OnMessage with ParallelGolimit 1); only teardown can run beside them.

// handleMessage dispatches one client frame.
func (s *Server) handleMessage(c *conn, b []byte) {
	c.app.msgsIn.Add(1)
	in, err := protocol.Decode(b)
	if err != nil {
		c.sendError(protocol.CodeNone, err.Error(), "")
		return
	}
	switch in.Event {
	case "pusher:ping":
		c.send(protocol.PongFrame)
	case "pusher:pong":
		// Activity is recorded for every frame; nothing else to do.
	case "pusher:subscribe":
		s.handleSubscribe(c, in)
	case "pusher:unsubscribe":
		s.handleUnsubscribe(c, in)
	case "pusher:signin":
		s.handleSignin(c, in)
	default:
		if strings.HasPrefix(in.Event, "client-") {
			s.handleClientEvent(c, in)
			return
		}
		c.sendError(protocol.CodeNone, "Unsupported event "+strconv.Quote(truncate(in.Event, 64)), "")
	}
}

func (s *Server) handleSubscribe(c *conn, in protocol.Inbound) {
	sub, err := protocol.ParseSubscribe(in.Data)
	if err != nil {
		c.sendError(protocol.CodeNone, "Invalid pusher:subscribe: "+err.Error(), "")
		return
	}
	name := sub.Channel
	cfg := c.app.config()
	if !protocol.ValidChannelName(name, cfg.MaxChannelNameLength) {
		c.send((&protocol.SubscriptionError{Status: 400, Message: "Invalid channel name: at most " +
			strconv.Itoa(cfg.MaxChannelNameLength) + " characters from A-Z a-z 0-9 _ - = @ , . ;"}).Frame(name))
		return
	}
	kind := protocol.Classify(name)
	c.mu.Lock()
	closed, existing, user, n := c.closed, c.subLocked(name) != nil, c.user, len(c.subs)
	c.mu.Unlock()
	if closed {
		return
	}
	if existing {
		c.sendError(protocol.CodeNone, "Existing subscription to channel "+name, "")
		return
	}
	// The socket's messages are handled one at a time, so n cannot grow
	// before this subscription is recorded.
	if limit := s.cfg.MaxChannelsPerConnection; n >= limit {
		s.metrics.rateLimited.WithLabelValues("ws_channels").Inc()
		c.send((&protocol.SubscriptionError{Status: 4100,
			Message: "Too many channels on this connection: at most " + strconv.Itoa(limit)}).Frame(name))
		return
	}
	// Authorisation runs without locks: with Redis it may wait on the
	// network.
	var member *protocol.Member
	switch kind.Type {
	case protocol.ServerToUser:
		// Only the signed-in user may subscribe to its own channel (§2.4).
		if user == nil || name != protocol.ServerToUserPrefix+user.id {
			c.send((&protocol.SubscriptionError{Status: 401, Message: "Subscription to " + name + " requires signing in as that user"}).Frame(name))
			return
		}
		c.mu.Lock()
		if !c.closed {
			c.addSubLocked(&subscription{name: name, c: c})
		}
		c.mu.Unlock()
		s.metrics.subsByType[kind.Type].Inc()
		c.send(protocol.SubscriptionSucceededFrame(name))
		return
	case protocol.Private, protocol.Encrypted:
		if e := s.checkChannelAuth(c, cfg, sub.Auth, protocol.ChannelString(c.socketID, name, "")); e != nil {
			c.send(e.Frame(name))
			return
		}
	case protocol.Presence:
		m, e := s.presenceMember(c, cfg, user, name, sub)
		if e != nil {
			c.send(e.Frame(name))
			return
		}
		member = &m
	}
	s.join(c, name, kind, member)
}

// join subscribes c to channel name: Presence first (counts, members, the
// member limit), then the hub with subscription_succeeded and the cache
// replay, then member_added and subscription_count to the channel and the
// transitions to the event sink. m is the presence member, nil otherwise.
func (s *Server) join(c *conn, name string, kind protocol.Channel, m *protocol.Member) {
	a := c.app
	cfg := a.config()
	mu := s.channelLocks.of(a.id, name)
	mu.Lock()
	defer mu.Unlock()

	res, err := s.presence.Join(s.ctx, a.id, name, c.socketID, m, cfg.MaxPresenceMembersPerChannel)
	if err != nil {
		c.send(s.joinRefusal(a, cfg, err).Frame(name))
		return
	}
	var t transition
	t.occupied = res.Occupied
	succeeded := protocol.SubscriptionSucceededFrame(name)
	userID := ""
	if m != nil {
		succeeded = protocol.PresenceSucceededFrame(name, res.Members)
		userID = m.UserID
	}
	var cached []byte
	if kind.Cache {
		e, ok, err := s.broker.Cache(s.ctx, a.id, name)
		if err != nil {
			s.warnLimited("broker-cache", "reading a cache channel failed", "app_id", a.id, "err", err)
		}
		if cached = e.Frame; !ok {
			cached, t.cacheMiss = protocol.CacheMissFrame(name), true
		}
	}
	sub := s.hub.add(c, name, userID, succeeded, cached)
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.addSubLocked(sub)
	}
	c.mu.Unlock()
	s.metrics.subsByType[kind.Type].Inc()
	s.observe(ObserveSubscribed, a.id, name, "", c.socketID, userID)

	if res.FirstForUser {
		t.memberAdded = m.UserID
		s.broadcast(Message{App: a.id, Channel: name, Frame: protocol.MemberAddedFrame(name, *m), Except: c.socketID})
	}
	t.count = -1
	if kind.Type != protocol.Presence {
		t.count = res.Count
		s.subscriptionCount(a, name, res.Count, false)
	}
	s.emit(a.id, name, t)
	if closed {
		// Teardown ran before the subscription was recorded; undo it the
		// ordinary way so every event has its counterpart.
		s.leaveLocked(c, sub)
	}
}

// joinRefusal maps a Presence.Join error to the subscription error.
func (s *Server) joinRefusal(a *app, cfg *appConfig, err error) *protocol.SubscriptionError {
	if errors.Is(err, ErrPresenceFull) {
		return &protocol.SubscriptionError{Status: 4100,
			Message: "Presence channel is full: at most " + strconv.Itoa(cfg.MaxPresenceMembersPerChannel) + " members"}
	}
	s.warnLimited("presence-join", "presence join failed", "app_id", a.id, "err", err)
	return &protocol.SubscriptionError{Status: 503, Message: "Subscription failed, retry later"}
}

// leave unsubscribes sub of c; see join.
func (s *Server) leave(c *conn, sub *subscription) {
	if sub.ch == nil {
		return // #server-to-user-: nothing outside the conn
	}
	mu := s.channelLocks.of(c.app.id, sub.name)
	mu.Lock()
	defer mu.Unlock()
	s.leaveLocked(c, sub)
}

// leaveLocked is leave with the channel's lock held.
func (s *Server) leaveLocked(c *conn, sub *subscription) {
	if !s.hub.remove(sub) {
		return
	}
	res, err := s.presence.Leave(s.ctx, c.app.id, sub.name, c.socketID, sub.userID)
	if err != nil {
		s.warnLimited("presence-leave", "presence leave failed", "app_id", c.app.id, "err", err)
		return
	}
	s.observe(ObserveUnsubscribed, c.app.id, sub.name, "", c.socketID, sub.userID)
	s.leftLocked(c.app, sub.name, sub.userID, res)
}

// leftLocked answers a leave of channel, here or on a dead node:
// member_removed and subscription_count to the channel, the transitions to
// the event sink. Lock: the channel's channelLocks stripe.
func (s *Server) leftLocked(a *app, channel, userID string, res LeaveResult) {
	t := transition{vacated: res.Vacated, count: -1}
	if res.LastForUser {
		t.memberRemoved = userID
		s.broadcast(Message{App: a.id, Channel: channel, Frame: protocol.MemberRemovedFrame(channel, userID)})
	}
	if protocol.Classify(channel).Type != protocol.Presence {
		if !res.Vacated {
			t.count = res.Count
		}
		s.subscriptionCount(a, channel, res.Count, res.Vacated)
	}
	s.emit(a.id, channel, t)
}

func (s *Server) handleUnsubscribe(c *conn, in protocol.Inbound) {
	sub, err := protocol.ParseSubscribe(in.Data)
	if err != nil {
		c.sendError(protocol.CodeNone, "Invalid pusher:unsubscribe: "+err.Error(), "")
		return
	}
	cur := c.takeSub(sub.Channel)
	if cur == nil {
		c.sendError(protocol.CodeNone, "No current subscription to channel "+sub.Channel+", or subscription in progress", "")
		return
	}
	s.leave(c, cur)
}

// maxWatchlist is the number of watchlist ids accepted (§6).
const maxWatchlist = 100

func (s *Server) handleSignin(c *conn, in protocol.Inbound) {
	cfg := c.app.config()
	if !cfg.EnableUserAuthentication {
		s.signinRefused(c, "User authentication is not enabled for this app")
		return
	}
	u, userData, msg := s.verifySignin(c, cfg, in)
	if msg != "" {
		s.signinRefused(c, msg)
		return
	}
	if !s.cfg.Limits.Signin.Allow(c.app.id + "\x00" + u.ID).Allowed {
		s.rateLimited("signin", c.app.id, c.ip)
		// 4100: pusher-js backs off and retries, which a later signin may pass.
		c.close(&protocol.Error{Code: protocol.CodeOverCapacity, Message: "Too many signin attempts for this user, retry later"}, false)
		return
	}
	truncated := false
	if len(u.Watchlist) > maxWatchlist {
		u.Watchlist = u.Watchlist[:maxWatchlist]
		truncated = true
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.user != nil {
		same := c.user.id == u.ID
		c.mu.Unlock()
		if !same {
			s.signinRefused(c, "Connection is already signed in as a different user")
		}
		return
	}
	user := &signedUser{id: u.ID, info: u.Info, watchlist: u.Watchlist}
	c.user = user
	c.mu.Unlock()

	c.send(protocol.SigninSuccessFrame(userData))
	if truncated {
		c.sendError(protocol.CodeWatchlistLimit, protocol.ErrWatchlistLimit.Message, "")
	}
	s.signin(c, user)
}

// signin registers a signed-in socket: the user index, Presence and, with
// watchlists on, the user's watchers and the socket's own watchlist.
func (s *Server) signin(c *conn, user *signedUser) {
	a := c.app
	watchlist := a.config().EnableWatchlistEvents
	s.users.add(c, user.id)
	first, err := s.presence.SignIn(s.ctx, a.id, user.id, c.socketID)
	if err != nil {
		s.warnLimited("presence-signin", "presence signin failed", "app_id", a.id, "err", err)
	}
	if first && watchlist {
		s.command(Command{Kind: CommandOnline, App: a.id, User: user.id})
	}
	if !watchlist || len(user.watchlist) == 0 {
		return
	}
	s.users.watch(c, user.watchlist)
	online, err := s.presence.Online(s.ctx, a.id, user.watchlist)
	if err != nil {
		s.warnLimited("presence-online", "presence online lookup failed", "app_id", a.id, "err", err)
		online = make([]bool, len(user.watchlist))
	}
	var on, off []string
	for i, id := range user.watchlist {
		if online[i] {
			on = append(on, id)
		} else {
			off = append(off, id)
		}
	}
	c.send(protocol.WatchlistFrame(on, off))
}

// signout undoes signin when the socket goes.
func (s *Server) signout(c *conn, user *signedUser) {
	a := c.app
	s.users.remove(c, user)
	last, err := s.presence.SignOut(s.ctx, a.id, user.id, c.socketID)
	if err != nil {
		s.warnLimited("presence-signout", "presence signout failed", "app_id", a.id, "err", err)
	}
	if last {
		s.signedOut(a, user.id)
	}
}

// signedOut answers the last socket of a user going, here or on a dead
// node: its watchers learn it is offline.
func (s *Server) signedOut(a *app, userID string) {
	if a.config().EnableWatchlistEvents {
		s.command(Command{Kind: CommandOffline, App: a.id, User: userID})
	}
}

// command hands c to the broker; a failure is logged.
func (s *Server) command(c Command) {
	if err := s.broker.Command(s.ctx, c); err != nil {
		s.warnLimited("broker-command", "broker command failed", "app_id", c.App, "err", err)
	}
}

func (s *Server) handleClientEvent(c *conn, in protocol.Inbound) {
	cfg := c.app.config()
	if !cfg.EnableClientMessages {
		c.sendError(protocol.CodeNone, "To send client events, you must enable this feature in the Settings page of your dashboard.", "")
		return
	}
	kind := protocol.Classify(in.Channel)
	if in.Channel == "" || (kind.Type != protocol.Private && kind.Type != protocol.Presence) {
		c.sendError(protocol.CodeNone, "Client events are only supported on private and presence channels", "")
		return
	}
	if len(in.Event) > cfg.MaxEventNameLength {
		c.sendError(protocol.CodeNone, "Event name too long: at most "+strconv.Itoa(cfg.MaxEventNameLength)+" characters", "")
		return
	}
	sub := c.sub(in.Channel)
	if sub == nil {
		c.sendError(protocol.CodeNone, "Cannot broadcast client event (connection not subscribed to channel "+in.Channel+")", "")
		return
	}
	if c.limiter == nil {
		n := cfg.MaxClientEventsPerSecond
		c.limiter = rate.NewLimiter(rate.Limit(n), n)
	}
	if !c.limiter.Allow() {
		s.metrics.rateLimited.WithLabelValues("client_events").Inc()
		c.sendError(protocol.CodeClientEventRateLimit, protocol.ErrClientEventRate.Message, "")
		return
	}
	data := protocol.DataString(in.Data)
	if limit := cfg.MaxEventPayloadInKB * 1024; len(data) > limit {
		c.sendError(protocol.CodeNone, "Client event data too large: at most "+strconv.Itoa(limit)+" bytes", "")
		return
	}
	err := s.publish(s.ctx, publication{app: c.app.id, channel: in.Channel, event: in.Event, data: data,
		userID: sub.userID, except: c.socketID})
	if err != nil {
		s.warnLimited("broker-publish", "broker publish failed", "app_id", c.app.id, "err", err)
	}
	s.observe(ObserveClientEvent, c.app.id, in.Channel, in.Event, c.socketID, sub.userID)
	s.events.Emit(Event{App: c.app.id, Name: EventClientEvent, Channel: in.Channel, Event: in.Event, Data: data,
		SocketID: c.socketID, UserID: sub.userID})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
