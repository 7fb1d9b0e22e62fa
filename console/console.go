package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

//go:embed static
var static embed.FS

// Audit actions recorded by the console.
const (
	AuditLogin         = "console_login"
	AuditLoginRefused  = "console_login_refused"
	AuditLoginLimited  = "console_login_rate_limited"
	AuditLogout        = "console_logout"
	AuditTrigger       = "console_trigger"
	AuditReplay        = "console_dead_letters_replayed"
	AuditCSRFRefused   = "console_csrf_refused"
	cookieName         = "sockudo_console"
	csrfHeader         = "X-CSRF-Token"
	maxBody            = 64 << 10
	defaultDeadLetters = 100
)

// IsRefusal reports whether a console audit action is a refusal (a
// refused or rate-limited login, a CSRF refusal) rather than a change
// (a login, a logout, a trigger, a replay). main keeps the two apart as it
// does for the server's records.
func IsRefusal(action string) bool {
	switch action {
	case AuditLoginRefused, AuditLoginLimited, AuditCSRFRefused:
		return true
	}
	return false
}

// Config configures the console. Zero values mean the defaults.
type Config struct {
	// Token is the operator token, which sees every app. Empty disables
	// the token login (app key+secret logins still work).
	Token string
	// Secure marks the cookie Secure even on plain-HTTP requests (TLS
	// terminated here); requests that arrive over TLS always get it.
	Secure bool
	// SessionTTL is how long a session lives after login; 0 means 8 hours.
	SessionTTL time.Duration
	// MaxSessions caps the live sessions; 0 means 64. At the cap a new
	// login evicts the session closest to expiry.
	MaxSessions int
	// StreamBuffer is how many events an event stream may have queued
	// before new ones are dropped; 0 means 256.
	StreamBuffer int
	// MaxStreams caps the open event streams; 0 means 32.
	MaxStreams int
	// SampleInterval is the charts' resolution; 0 means 10 s. The ring
	// keeps 15 minutes.
	SampleInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 8 * time.Hour
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 64
	}
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = 256
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 32
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = 10 * time.Second
	}
	return c
}

// Server is what the console needs of the realtime server; *server.Server
// satisfies it.
type Server interface {
	AppIDs() []string
	AppStats(appID string) (server.AppStats, bool)
	AppByKey(key string) (appID string, secrets []string, ok bool)
	Channels(ctx context.Context, appID, prefix string) ([]server.ChannelCounts, error)
	Channel(ctx context.Context, appID, name string) (server.ChannelDetail, error)
	Trigger(ctx context.Context, appID, channel, event, data string) error
	ClientIP(r *http.Request) string
	ClientKey(r *http.Request) string
	ForwardedHTTPS(r *http.Request) bool
}

var _ Server = (*server.Server)(nil)

// DeadLetters lists and replays webhook dead letters; *webhooks.Dispatcher
// satisfies it.
type DeadLetters interface {
	DeadLetters(app string, limit int) ([]storage.DeadLetter, error)
	Replay(app string, ids []uint64) (replayed, skipped int, err error)
}

