package push

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/storage"
)

// Apps gives push what it needs to know of an app: what verifies the
// Pusher signatures its client API accepts, and the app's limits
// (server.Server satisfies it). Both are called per request, so they must
// not touch storage.
type Apps interface {
	// AppCredentials returns the app's key and the secrets valid now; ok is
	// false for an unknown or disabled app.
	AppCredentials(appID string) (key string, secrets []string, ok bool)
	// AppBeamsKeys returns the app's Pusher Beams secret keys valid now,
	// current first; nil for an unknown or disabled app, or one without a
	// key (the Beams routes then answer 404).
	AppBeamsKeys(appID string) []string
	// AppPushLimits returns the app's overrides of Config.Devices and of
	// the Limits.Registrations budget; zero fields, and the zero value for
	// an unknown app, keep the server-wide values.
	AppPushLimits(appID string) storage.AppPushLimits
}

// Audit keeps audit records; Record must not block.
type Audit interface {
	Record(storage.AuditEntry)
}

// SignedRoute is a route of the push server API, signed like the Pusher
// HTTP API: main mounts it with server.HandleSigned, which has checked the
// app, the body limit and the signature before Handler runs.
type SignedRoute struct {
	Pattern string
	Handler func(w http.ResponseWriter, r *http.Request, appID string, body []byte)
}

// Route is a route that carries its own authentication (the client API
// that devices call): main mounts it with server.Handle.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Config is the push subsystem's configuration; main fills it from the
// environment (PUSH_*). Zero values mean the documented defaults.
type Config struct {
	// CredentialKey encrypts provider credentials at rest (AES-256-GCM, 32
	// bytes). Nil refuses credential writes with a clear error.
	CredentialKey []byte
	// PreviousCredentialKeys open credentials sealed before a change of
	// CredentialKey (32 bytes each); they never seal. Credentials.Reseal
	// moves what they sealed to CredentialKey. Nil: none.
	PreviousCredentialKeys [][]byte
	// APNsEndpoint is "production", "development" or an http(s) URL
	// (http:// is HTTP/2 cleartext, for tests). Empty means production.
	APNsEndpoint string
	// FCMEndpoint is the FCM API base URL. Empty means
	// https://fcm.googleapis.com.
	FCMEndpoint string
	// FCMTokenURL replaces the token_uri of every FCM service account
	// (tests, FCM emulators). Empty: each credential's own, which must be
	// Google's (FCMTokenURL), fetched through an HTTP client that refuses
	// private addresses and redirects.
	FCMTokenURL string
	// AllowLocalWebPush lets Web Push endpoints be http:// and private
	// addresses (tests only).
	AllowLocalWebPush bool
	// WebAllowedHosts limits Web Push endpoints to these push services
	// (webpush.HostAllowed patterns); nil allows any public host.
	WebAllowedHosts []string
	// Limits are the push rate limiters; nil means unlimited.
	Limits Limits

	// Devices bounds devices and their subscriptions.
	Devices DeviceConfig
	// Publish bounds publishes per app.
	Publish PublishConfig
	// Dispatch tunes the delivery workers.
	Dispatch DispatchConfig
}

// Limits are push's rate limiters, keyed as each says.
type Limits struct {
	// Registrations is keyed by app id and client IP and counts client API
	// device registrations, per minute. An app's RegistrationsPerMinute
	// (Apps.AppPushLimits) replaces its limit when it takes per-call
	// quotas (ratelimit.Memory).
	Registrations ratelimit.Limiter

	// DeviceRequests is keyed by app id and device id and counts the
	// client API requests that change a device (challenge, user, token,
	// interests, channels), after its secret was checked; refused: 429
	// with Retry-After.
	DeviceRequests ratelimit.Limiter

	// AuthFailures is keyed by client IP and counts refused device secrets
	// and signatures on the client API (main shares the WebSocket path's
	// limiter); once spent, refusals answer 429.
	AuthFailures ratelimit.Limiter

	// Publishes is keyed by app id and counts publishes per second
	// (PublishConfig.PerSecond); an app's PublishesPerSecond replaces its
	// limit when it takes per-call quotas (ratelimit.Memory).
	Publishes ratelimit.Limiter

	// Notifications counts each app's notifications per day, persisted
	// (ratelimit.Window); nil means no daily quota.
	Notifications NotificationQuota
}

// Service is the push subsystem: provider credentials, devices and their
// subscriptions, and (later) the publish pipeline.
type Service struct {
	cfg   Config
	db    *storage.DB
	apps  Apps
	audit Audit
	log   *slog.Logger
	// clientIP is the client address of a request, behind trusted proxies
	// (server.ClientIP).
	clientIP func(*http.Request) string
	// creds are the provider credentials and their live clients.
	creds *Credentials
	// disp delivers publishes; nil without a Sender (nothing is sent,
	// publishes wait in storage).
	disp *dispatcher
	m    *Metrics
	// trail appends to the push audit trail; nil: none.
	trail func(auditRecord)
}

