package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockudo/sockudo/storage"
)

// app is the live state of one tenant. The *app for an id survives config
// reloads, so its counters stay correct; its config is swapped atomically.
type app struct {
	id    string                    // fixed
	src   atomic.Pointer[appSource] // the stored settings; swapped by reloads
	conns atomic.Int64              // open sockets, for MaxConnections
	// msgsIn and msgsOut count messages received and delivered, for the
	// console (AppStats).
	msgsIn, msgsOut atomic.Uint64

	// connGauge and connOpened are the app's series, resolved by
	// resolveMetrics: before its first socket is registered, or by the
	// first scrape (MetricsHandler), whichever comes first. Resolving
	// them for every app in New cost about 10 ms of the start with 1,000
	// apps; read them only after resolveMetrics.
	metricsOnce sync.Once
	metrics     *metrics // set before the app is published
	connGauge   prometheus.Gauge
	connOpened  prometheus.Counter
}

// resolveMetrics resolves the app's metric series once.
func (a *app) resolveMetrics() {
	a.metricsOnce.Do(func() {
		a.connGauge = a.metrics.connections.WithLabelValues(a.id)
		a.connOpened = a.metrics.connsOpened.WithLabelValues(a.id)
	})
}

// appConfig is an app's settings with defaults applied and derived values
// precomputed, read lock-free on the hot path.
type appConfig struct {
	storage.App
	current []string // just the current secret
	both    []string // current and previous, valid until PreviousSecretExpiresAt
	origins []originPattern
}

func newAppConfig(a storage.App) *appConfig {
	a = a.WithDefaults()
	c := &appConfig{App: a, current: []string{a.Secret}}
	if a.PreviousSecret != "" {
		c.both = []string{a.Secret, a.PreviousSecret}
	}
	for _, o := range a.AllowedOrigins {
		if o = strings.TrimSpace(o); o != "" {
			c.origins = append(c.origins, parseOrigin(o))
		}
	}
	return c
}

// config returns the app's settings, decoding them at the first call after
// a start or reload.
func (a *app) config() *appConfig { return a.src.Load().config() }

// appSource is one stored version of an app, decoded at its first use: a
// start or reload with many apps then decodes none before it is done
// (encoding/json takes 7–12 µs per app, 12–17 ms of the start with 1,000
// apps), and apps that see no traffic are never decoded. A record that
// cannot be decoded serves as a disabled app without secrets, so it refuses
// sockets and signatures, and is logged once.
type appSource struct {
	once sync.Once
	rec  storage.AppRecord // Value is dropped once decoded
	log  *slog.Logger
	cfg  *appConfig // set by once
}

func (s *appSource) config() *appConfig {
	s.once.Do(s.decode)
	return s.cfg
}

func (s *appSource) decode() {
	a, err := s.rec.Decode()
	s.rec.Value = nil
	if err != nil {
		s.log.Error("app cannot be loaded from the store; it refuses sockets and API calls until fixed (sockudo doctor)",
			"app_id", s.rec.ID, "err", err)
		s.cfg = &appConfig{App: storage.App{ID: s.rec.ID, Key: s.rec.Key}.WithDefaults()}
		return
	}
	s.cfg = newAppConfig(a)
}

// secrets returns the secrets that verify signatures now: the current one,
// and the previous one until it expires (secret rotation).
func (c *appConfig) secrets() []string {
	if c.both != nil && time.Now().Before(c.PreviousSecretExpiresAt) {
		return c.both
	}
	return c.current
}

// appIndex is an immutable snapshot of the apps by key and id.
type appIndex struct {
	byKey map[string]*app
	byID  map[string]*app
}

// appRegistry serves app lookups from memory; reload swaps the index.
type appRegistry struct {
	mu    sync.Mutex // serialises reloads
	index atomic.Pointer[appIndex]
}

func (r *appRegistry) byKey(key string) *app { return r.index.Load().byKey[key] }
func (r *appRegistry) byID(id string) *app   { return r.index.Load().byID[id] }

// load replaces the index with apps, keeping the live *app of ids that
// still exist. Their settings are decoded at first use (appSource).
func (r *appRegistry) load(recs []storage.AppRecord, log *slog.Logger, initApp func(*app)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.index.Load()
	next := &appIndex{byKey: make(map[string]*app, len(recs)), byID: make(map[string]*app, len(recs))}
	for _, rec := range recs {
		if rec.ID == "" {
			return errors.New("an app has an empty id")
		}
		if _, dup := next.byKey[rec.Key]; dup && rec.Key != "" {
			return fmt.Errorf("app %q: key is used by another app", rec.ID)
		}
		var a *app
		if old != nil {
			a = old.byID[rec.ID]
		}
		if a == nil {
			a = &app{id: rec.ID}
			initApp(a)
		}
		a.src.Store(&appSource{rec: rec, log: log})
		next.byID[rec.ID] = a
		// Without a key (its record could not be read) the app answers
		// only by id, with the refusals of appSource.
		if rec.Key != "" {
			next.byKey[rec.Key] = a
		}
	}
	r.index.Store(next)
	return nil
}

// AppCredentials returns an app's key and the secrets that verify its
// signatures now (the current one, and the previous one until it expires),
// for subsystems that verify Pusher signatures themselves (the push client
// API). ok is false for an unknown or disabled app.
func (s *Server) AppCredentials(appID string) (key string, secrets []string, ok bool) {
	a := s.apps.byID(appID)
	if a == nil {
		return "", nil, false
	}
	cfg := a.config()
	if !cfg.Enabled {
		return "", nil, false
	}
	return cfg.Key, cfg.secrets(), true
}

// AppBeamsKeys returns the Pusher Beams secret keys of an enabled app that
// are valid now, current first (storage.App.BeamsKeys), from the in-memory
// config; nil for an unknown or disabled app and for an app without a key.
func (s *Server) AppBeamsKeys(appID string) []string {
	a := s.apps.byID(appID)
	if a == nil {
		return nil
	}
	cfg := a.config()
	if !cfg.Enabled {
		return nil
	}
	return cfg.BeamsKeys(time.Now())
}

// AppPushLimits returns an app's overrides of the server-wide push device
// limits (storage.App.PushLimits), for the push subsystem to read per
// request: from the in-memory config, never storage. It is the zero value,
// which keeps the server-wide limits, for an unknown app.
func (s *Server) AppPushLimits(appID string) storage.AppPushLimits {
	a := s.apps.byID(appID)
	if a == nil {
		return storage.AppPushLimits{}
	}
	return a.config().PushLimits
}