// Deps are the console's collaborators.
type Deps struct {
	Server Server
	// DeadLetters may be nil: the page then shows none.
	DeadLetters DeadLetters
	// Audit records logins and actions; nil records nothing.
	Audit server.AuditLog
	// Login limits login attempts per client key; nil allows all.
	Login ratelimit.Limiter
	// Watch is called with true when the first event stream opens and with
	// false when the last one closes: main installs and removes the
	// console as the server's Observer and the webhook observer there.
	Watch func(watching bool)
	Log   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Nodes is the cluster in Redis mode; nil otherwise (the page then
	// shows no nodes panel).
	Nodes Nodes
}

// Console serves /console. Create it with New, mount Handler at /console
// and /console/, run Run for the charts.
type Console struct {
	cfg       Config
	d         Deps
	sessions  *sessions
	stream    *stream
	ring      *ring
	watching  atomic.Bool
	nodeCache nodesCache
	tokenSum  [32]byte
}

// New returns a console that has started nothing.
func New(cfg Config, d Deps) (*Console, error) {
	if d.Server == nil {
		return nil, errors.New("console: a server is required")
	}
	cfg = cfg.withDefaults()
	if d.Audit == nil {
		d.Audit = nopAudit{}
	}
	if d.Login == nil {
		d.Login = ratelimit.Disabled{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	c := &Console{cfg: cfg, d: d, sessions: newSessions(cfg.MaxSessions, cfg.SessionTTL),
		ring: newRing(int((15 * time.Minute) / cfg.SampleInterval))}
	if cfg.Token != "" {
		c.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	watch := d.Watch
	c.stream = newStream(cfg.StreamBuffer, cfg.MaxStreams, func(on bool) {
		c.watching.Store(on)
		if watch != nil {
			watch(on)
		}
	})
	return c, nil
}

type nopAudit struct{}

func (nopAudit) Record(server.AuditRecord) {}

// Run samples every app's counters each SampleInterval until ctx ends.
func (c *Console) Run(ctx context.Context) {
	c.sample()
	t := time.NewTimer(c.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sample()
			t.Reset(c.cfg.SampleInterval)
		}
	}
}

func (c *Console) sample() {
	now := c.d.Now()
	ids := c.d.Server.AppIDs()
	for _, id := range ids {
		if st, ok := c.d.Server.AppStats(id); ok {
			c.ring.add(id, now, st.Connections, st.MessagesIn, st.MessagesOut)
		}
	}
	c.ring.keep(ids)
}

// Handler serves the page, its assets and its API under /console.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console", c.page)
	mux.HandleFunc("GET /console/{$}", c.page)
	mux.HandleFunc("GET /console/app.js", c.asset("static/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /console/app.css", c.asset("static/app.css", "text/css; charset=utf-8"))
	mux.HandleFunc("POST /console/api/login", c.login)
	mux.HandleFunc("POST /console/api/logout", c.authed(true, c.logout))
	mux.HandleFunc("GET /console/api/session", c.authed(false, c.sessionInfo))
	mux.HandleFunc("GET /console/api/stats", c.authed(false, c.stats))
	mux.HandleFunc("GET /console/api/events", c.authed(false, c.events))
	mux.HandleFunc("GET /console/api/channels", c.authed(false, c.channels))
	mux.HandleFunc("GET /console/api/channel", c.authed(false, c.channel))
	mux.HandleFunc("POST /console/api/trigger", c.authed(true, c.trigger))
	mux.HandleFunc("GET /console/api/dead_letters", c.authed(false, c.deadLetters))
	mux.HandleFunc("GET /console/api/nodes", c.authed(false, c.nodes))
	mux.HandleFunc("POST /console/api/dead_letters/replay", c.authed(true, c.replay))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) { c.fail(w, http.StatusNotFound, "not found") })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
			"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		mux.ServeHTTP(w, r)
	})
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	c.asset("static/index.html", "text/html; charset=utf-8")(w, r)
}

func (c *Console) asset(name, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := static.ReadFile(name)
		if err != nil {
			c.fail(w, http.StatusNotFound, "not found")
			return
		}
		w.Header().Set("Content-Type", ctype)
		_, _ = w.Write(b)
	}
}

// fail answers {"error": msg}.
func (c *Console) fail(w http.ResponseWriter, status int, msg string) {
	c.json(w, status, map[string]string{"error": msg})
}

func (c *Console) json(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readJSON decodes a JSON body of at most maxBody bytes into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return errors.New("the body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("invalid JSON body")
	}
	return nil
}

func (c *Console) audit(app, action, ip, reason string) {
	c.d.Audit.Record(server.AuditRecord{App: app, Action: action, IP: ip, Reason: reason})
}

// secure reports whether the cookie gets the Secure flag: TLS here, or at
// a trusted proxy that says so (X-Forwarded-Proto).
func (c *Console) secure(r *http.Request) bool {
	return c.cfg.Secure || r.TLS != nil || c.d.Server.ForwardedHTTPS(r)
}

