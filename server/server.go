package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server/protocol"
	"github.com/sockudo/sockudo/storage"
)

// AppStore is where the server loads app configuration from. *storage.DB
// satisfies it.
type AppStore interface {
	// AppRecords returns every configured app, undecoded: the server
	// decodes each at its first use.
	AppRecords() ([]storage.AppRecord, error)
	// Ping reports whether the store is usable (readiness).
	Ping() error
}

// Server is the realtime server: the WebSocket endpoint and the Pusher HTTP
// API on one port. Create it with New, run it with Serve, stop it with
// Shutdown.
type Server struct {
	cfg      Config
	store    AppStore
	log      *slog.Logger
	apps     appRegistry
	hub      hub
	users    userIndex
	broker   Broker
	presence Presence
	events   EventSink
	observer atomic.Pointer[observerRef] // the console while it watches; nil otherwise (observer.go)
	audit    AuditLog
	metrics  *metrics
	upgrader *gws.Upgrader
	extraAPI []signedRoute // routes added with HandleSigned
	extra    []ownRoute    // routes added with Handle

	// pushFallback takes the push objects of API events; nil refuses them.
	pushFallback PushFallback
	// health are the dependency checks of /up (WithHealthCheck); fixed
	// after New.
	health []namedCheck

	// hib puts idle sockets to sleep without a goroutine (hibernate.go),
	// on while hibOn.
	hib      hibernator
	hibOn    atomic.Bool
	hibStart sync.Once
	hibStop  sync.Once

	// flush writes the queues of plain TCP sockets (flusher.go) between
	// Serve and Shutdown.
	flush flushers

	channelLocks channelLocks // serialise joins and leaves per channel
	counts       countThrottle

	sockets  [numShards]socketShard // by socket_id
	conns    atomic.Int64           // open sockets on this node
	perIP    ipConns                // open sockets per client IP (MaxConnectionsPerIP)
	idle     chan struct{}          // signalled when conns drops to zero
	draining atomic.Bool
	ready    atomic.Bool // set by MarkReady once the process finished starting

	warnMu   sync.Mutex
	warnedAt map[string]time.Time // last warning per reason

	httpMu sync.Mutex
	https  []*http.Server
	ctx    context.Context // ends at Shutdown; bounds broker and presence calls made for sockets
	cancel context.CancelFunc
}

type socketShard struct {
	mu    sync.Mutex // guards conns
	conns map[string]*conn
}

// Option changes how New builds a Server.
type Option func(*Server)

// WithBroker makes the server publish through b instead of the local
// broker (Redis mode). The server registers its handler with b in New; it
// does not close b: its owner does, after Shutdown.
func WithBroker(b Broker) Option { return func(s *Server) { s.broker = b } }

// WithPresence makes the server keep counts, members and signed-in users in
// p instead of in memory (Redis mode). Its owner closes it after Shutdown.
func WithPresence(p Presence) Option { return func(s *Server) { s.presence = p } }

// New validates cfg, loads the apps from store and returns a server that has
// started nothing yet. Without options it is a single node: the local
// Broker and Presence.
func New(cfg Config, store AppStore, log *slog.Logger, opts ...Option) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, store: store, log: log, idle: make(chan struct{}, 1), warnedAt: make(map[string]time.Time)}
	for _, o := range opts {
		o(s)
	}
	if s.broker == nil {
		s.broker = &localBroker{}
	}
	if s.presence == nil {
		s.presence = &localPresence{}
	}
	if err := s.broker.Register(brokerHandler{s}); err != nil {
		return nil, fmt.Errorf("server: register with the broker: %w", err)
	}
	if r, ok := s.presence.(PresenceReporter); ok {
		if err := r.RegisterHandler(presenceHandler{s}); err != nil {
			return nil, fmt.Errorf("server: register with presence: %w", err)
		}
	}
	s.events = nopSink{}
	s.audit = nopAudit{}
	s.metrics = newMetrics()
	s.upgrader = s.newUpgrader()
	s.perIP.limit = cfg.MaxConnectionsPerIP
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.ReloadApps(); err != nil {
		return nil, err
	}
	return s, nil
}

