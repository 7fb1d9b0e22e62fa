package server

import (
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// app is the live state of one tenant. The *app for an id survives config
// reloads, so its counters stay correct; its config is swapped atomically.
type app struct {
	id    string // fixed
	cfg   atomic.Pointer[appConfig]
	conns atomic.Int64 // open sockets, for MaxConnections
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

func (a *app) config() *appConfig { return a.cfg.Load() }

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
// still exist.
func (r *appRegistry) load(apps []storage.App, initApp func(*app)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.index.Load()
	next := &appIndex{byKey: make(map[string]*app, len(apps)), byID: make(map[string]*app, len(apps))}
	for _, sa := range apps {
		if sa.ID == "" || sa.Key == "" || sa.Secret == "" {
			return fmt.Errorf("app %q: id, key and secret are required", sa.ID)
		}
		if _, dup := next.byKey[sa.Key]; dup {
			return fmt.Errorf("app %q: key is used by another app", sa.ID)
		}
		var a *app
		if old != nil {
			a = old.byID[sa.ID]
		}
		if a == nil {
			a = &app{id: sa.ID}
			initApp(a)
		}
		a.cfg.Store(newAppConfig(sa))
		next.byID[sa.ID] = a
		next.byKey[sa.Key] = a
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