// login is POST /console/api/login with {"token":…} or {"key":…,"secret":…}.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ip := c.d.Server.ClientIP(r)
	if d := c.d.Login.Allow("console\x00" + c.d.Server.ClientKey(r)); !d.Allowed {
		c.audit("", AuditLoginLimited, ip, "")
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
		c.fail(w, http.StatusTooManyRequests, "too many login attempts; retry later")
		return
	}
	// Login CSRF (a victim logged in to the attacker's session): a
	// cross-site JSON POST needs a CORS preflight, which is never granted;
	// browsers that say where a request comes from are refused outright.
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		c.audit("", AuditCSRFRefused, ip, r.URL.Path)
		c.fail(w, http.StatusForbidden, "cross-site login refused")
		return
	}
	var req struct {
		Token  string `json:"token"`
		Key    string `json:"key"`
		Secret string `json:"secret"`
	}
	if err := readJSON(w, r, &req); err != nil {
		c.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	operator, app, ok := false, "", false
	switch {
	case req.Token != "":
		sum := sha256.Sum256([]byte(req.Token))
		operator = c.cfg.Token != "" && subtle.ConstantTimeCompare(sum[:], c.tokenSum[:]) == 1
		ok = operator
	case req.Key != "" && req.Secret != "":
		var secrets []string
		var found bool
		app, secrets, found = c.d.Server.AppByKey(req.Key)
		given := sha256.Sum256([]byte(req.Secret))
		for _, s := range secrets {
			want := sha256.Sum256([]byte(s))
			if subtle.ConstantTimeCompare(given[:], want[:]) == 1 {
				ok = found
			}
		}
	}
	if !ok {
		reason := "token"
		if req.Token == "" {
			reason = "app key and secret"
		}
		c.audit(app, AuditLoginRefused, ip, reason)
		c.fail(w, http.StatusUnauthorized, "invalid credentials")
		return
	}
	s := c.sessions.create(operator, app, c.d.Now())
	c.audit(app, AuditLogin, ip, s.who())
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: "/console", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secure(r), MaxAge: int(c.cfg.SessionTTL / time.Second)})
	c.json(w, http.StatusOK, c.info(s))
}

// authed runs h with the request's session; post also checks the CSRF
// token and refuses cross-site requests.
func (c *Console) authed(post bool, h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		var s *session
		if err == nil {
			s = c.sessions.get(ck.Value, c.d.Now())
		}
		if s == nil {
			c.fail(w, http.StatusUnauthorized, "log in first")
			return
		}
		if post {
			got := sha256.Sum256([]byte(r.Header.Get(csrfHeader)))
			want := sha256.Sum256([]byte(s.csrf))
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || r.Header.Get("Sec-Fetch-Site") == "cross-site" {
				c.audit(s.app, AuditCSRFRefused, c.d.Server.ClientIP(r), r.URL.Path)
				c.fail(w, http.StatusForbidden, "missing or wrong CSRF token")
				return
			}
		}
		h(w, r, s)
	}
}

type sessionBody struct {
	Operator bool     `json:"operator"`
	Apps     []string `json:"apps"`
	CSRF     string   `json:"csrf"`
	// Cluster is true in Redis mode: connections and rates are this
	// node's, channels and members the cluster's.
	Cluster bool `json:"cluster"`
}

func (c *Console) info(s *session) sessionBody {
	apps := []string{s.app}
	if s.operator {
		apps = c.d.Server.AppIDs()
	}
	return sessionBody{Operator: s.operator, Apps: apps, CSRF: s.csrf, Cluster: c.d.Nodes != nil}
}

func (c *Console) sessionInfo(w http.ResponseWriter, r *http.Request, s *session) {
	c.json(w, http.StatusOK, c.info(s))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.delete(s.id)
	c.audit(s.app, AuditLogout, c.d.Server.ClientIP(r), s.who())
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/console", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.secure(r), MaxAge: -1})
	c.json(w, http.StatusOK, map[string]bool{"ok": true})
}

