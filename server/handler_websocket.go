package server

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/lxzan/gws"

	"github.com/sockudo/sockudo/server/protocol"
)

// readBufferSize is gws's read buffer per socket: larger frames are read
// past it, not truncated; 512 measured 0.3-0.5 KiB more RSS per subscribed
// socket (shared/notes/gws-tuning.md).
const readBufferSize = 256

// frameSlack is how far past MaxPayloadBytes a message may go and still be
// read, to be answered with a readable pusher:error; beyond it gws closes
// with 1009 before reading the payload. gws allocates a frame's declared
// length up front, so this cap is what one unfinished message can pin.
const frameSlack = 4 << 10

// newUpgrader configures gws for small idle sockets (shared/notes/gws-tuning.md):
// a 256-byte read buffer, OnMessage on a short-lived goroutine one at a
// time (the read loop's stack stays at 2 KiB), and no session map (conn
// holds the state; connOf finds it). Compression stays off: the fan-out
// writes pre-built frames.
func (s *Server) newUpgrader() *gws.Upgrader {
	return gws.NewUpgrader(&wsHandler{s}, &gws.ServerOption{
		ReadBufferSize:     readBufferSize,
		ParallelEnabled:    true,
		ParallelGolimit:    1,
		ReadMaxPayloadSize: s.cfg.MaxPayloadBytes + frameSlack, // hard cap; above it gws closes with 1009
		HandshakeTimeout:   10 * time.Second,
		NewSession:         func() gws.SessionStorage { return noSession{} },
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
	ip := s.clientIP(r)
	a, refusal := s.admit(r, ip)
	c := &conn{srv: s, app: a, ip: ip, hibID: s.hib.nextID.Add(1)}
	c.wire.c = c
	socket, err := s.upgrade(w, r, c)
	if err != nil {
		if a != nil && refusal == nil {
			s.perIP.release(ip)
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
		_ = socket.WriteMessage(gws.OpcodeText, refusal.Payload())
		_ = socket.WriteClose(uint16(refusal.Code), []byte(refusal.Message))
		return
	}
	c.flushFn = c.flush
	// Before the socket is registered: whoever closes it reads the series.
	a.resolveMetrics()
	s.registerConn(c)
	s.observeConn(c, true) // console (observer.go); one atomic load when unwatched
	a.connGauge.Inc()
	a.connOpened.Inc()
	c.lastSeen.Store(time.Now().UnixNano())
	c.send(protocol.ConnectionEstablishedFrame(c.socketID, int(s.cfg.ActivityTimeout/time.Second)))
	// Armed only after it is stored: the callback reads c.timer.
	c.timer.Store(time.AfterFunc(time.Duration(math.MaxInt64), c.onTimer))
	c.resetTimer(s.cfg.ActivityTimeout + pingJitter(s.cfg.ActivityTimeout))
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("socket connected", "app_id", a.id, "socket_id", c.socketID)
	}
	go socket.ReadLoop() // a fresh goroutine: 2 KiB stack instead of the handler's
}

// upgrade hijacks the connection and upgrades it with gws reading and
// writing through c's wire (frame_guard.go) instead of the TCP connection.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, c *conn) (*gws.Conn, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("server: the connection cannot be hijacked")
	}
	nc, _, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("server: hijack: %w", err)
	}
	c.nc = nc
	c.wire.useRaw(nc)
	c.direct = directWriteSupported && c.wire.raw != nil // plain TCP: the flushers write it
	// net/http's buffered reader is dropped, as gws's own Upgrade does: a
	// client sends nothing before the 101 (RFC 6455 §4.1). gws returns this
	// reader to its pool when the socket ends.
	socket, err := s.upgrader.UpgradeFromConn(&c.wire, bufio.NewReaderSize(&c.wire, readBufferSize), r)
	if err != nil {
		return nil, fmt.Errorf("server: upgrade: %w", err)
	}
	return socket, nil
}

// admit decides whether a socket may connect. On success it has counted
// the socket against the node and app limits.
func (s *Server) admit(r *http.Request, ip string) (*app, *protocol.Error) {
	key := r.PathValue("key")
	if key == "" || strings.Contains(key, "/") {
		return nil, protocol.ErrPathNotFound
	}
	a := s.apps.byKey(key)
	limitKey, override, appID := s.limitKey(ip), 0, ""
	if a != nil {
		appID = a.id
		if o := a.config().RateLimits.WSMaxRequests; o > 0 {
			// A per-app budget gets its own buckets.
			limitKey, override = a.id+"\x00"+limitKey, o
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
	if !s.perIP.acquire(ip) {
		a.conns.Add(-1)
		s.conns.Add(-1)
		s.rateLimited("ws_ip_connections", a.id, ip)
		return nil, errTooManyFromIP
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
	_ = socket.WriteMessage(gws.OpcodeText, protocol.ErrPathNotFound.Payload())
	_ = socket.WriteClose(uint16(protocol.CodePathNotFound), []byte(protocol.ErrPathNotFound.Message))
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// errTooManyFromIP refuses a socket over MaxConnectionsPerIP; 4100 makes
// pusher-js back off before it retries.
var errTooManyFromIP = &protocol.Error{Code: protocol.CodeOverCapacity, Message: "Too many connections from this address"}

// registerConn gives c a unique, unpredictable socket id (c.socketID) and
// registers it. The id is set before c can be found (allConns), under the
// same lock: the conn's fields are fixed once it is published.
func (s *Server) registerConn(c *conn) {
	for {
		id := strconv.FormatUint(rand.Uint64N(1e10), 10) + "." + strconv.FormatUint(rand.Uint64N(1e10), 10)
		sh := &s.sockets[shardOf("", id)]
		sh.mu.Lock()
		if _, taken := sh.conns[id]; !taken {
			if sh.conns == nil {
				sh.conns = make(map[string]*conn)
			}
			c.socketID = id
			sh.conns[id] = c
			sh.mu.Unlock()
			return
		}
		sh.mu.Unlock()
	}
}

// unregisterConn frees c's socket id, if it is still c's.
func (s *Server) unregisterConn(c *conn) {
	sh := &s.sockets[shardOf("", c.socketID)]
	sh.mu.Lock()
	if sh.conns[c.socketID] == c {
		delete(sh.conns, c.socketID)
	}
	sh.mu.Unlock()
}

// wsHandler adapts gws events to conns.
type wsHandler struct{ s *Server }

func (h *wsHandler) OnOpen(*gws.Conn) {}

// OnPing queues the pong like every other frame rather than writing it
// with gws's WritePong: the socket then has one writer, so the pong is
// ordered with queued frames, written under the writer's own deadline
// (a deadline a flush left behind once failed the pong of a healthy socket
// after 16 s idle), counted against MaxPendingBytes, and the read loop never
// blocks on a peer that does not read.
func (h *wsHandler) OnPing(socket *gws.Conn, payload []byte) {
	c := connOf(socket)
	if !c.midMessage() {
		c.touch()
	}
	c.send(pongFrame(payload))
}

func (h *wsHandler) OnPong(socket *gws.Conn, _ []byte) {
	if c := connOf(socket); !c.midMessage() {
		c.touch()
	}
}

func (h *wsHandler) OnClose(socket *gws.Conn, _ error) {
	c := connOf(socket)
	if c.wire.quiet { // the read loop ended to let the socket sleep
		c.srv.hib.sleep(c)
		return
	}
	c.srv.teardown(c)
}

func (h *wsHandler) OnMessage(socket *gws.Conn, msg *gws.Message) {
	c := connOf(socket)
	defer c.messageDone()
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