func (c Config) withDefaults() Config {
	for _, l := range []*ratelimit.Limiter{&c.Limits.WSConnect, &c.Limits.AuthFailures, &c.Limits.Signin,
		&c.Limits.APIPublish, &c.Limits.APIRead} {
		if *l == nil {
			*l = ratelimit.Disabled{}
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ActivityTimeout, 120*time.Second)
	def(&c.PongTimeout, 30*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.MessageTimeout, 10*time.Second)
	if c.MaxChannelsPerConnection <= 0 {
		c.MaxChannelsPerConnection = 100
	}
	if c.MaxMessagesPerSecond <= 0 {
		c.MaxMessagesPerSecond = 100
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = 64 << 10
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 1 << 20
	}
	return c
}

func (c Config) validate() error {
	if c.ActivityTimeout < time.Second {
		return fmt.Errorf("server: activity timeout must be at least 1s, got %s", c.ActivityTimeout)
	}
	if c.MaxConnections < 0 {
		return errors.New("server: max connections must not be negative")
	}
	if c.MaxConnectionsPerIP < 0 {
		return errors.New("server: max connections per IP must not be negative")
	}
	if c.MaxMessagesPerSecond > int(time.Second) {
		return fmt.Errorf("server: max messages per second must be at most %d, got %d", int(time.Second), c.MaxMessagesPerSecond)
	}
	return nil
}

// ReloadApps re-reads the apps from the store into the in-memory registry.
// Open sockets keep their app; changed settings apply to them at once.
func (s *Server) ReloadApps() error {
	recs, err := s.store.AppRecords()
	if err != nil {
		return fmt.Errorf("server: load apps: %w", err)
	}
	if err := s.apps.load(recs, s.log, s.initApp); err != nil {
		return fmt.Errorf("server: load apps: %w", err)
	}
	// Sockets of an app that was deleted or disabled go, as they would on
	// hosted Pusher; 40xx codes stop pusher-js from reconnecting.
	for _, c := range s.allConns() {
		switch {
		case s.apps.byID(c.app.id) != c.app:
			c.close(&protocol.Error{Code: protocol.CodeAppNotFound, Message: "Application deleted"}, false)
		case !c.app.config().Enabled:
			c.close(protocol.ErrAppDisabled, false)
		}
	}
	return nil
}

// initApp prepares a new app before it is published to the registry; its
// metric series are resolved later (app.resolveMetrics).
func (s *Server) initApp(a *app) {
	a.metrics = s.metrics
}

// Handler returns the HTTP handler serving /app/{key}, /apps/... and the
// operational endpoints /up and /live.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app/{key}", s.serveWS)
	mux.HandleFunc("/app/", s.serveBadPath)
	mux.HandleFunc("GET /up", s.serveUp)
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, okBody) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, http.StatusNotFound, "not found") })
	s.routeAPI(mux)
	for _, rt := range s.extra {
		mux.Handle(rt.pattern, rt.h)
	}
	return mux
}

// Handle mounts h at pattern, a ServeMux pattern such as
// "POST /apps/{app_id}/push/devices", for a route that carries its own
// authentication (the push API that devices call, for one). The server
// adds nothing: h authenticates, bounds its body (http.MaxBytesReader) and
// answers failures with WriteError. Use ClientIP for per-client limits.
// Call it before Serve; signed routes go through HandleSigned instead.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.extra = append(s.extra, ownRoute{pattern, h})
}

type ownRoute struct {
	pattern string
	h       http.Handler
}

// ClientIP is the address of the client behind r, with the server's
// trusted proxies (TrustedProxies, TrustHops) applied; key per-client
// limits with ClientKey.
func (s *Server) ClientIP(r *http.Request) string { return s.clientIP(r) }

var okBody = []byte(`{"ok":true}`)

// MarkReady tells the server that everything around it (webhooks, audit,
// metrics) is running; until then /up answers 503 "starting".
func (s *Server) MarkReady() { s.ready.Store(true) }