// appOf returns the app the request names (?app=), if s may see it.
func (c *Console) appOf(w http.ResponseWriter, r *http.Request, s *session, app string) (string, bool) {
	if app == "" {
		app = r.URL.Query().Get("app")
	}
	if !s.allows(app) {
		c.fail(w, http.StatusForbidden, "not your app")
		return "", false
	}
	if _, ok := c.d.Server.AppStats(app); !ok {
		c.fail(w, http.StatusNotFound, "unknown app")
		return "", false
	}
	return app, true
}

type statsBody struct {
	App             string   `json:"app_id"`
	Connections     int64    `json:"connections"`
	Channels        int      `json:"channels"`
	PresenceMembers int      `json:"presence_members"`
	InPerSec        float64  `json:"in_per_s"`
	OutPerSec       float64  `json:"out_per_s"`
	Series          []sample `json:"series"`
	IntervalMs      int64    `json:"interval_ms"`
}

func (c *Console) stats(w http.ResponseWriter, r *http.Request, s *session) {
	app, ok := c.appOf(w, r, s, "")
	if !ok {
		return
	}
	st, _ := c.d.Server.AppStats(app)
	chs, err := c.d.Server.Channels(r.Context(), app, "")
	if err != nil {
		c.fail(w, http.StatusServiceUnavailable, "channel state unavailable, retry later")
		return
	}
	b := statsBody{App: app, Connections: st.Connections, Channels: len(chs), IntervalMs: c.cfg.SampleInterval.Milliseconds()}
	for _, ch := range chs {
		b.PresenceMembers += ch.Users
	}
	series, last, ok := c.ring.series(app)
	if ok {
		b.InPerSec, b.OutPerSec = rates(last, c.d.Now(), st.MessagesIn, st.MessagesOut)
	}
	b.Series = series
	c.json(w, http.StatusOK, b)
}

type channelBody struct {
	Name          string `json:"name"`
	Subscriptions int    `json:"subscription_count"`
	Users         int    `json:"user_count"`
}

func (c *Console) channels(w http.ResponseWriter, r *http.Request, s *session) {
	app, ok := c.appOf(w, r, s, "")
	if !ok {
		return
	}
	chs, err := c.d.Server.Channels(r.Context(), app, r.URL.Query().Get("prefix"))
	if err != nil {
		c.fail(w, http.StatusServiceUnavailable, "channel state unavailable, retry later")
		return
	}
	out := make([]channelBody, len(chs))
	for i, ch := range chs {
		out[i] = channelBody{ch.Name, ch.Subscriptions, ch.Users}
	}
	c.json(w, http.StatusOK, map[string]any{"channels": out})
}

func (c *Console) channel(w http.ResponseWriter, r *http.Request, s *session) {
	app, ok := c.appOf(w, r, s, "")
	if !ok {
		return
	}
	d, err := c.d.Server.Channel(r.Context(), app, r.URL.Query().Get("name"))
	if err != nil {
		c.fail(w, http.StatusServiceUnavailable, "channel state unavailable, retry later")
		return
	}
	type member struct {
		UserID string          `json:"user_id"`
		Info   json.RawMessage `json:"user_info,omitempty"`
	}
	members := make([]member, len(d.Members))
	for i, m := range d.Members {
		members[i] = member{m.UserID, m.Info}
	}
	body := map[string]any{"name": d.Counts.Name, "subscription_count": d.Counts.Subscriptions,
		"user_count": d.Counts.Users, "members": members}
	if d.CachedEvent != "" {
		body["cached_event"] = map[string]string{"event": d.CachedEvent, "data": d.CachedData}
	}
	c.json(w, http.StatusOK, body)
}

