package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/lxzan/gws"
	"golang.org/x/time/rate"

	"github.com/sockudo/sockudo/server/protocol"
)

// newUpgrader configures gws for small idle sockets (shared/notes/gws-tuning.md):
// a 256-byte read buffer (larger frames are read past it, not truncated;
// 512 measured 0.3-0.5 KiB more RSS per subscribed socket), OnMessage on a short-lived goroutine one at a
// time (the read loop's stack stays at 2 KiB), and the conn as its own
// session. Compression stays off: the fan-out writes pre-built frames.
func (s *Server) newUpgrader() *gws.Upgrader {
	maxRead := 4 * s.cfg.MaxPayloadBytes
	if maxRead < 1<<20 {
		maxRead = 1 << 20
	}
	return gws.NewUpgrader(&wsHandler{s}, &gws.ServerOption{
		ReadBufferSize:     256,
		ParallelEnabled:    true,
		ParallelGolimit:    1,
		ReadMaxPayloadSize: maxRead, // hard cap; above it gws closes with 1009
		HandshakeTimeout:   10 * time.Second,
		NewSession:         func() gws.SessionStorage { return &conn{} },
	})
}

// serveWS handles GET /app/{key}. Refusals happen after the upgrade, as a
// pusher:error and a close code, never as an HTTP error: a browser would
// see 1006 and pusher-js would retry forever (§1.3).
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		writeError(w, http.StatusBadRequest, "expected a WebSocket upgrade")
		return
	}
	ip := clientIP(r, s.cfg.TrustHops)
	a, refusal := s.admit(r, ip)
	socket, err := s.upgrader.Upgrade(w, r)
	if err != nil {
		if a != nil && refusal == nil {
			a.conns.Add(-1)
			s.conns.Add(-1)
		}
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	if refusal != nil {
		s.metrics.connsRefused.WithLabelValues(refusalReason(refusal)).Inc()
		if refusal == protocol.ErrOriginNotAllowed && a != nil {
			s.audit.Record(AuditRecord{App: a.id, Action: AuditOriginRefused, IP: ip, Reason: truncate(r.Header.Get("Origin"), 200)})
		}
		// Not registered: write the refusal synchronously and drop the socket.
		_ = socket.WriteMessage(gws.OpcodeText, refusal.Frame())
		_ = socket.WriteClose(uint16(refusal.Code), []byte(refusal.Message))
		return
	}
	c := socket.Session().(*conn)
	c.srv = s
	c.ws = socket
	c.nc = socket.NetConn()
	c.flushFn = c.flush
	c.app = a
	c.ip = ip
	c.socketID = s.registerConn(c)
	a.connGauge.Inc()
	a.connOpened.Inc()
	c.lastSeen.Store(time.Now().UnixNano())
	c.send(textFrame(protocol.ConnectionEstablished(c.socketID, int(s.cfg.ActivityTimeout/time.Second))))
	// Armed only after it is stored: the callback reads c.timer.
	c.timer.Store(time.AfterFunc(time.Duration(math.MaxInt64), c.onTimer))
	c.resetTimer(s.cfg.ActivityTimeout)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("socket connected", "app_id", a.id, "socket_id", c.socketID)
	}
	go socket.ReadLoop() // a fresh goroutine: 2 KiB stack instead of the handler's
}

// admit decides whether a socket may connect. On success it has counted
// the socket against the node and app limits.
func (s *Server) admit(r *http.Request, ip string) (*app, *protocol.Error) {
	key := r.PathValue("key")
	if key == "" || strings.Contains(key, "/") {
		return nil, protocol.ErrPathNotFound
	}
	a := s.apps.byKey(key)
	limitKey, override, appID := ip, 0, ""
	if a != nil {
		appID = a.id
		if o := a.config().RateLimits.WSMaxRequests; o > 0 {
			// A per-app budget gets its own buckets.
			limitKey, override = a.id+"\x00"+ip, o
		}
	}
	if !allow(s.cfg.Limits.WSConnect, limitKey, override).Allowed {
		s.rateLimited("ws_connect", appID, ip)
		return nil, protocol.ErrRateLimited
	}
	if a == nil {
		return nil, &protocol.Error{Code: protocol.CodeAppNotFound, Message: "App key " + truncate(key, 64) + " does not exist"}
	}
	cfg := a.config()
	if !cfg.Enabled {
		return nil, protocol.ErrAppDisabled
	}
	if p := r.URL.Query().Get("protocol"); p != "" {
		if v, err := strconv.Atoi(p); err != nil || v < 4 || v > 7 {
			return nil, protocol.ErrUnsupportedProtocol
		}
	}
	if !cfg.originAllowed(r.Header.Get("Origin")) {
		return a, protocol.ErrOriginNotAllowed
	}
	if s.draining.Load() {
		return nil, protocol.ErrReconnect
	}
	if n := s.conns.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		return nil, protocol.ErrOverCapacity
	}
	if n := a.conns.Add(1); cfg.MaxConnections > 0 && n > int64(cfg.MaxConnections) {
		a.conns.Add(-1)
		s.conns.Add(-1)
		return nil, protocol.ErrOverQuota
	}
	return a, nil
}