// serveUp is readiness: started, storage usable and not draining.
func (s *Server) serveUp(w http.ResponseWriter, r *http.Request) {
	switch {
	case !s.ready.Load():
		writeError(w, http.StatusServiceUnavailable, "starting")
	case s.draining.Load():
		writeError(w, http.StatusServiceUnavailable, "draining")
	case s.store.Ping() != nil:
		writeError(w, http.StatusServiceUnavailable, "storage unavailable")
	default:
		if b := s.degraded(); b != nil {
			writeJSON(w, http.StatusOK, b)
			return
		}
		writeJSON(w, http.StatusOK, okBody)
	}
}

// Serve accepts connections on ln until Shutdown. It returns
// http.ErrServerClosed after a Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.httpMu.Lock()
	if s.draining.Load() {
		s.httpMu.Unlock()
		return http.ErrServerClosed
	}
	s.https = append(s.https, hs)
	// Under httpMu: a Shutdown running now either made this return above
	// or stops the flushers after this.
	s.flush.start(s)
	s.httpMu.Unlock()
	s.startHibernation()
	return hs.Serve(ln)
}

// Shutdown drains the server: readiness goes false, listeners close, every
// socket is closed with 4200 so clients reconnect elsewhere, and it returns
// when all sockets are gone or ctx ends (then the rest are dropped).
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.httpMu.Lock()
	servers := s.https
	s.httpMu.Unlock()
	// Close the listeners now so nothing new arrives. net/http does not
	// track hijacked WebSockets; the hub drains those below.
	var httpDone sync.WaitGroup
	for _, hs := range servers {
		httpDone.Add(1)
		go func() {
			defer httpDone.Done()
			_ = hs.Shutdown(ctx)
		}()
	}

	// Close sockets in paced batches so clients don't all reconnect at once.
	pace := time.NewTimer(0)
	defer pace.Stop()
	<-pace.C
	for i, c := range s.allConns() {
		c.close(protocol.ErrReconnect, false)
		if i%500 == 499 {
			pace.Reset(10 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-pace.C:
			}
		}
	}
	var err error
	for s.conns.Load() > 0 && err == nil {
		select {
		case <-s.idle:
		case <-ctx.Done():
			err = fmt.Errorf("server: shutdown: %d sockets still open: %w", s.conns.Load(), ctx.Err())
			for _, c := range s.allConns() {
				_ = c.nc.Close()
				c.wakeToClose()
			}
		}
	}
	httpDone.Wait()
	s.stopHibernation()
	s.flush.stop() // after the sockets: their close frames go through it
	s.cancel()
	return err
}

func (s *Server) signalEmpty() {
	select {
	case s.idle <- struct{}{}:
	default:
	}
}

func (s *Server) allConns() []*conn {
	var out []*conn
	for i := range s.sockets {
		sh := &s.sockets[i]
		sh.mu.Lock()
		for _, c := range sh.conns {
			out = append(out, c)
		}
		sh.mu.Unlock()
	}
	return out
}

// rateLimited counts and audits a rate-limit trip.
func (s *Server) rateLimited(limiter, app, ip string) {
	s.metrics.rateLimited.WithLabelValues(limiter).Inc()
	s.audit.Record(AuditRecord{App: app, Action: AuditRateLimited, IP: ip, Reason: limiter})
	s.warnLimited("ratelimit-"+limiter, "rate limit reached", "limiter", limiter, "app_id", app)
}

// slowConsumer closes a socket whose outbound queue is full (4100).
func (s *Server) slowConsumer(c *conn) {
	s.metrics.slowConsumers.Inc()
	s.warnLimited("slow", "closing slow consumer: outbound queue full", "app_id", c.app.id, "limit_bytes", s.cfg.MaxPendingBytes)
	c.close(protocol.ErrSlowConsumer, true)
}

// warnInterval bounds repeated warnings: at most one per reason per
// interval, so floods (bad signatures, slow consumers) can't flood the log.
const warnInterval = 10 * time.Second

func (s *Server) warnLimited(reason, msg string, args ...any) {
	now := time.Now()
	s.warnMu.Lock()
	last, ok := s.warnedAt[reason]
	if ok && now.Sub(last) < warnInterval {
		s.warnMu.Unlock()
		return
	}
	s.warnedAt[reason] = now
	s.warnMu.Unlock()
	s.log.Warn(msg, args...)
}