func (c *Console) trigger(w http.ResponseWriter, r *http.Request, s *session) {
	var req struct {
		App     string `json:"app"`
		Channel string `json:"channel"`
		Event   string `json:"event"`
		Data    string `json:"data"`
	}
	if err := readJSON(w, r, &req); err != nil {
		c.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	app, ok := c.appOf(w, r, s, req.App)
	if !ok {
		return
	}
	if err := c.d.Server.Trigger(r.Context(), app, req.Channel, req.Event, req.Data); err != nil {
		if errors.Is(err, server.ErrInvalidEvent) {
			c.fail(w, http.StatusBadRequest, "invalid channel or event name, or data too large")
			return
		}
		c.d.Log.Warn("console: trigger failed", "app_id", app, "err", err)
		c.fail(w, http.StatusServiceUnavailable, "publish failed")
		return
	}
	c.audit(app, AuditTrigger, c.d.Server.ClientIP(r), "channel "+req.Channel+" event "+req.Event)
	c.json(w, http.StatusOK, map[string]bool{"ok": true})
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	app, ok := c.appOf(w, r, s, "")
	if !ok {
		return
	}
	list := []storage.DeadLetter{}
	if c.d.DeadLetters != nil {
		var err error
		if list, err = c.d.DeadLetters.DeadLetters(app, defaultDeadLetters); err != nil {
			c.fail(w, http.StatusInternalServerError, "reading the dead letters failed")
			return
		}
	}
	type letter struct {
		ID        uint64          `json:"id"`
		URL       string          `json:"url"`
		Event     json.RawMessage `json:"event"`
		Attempts  int             `json:"attempts"`
		LastError string          `json:"last_error,omitempty"`
		Reason    string          `json:"reason"`
		DeadAt    time.Time       `json:"dead_at"`
	}
	out := make([]letter, len(list))
	for i, d := range list {
		out[i] = letter{d.ID, webhooks.RedactURL(d.URL), d.Event, d.Attempts, d.LastError, d.Reason, d.DeadAt}
	}
	c.json(w, http.StatusOK, map[string]any{"dead_letters": out})
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request, s *session) {
	var req struct {
		App string   `json:"app"`
		IDs []uint64 `json:"ids"`
	}
	if err := readJSON(w, r, &req); err != nil {
		c.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	app, ok := c.appOf(w, r, s, req.App)
	if !ok {
		return
	}
	if c.d.DeadLetters == nil {
		c.fail(w, http.StatusNotFound, "webhooks are not running")
		return
	}
	replayed, skipped, err := c.d.DeadLetters.Replay(app, req.IDs)
	if err != nil {
		c.fail(w, http.StatusInternalServerError, "replaying the dead letters failed")
		return
	}
	c.audit(app, AuditReplay, c.d.Server.ClientIP(r), fmt.Sprintf("%d replayed (console)", replayed))
	c.json(w, http.StatusOK, map[string]int{"replayed": replayed, "skipped": skipped})
}

// heartbeat is how often an idle event stream gets a comment (keeps
// proxies from closing it) and rechecks its session.
const heartbeat = 15 * time.Second

// streamWriteTimeout bounds one write to an event stream: a console that
// stops reading is cut off instead of holding its goroutine.
const streamWriteTimeout = 10 * time.Second

// events is GET /console/api/events?app=: server-sent events. Each event
// is a JSON Event; "dropped" events carry the number lost so far.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	app, ok := c.appOf(w, r, s, "")
	if !ok {
		return
	}
	sub := c.stream.add(app)
	if sub == nil {
		c.fail(w, http.StatusServiceUnavailable, "too many open event streams")
		return
	}
	defer c.stream.remove(sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(parts ...string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		for _, p := range parts {
			if _, err := io.WriteString(w, p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write(": open\n\n") {
		return
	}
	tick := time.NewTimer(heartbeat)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return // logged out, expired or evicted
		case b := <-sub.ch:
			if !write("data: ", string(b), "\n\n") {
				return
			}
		case <-tick.C:
			if c.sessions.get(s.id, c.d.Now()) == nil {
				return // expired
			}
			if !write(": ping\n\n") {
				return
			}
			tick.Reset(heartbeat)
		}
		if n := sub.dropped.Load(); n != reported {
			reported = n
			if !write("event: dropped\ndata: ", strconv.FormatUint(n, 10), "\n\n") {
				return
			}
		}
	}
}