// serveBadPath upgrades WebSocket requests to paths other than /app/{key}
// and refuses them with 4005.
func (s *Server) serveBadPath(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	socket, err := s.upgrader.Upgrade(w, r)
	if err != nil {
		return
	}
	s.metrics.connsRefused.WithLabelValues(refusalReason(protocol.ErrPathNotFound)).Inc()
	_ = socket.WriteMessage(gws.OpcodeText, protocol.ErrPathNotFound.Frame())
	_ = socket.WriteClose(uint16(protocol.CodePathNotFound), []byte(protocol.ErrPathNotFound.Message))
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// registerConn gives c a unique, unpredictable socket id and registers it.
func (s *Server) registerConn(c *conn) string {
	for {
		id := strconv.FormatUint(rand.Uint64N(1e10), 10) + "." + strconv.FormatUint(rand.Uint64N(1e10), 10)
		sh := &s.sockets[shardOf("", id)]
		sh.mu.Lock()
		if _, taken := sh.conns[id]; !taken {
			if sh.conns == nil {
				sh.conns = make(map[string]*conn)
			}
			sh.conns[id] = c
			sh.mu.Unlock()
			return id
		}
		sh.mu.Unlock()
	}
}

// wsHandler adapts gws events to conns.
type wsHandler struct{ s *Server }

func (h *wsHandler) OnOpen(*gws.Conn) {}

func (h *wsHandler) OnPing(socket *gws.Conn, payload []byte) {
	socket.Session().(*conn).touch()
	_ = socket.WritePong(payload)
}

func (h *wsHandler) OnPong(socket *gws.Conn, _ []byte) { socket.Session().(*conn).touch() }

func (h *wsHandler) OnClose(socket *gws.Conn, _ error) {
	c := socket.Session().(*conn)
	if c.srv != nil {
		c.srv.teardown(c)
	}
}

func (h *wsHandler) OnMessage(socket *gws.Conn, msg *gws.Message) {
	c := socket.Session().(*conn)
	defer msg.Close()
	// gws does not recover panics in OnMessage; one bad frame must never
	// take the process down.
	defer func() {
		if p := recover(); p != nil {
			h.s.log.Error("panic handling a socket message", "app_id", c.app.id, "socket_id", c.socketID,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			c.close(&protocol.Error{Code: protocol.CodeOverCapacity, Message: "Internal server error"}, false)
		}
	}()
	c.touch()
	h.s.metrics.messagesIn.Inc()
	h.s.metrics.bytesIn.Add(float64(msg.Data.Len()))
	if c.closing.Load() {
		return
	}
	if msg.Opcode != gws.OpcodeText {
		c.sendError(protocol.CodeNone, "Binary frames are not supported; send JSON text frames", "")
		return
	}
	if msg.Data.Len() > h.s.cfg.MaxPayloadBytes {
		c.sendError(protocol.CodeNone, "Message too large: the limit is "+strconv.Itoa(h.s.cfg.MaxPayloadBytes)+" bytes", "")
		return
	}
	h.s.handleMessage(c, msg.Bytes())
}

// handleMessage dispatches one client frame (§2.2).
func (s *Server) handleMessage(c *conn, b []byte) {
	in, err := protocol.Decode(b)
	if err != nil {
		c.sendError(protocol.CodeNone, err.Error(), "")
		return
	}
	switch in.Event {
	case "pusher:ping":
		c.send(pongFrame)
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
		c.sendPayload((&protocol.SubscriptionError{Status: 400, Message: "Invalid channel name: at most " +
			strconv.Itoa(cfg.MaxChannelNameLength) + " characters from A-Z a-z 0-9 _ - = @ , . ;"}).Frame(name))
		return
	}
	kind := protocol.Classify(name)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.subLocked(name) != nil {
		c.sendError(protocol.CodeNone, "Existing subscription to channel "+name, "")
		return
	}
	var member *protocol.Member
	switch kind.Type {
	case protocol.ServerToUser:
		// Only the signed-in user may subscribe to its own channel (§2.4).
		if c.user == nil || name != protocol.ServerToUserPrefix+c.user.id {
			c.sendPayload((&protocol.SubscriptionError{Status: 401, Message: "Subscription to " + name + " requires signing in as that user"}).Frame(name))
			return
		}
		c.addSubLocked(&subscription{name: name, c: c})
		s.metrics.subsByType[kind.Type].Inc()
		c.sendPayload(protocol.AppendEvent(nil, "pusher_internal:subscription_succeeded", name, "{}", ""))
		return
	case protocol.Private, protocol.Encrypted:
		if e := s.checkChannelAuth(c, cfg, sub.Auth, protocol.ChannelString(c.socketID, name, "")); e != nil {
			c.sendPayload(e.Frame(name))
			return
		}
	case protocol.Presence:
		m, e := s.presenceMember(c, cfg, name, sub)
		if e != nil {
			c.sendPayload(e.Frame(name))
			return
		}
		member = &m
	}
	res := s.hub.subscribeLocked(c, name, kind, member)
	if res.err != nil {
		c.sendPayload(res.err.Frame(name))
		return
	}
	c.addSubLocked(res.sub)
	s.metrics.subsByType[kind.Type].Inc()
	s.emit(c.app.id, name, res.t)
}

// presenceMember authorises a presence subscription and returns the member.
// Without channel_data, a signed-in socket may use the private-form
// signature and its signin user data (§2.4, §10).
func (s *Server) presenceMember(c *conn, cfg *appConfig, name string, sub protocol.Subscribe) (protocol.Member, *protocol.SubscriptionError) {
	var m protocol.Member
	if sub.ChannelData == "" {
		if c.user == nil {
			return m, &protocol.SubscriptionError{Status: 401, Message: "Presence channels require channel_data (or pusher:signin first)"}
		}
		if e := s.checkChannelAuth(c, cfg, sub.Auth, protocol.ChannelString(c.socketID, name, "")); e != nil {
			return m, e
		}
		m = protocol.Member{UserID: c.user.id, Info: c.user.info}
	} else {
		if e := s.checkChannelAuth(c, cfg, sub.Auth, protocol.ChannelString(c.socketID, name, sub.ChannelData)); e != nil {
			return m, e
		}
		var err error
		if m, err = protocol.ParseChannelData(sub.ChannelData); err != nil {
			return m, &protocol.SubscriptionError{Status: 400, Message: "Invalid channel_data: " + err.Error()}
		}
	}
	if limit := cfg.MaxPresenceMemberSizeInKB * 1024; len(m.Info) > limit {
		return m, &protocol.SubscriptionError{Status: 413, Message: "Presence user_info is larger than " + strconv.Itoa(limit) + " bytes"}
	}
	return m, nil
}

// checkChannelAuth verifies a subscription signature over toSign.
func (s *Server) checkChannelAuth(c *conn, cfg *appConfig, token, toSign string) *protocol.SubscriptionError {
	err := protocol.VerifyAuth(token, cfg.Key, cfg.secrets(), toSign)
	if err == nil {
		return nil
	}
	msg, reason := "Invalid signature", "channel_signature"
	switch {
	case errors.Is(err, protocol.ErrAuthKey):
		msg, reason = "Invalid key in subscription auth data", "channel_key"
	case errors.Is(err, protocol.ErrAuthFormat):
		msg, reason = "Invalid auth: expected <key>:<signature>", "channel_format"
	case s.cfg.DebugAuthErrors:
		msg = "Invalid signature: Expected HMAC SHA256 hex digest of " + toSign
	}
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	s.audit.Record(AuditRecord{App: c.app.id, Action: AuditAuthDenied, IP: c.ip, Channel: channelOf(toSign), Reason: reason})
	if !s.cfg.Limits.AuthFailures.Allow(c.ip).Allowed {
		s.rateLimited("auth_failures", c.app.id, c.ip)
		return &protocol.SubscriptionError{Status: 429, Message: "Too many failed authorisations, retry later"}
	}
	s.warnLimited("auth", "channel auth refused", "app_id", c.app.id, "reason", err.Error())
	return &protocol.SubscriptionError{Status: 401, Message: msg}
}

// addSubLocked records a subscription on the conn. Lock: c.mu.
func (c *conn) addSubLocked(s *subscription) { c.subs = append(c.subs, s) }

// subLocked returns the subscription to channel name, nil if none.
// Lock: c.mu.
func (c *conn) subLocked(name string) *subscription {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// removeSubLocked forgets the subscription to name and returns it, nil if
// none. Lock: c.mu.
func (c *conn) removeSubLocked(name string) *subscription {
	for i, s := range c.subs {
		if s.name == name {
			last := len(c.subs) - 1
			c.subs[i] = c.subs[last]
			c.subs[last] = nil
			c.subs = c.subs[:last]
			return s
		}
	}
	return nil
}

func (s *Server) handleUnsubscribe(c *conn, in protocol.Inbound) {
	sub, err := protocol.ParseSubscribe(in.Data)
	if err != nil {
		c.sendError(protocol.CodeNone, "Invalid pusher:unsubscribe: "+err.Error(), "")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.removeSubLocked(sub.Channel)
	if cur == nil {
		c.sendError(protocol.CodeNone, "No current subscription to channel "+sub.Channel+", or subscription in progress", "")
		return
	}
	s.emit(c.app.id, sub.Channel, s.hub.unsubscribe(cur))
}

func (s *Server) handleSignin(c *conn, in protocol.Inbound) {
	cfg := c.app.config()
	fail := func(msg string) {
		s.metrics.authFailures.WithLabelValues("signin").Inc()
		s.audit.Record(AuditRecord{App: c.app.id, Action: AuditSigninDenied, IP: c.ip, Reason: msg})
		if !s.cfg.Limits.AuthFailures.Allow(c.ip).Allowed {
			s.rateLimited("auth_failures", c.app.id, c.ip)
		}
		s.warnLimited("signin", "signin refused", "app_id", c.app.id, "reason", msg)
		c.close(&protocol.Error{Code: protocol.CodeUnauthorized, Message: msg}, false)
	}
	if !cfg.EnableUserAuthentication {
		fail("User authentication is not enabled for this app")
		return
	}
	si, err := protocol.ParseSignin(in.Data)
	if err != nil {
		fail("Invalid pusher:signin: " + err.Error())
		return
	}
	if err := protocol.VerifyAuth(si.Auth, cfg.Key, cfg.secrets(), protocol.UserString(c.socketID, si.UserData)); err != nil {
		fail("Invalid signature for pusher:signin")
		return
	}
	u, err := protocol.ParseUserData(si.UserData)
	if err != nil {
		fail("Invalid user_data: " + err.Error())
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
			fail("Connection is already signed in as a different user")
		}
		return
	}
	c.user = &signedUser{id: u.ID, info: u.Info, watchlist: u.Watchlist}
	user := c.user
	c.mu.Unlock()

	b := append([]byte(`{"event":"pusher:signin_success","data":{"user_data":`), protocol.AppendString(nil, si.UserData)...)
	c.sendPayload(append(b, "}}"...))
	if truncated {
		c.sendError(protocol.CodeWatchlistLimit, protocol.ErrWatchlistLimit.Message, "")
	}
	s.users.signin(c, user, cfg.EnableWatchlistEvents)
}

// maxWatchlist is the number of watchlist ids accepted (§6).
const maxWatchlist = 100

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
	c.mu.Lock()
	sub := c.subLocked(in.Channel)
	c.mu.Unlock()
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
	frame := textFrame(protocol.AppendEvent(nil, in.Event, in.Channel, data, sub.userID))
	_ = s.broker.Publish(Message{App: c.app.id, Channel: in.Channel, Frame: frame, Except: c.socketID})
	s.events.Emit(Event{App: c.app.id, Name: EventClientEvent, Channel: in.Channel, Event: in.Event, Data: data,
		SocketID: c.socketID, UserID: sub.userID})
}

// teardown runs once when a socket's read loop ends: it leaves every
// channel, signs out and frees the socket's slot.
func (s *Server) teardown(c *conn) {
	c.closing.Store(true)
	if t := c.timer.Load(); t != nil {
		t.Stop()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	subs, user := c.subs, c.user
	c.subs = nil
	c.mu.Unlock()

	for _, sub := range subs {
		s.emit(c.app.id, sub.name, s.hub.unsubscribe(sub))
	}
	if user != nil {
		s.users.signout(c, user, c.app.config().EnableWatchlistEvents)
	}
	c.wmu.Lock()
	c.wclosed = true
	clear(c.queue)
	c.queue = nil
	c.wmu.Unlock()

	sh := &s.sockets[shardOf("", c.socketID)]
	sh.mu.Lock()
	if sh.conns[c.socketID] == c {
		delete(sh.conns, c.socketID)
	}
	sh.mu.Unlock()
	c.app.conns.Add(-1)
	c.app.connGauge.Dec()
	s.metrics.connsClosed.WithLabelValues(closeReason(protocol.Code(c.closeCode.Load()))).Inc()
	if s.conns.Add(-1) == 0 {
		s.signalEmpty()
	}
}

// clientIP is the address of the client behind r: the peer, or with
// trustHops proxies the entry trustHops from the right of X-Forwarded-For
// (entries further left are client-supplied and could be forged).
func clientIP(r *http.Request, trustHops int) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if trustHops <= 0 {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				hops = append(hops, p)
			}
		}
	}
	if len(hops) == 0 {
		return peer
	}
	i := len(hops) - trustHops
	if i < 0 {
		i = 0
	}
	if ip := net.ParseIP(hops[i]); ip != nil {
		return ip.String()
	}
	return peer
}

// channelOf extracts the channel from a channel-auth string to sign
// (socket_id:channel[:channel_data]).
func channelOf(toSign string) string {
	_, rest, _ := strings.Cut(toSign, ":")
	ch, _, _ := strings.Cut(rest, ":")
	return ch
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