// Deps are the Service's collaborators.
type Deps struct {
	// Now is the clock of devices and challenges; nil means time.Now.
	Now func() time.Time
	// WebSubscription validates a browser subscription and returns its
	// decoded keys (main: webpush.ParseSubscription, then CheckEndpoint
	// with Config.AllowLocalWebPush; webpush imports push, so push cannot
	// call it). nil refuses web devices.
	WebSubscription func(endpoint, p256dh, auth string) (key, secret []byte, err error)

	DB   *storage.DB
	Apps Apps
	// Audit records what clients cause (device registrations, bindings,
	// refusals); main aggregates and caps these apart from operator changes.
	Audit Audit
	// Changes records operator changes (provider credentials), kept where
	// client traffic can never evict them (storage.AppendAudit). nil means
	// Audit.
	Changes  Audit
	Log      *slog.Logger
	ClientIP func(*http.Request) string
	// ClientBuilder makes provider clients from credentials
	// (push/providers.Builder); nil checks credentials without building
	// clients, and the registry then serves none.
	ClientBuilder ClientBuilder
	// Sender sends a notification through a client ClientBuilder made
	// (push/providers.Send); nil: publishes are accepted and stored but
	// Run sends nothing.
	Sender Sender
	// Events receives finished publishes, invalidated devices and failing
	// credentials (main: webhooks); nil: none.
	Events Events
	// Metrics records the pipeline's metrics; nil: none.
	Metrics *Metrics
	// Trail appends to the hash-chained push audit trail
	// (AuditTrail.Record): credential changes, publishes, cancels, device
	// invalidations, limit trips. nil: none.
	Trail func(storage.PushAuditEntry)
}

// New validates cfg and returns a Service that has started nothing.
func New(cfg Config, d Deps) (*Service, error) {
	if d.DB == nil || d.Apps == nil {
		return nil, errors.New("push: a database and the apps are required")
	}
	if len(cfg.CredentialKey) != 0 && len(cfg.CredentialKey) != 32 {
		return nil, errors.New("push: the credential encryption key must be 32 bytes")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Audit == nil {
		d.Audit = nopAudit{}
	}
	if d.Changes == nil {
		d.Changes = d.Audit
	}
	if d.ClientIP == nil {
		d.ClientIP = func(r *http.Request) string { return r.RemoteAddr }
	}
	// Devices: defaults, and the collaborators they use (kept in cfg.Devices).
	cfg.Devices = cfg.Devices.withDefaults(d)
	if cfg.Limits.AuthFailures == nil {
		cfg.Limits.AuthFailures = ratelimit.Disabled{}
	}
	if cfg.Limits.Registrations == nil {
		cfg.Limits.Registrations = ratelimit.Disabled{}
	}
	if cfg.Limits.DeviceRequests == nil {
		cfg.Limits.DeviceRequests = ratelimit.Disabled{}
	}
	if cfg.Limits.Publishes == nil {
		cfg.Limits.Publishes = ratelimit.Disabled{}
	}
	creds, err := NewCredentials(d.DB, cfg, d.ClientBuilder, d.Changes, d.Now)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: d.DB, apps: d.Apps, audit: d.Audit, log: d.Log, clientIP: d.ClientIP,
		creds: creds, m: d.Metrics}
	if d.Trail != nil {
		creds.SetTrail(d.Trail)
		s.trail = func(a auditRecord) { d.Trail(a.entry(s.now())) }
	}
	if d.Sender != nil {
		s.disp = newDispatcher(s, cfg.Dispatch, d.Sender, d.Events, d.Metrics)
	}
	return s, nil
}

// Run delivers publishes until ctx is done, then finishes the sends in
// flight and returns. Without a Sender it returns at once.
func (s *Service) Run(ctx context.Context) {
	if s.disp != nil {
		s.disp.run(ctx)
	}
}

type nopAudit struct{}

func (nopAudit) Record(storage.AuditEntry) {}

// SignedRoutes are the push server API routes (/apps/{app_id}/push/...).
func (s *Service) SignedRoutes() []SignedRoute {
	routes := append(append(s.credentialRoutes(), s.deviceRoutes()...), s.publishRoutes()...)
	return append(routes, AuditRoutes(s.db)...)
}

// Routes are the routes that carry their own authentication: the client
// API (/apps/{app_id}/push/client/...), which devices call with their own
// credentials, and the Pusher Beams face (beams.go: /publish_api,
// /user_api and /device_api), which takes an app's Beams secret key or
// Beams user tokens.
func (s *Service) Routes() []Route {
	return append(append(s.clientRoutes(), s.credentialClientRoutes()...), s.beamsRoutes()...)
}

// AppsChanged is told that apps were changed or deleted (main calls it
// with the server's app reload): the live clients of deleted apps are
// dropped, so an app created later with the same id starts without them
// (storage deleted their credentials with the app).
func (s *Service) AppsChanged() error {
	s.creds.reg.Prune(func(app string) bool {
		_, err := s.db.App(app)
		return errors.Is(err, storage.ErrNotFound)
	})
	return nil
}

// Credentials is the provider credential manager; its Registry holds the
// live provider clients sends use.
func (s *Service) Credentials() *Credentials { return s.creds }

// DispatchOnce claims up to limit deliveries due now, sends them, waits
// for the answers and records them: one step of Run, for tests that drive
// a fake clock. It returns how many deliveries it claimed.
func (s *Service) DispatchOnce(ctx context.Context, limit int) (int, error) {
	if s.disp == nil {
		return 0, errors.New("push: no Sender")
	}
	return s.disp.dispatchOnce(ctx, limit)
}
