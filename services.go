// The subsystems around the server and their routes: the side listeners
// (metrics, admin socket), the audit log, webhooks and push.

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/console"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/providers"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/tlscert"
	"github.com/sockudo/sockudo/webhooks"
)

// listen opens the public listener, wrapped in TLS when SSL_ENABLED (the
// certificate is reloaded when its files change).
func listen(c Config, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", c.Addr())
	if err != nil {
		return nil, err
	}
	if !c.TLS.Enabled {
		return ln, nil
	}
	certs, err := tlscert.New(c.TLS.CertPath, c.TLS.KeyPath)
	if err != nil {
		ln.Close()
		return nil, err
	}
	log.Info("serving TLS", "cert", c.TLS.CertPath)
	return tls.NewListener(ln, certs.Config()), nil
}

// background is an HTTP server main runs beside the public one.
type background struct {
	name string
	hs   *http.Server
	done chan struct{}
}

func startBackground(name string, ln net.Listener, h http.Handler, log *slog.Logger) *background {
	b := &background{name: name, done: make(chan struct{}),
		hs: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}}
	go func() {
		defer close(b.done)
		if err := b.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" listener failed", "err", err)
		}
	}()
	return b
}

// stop shuts the server down within ctx and waits for it.
func (b *background) stop(ctx context.Context) {
	if b == nil {
		return
	}
	_ = b.hs.Shutdown(ctx)
	<-b.done
}

// startMetrics serves /metrics on METRICS_HOST:METRICS_PORT.
func startMetrics(c Config, srv *server.Server, log *slog.Logger) (*background, error) {
	if !c.Metrics.Enabled {
		return nil, nil
	}
	addr := net.JoinHostPort(c.Metrics.Host, strconv.Itoa(c.Metrics.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", srv.MetricsHandler())
	log.Info("metrics listening", "addr", ln.Addr().String())
	return startBackground("metrics", ln, mux, log), nil
}

// startAdmin serves the admin API on its unix socket, so the CLI can change
// apps of the running server; reload applies a change (the server's apps
// and the webhook targets).
func startAdmin(c Config, db *storage.DB, reload func() error, validate func(storage.App) error,
	dead admin.DeadLetterService, push http.Handler, log *slog.Logger) (*background, error) {
	if !c.Admin.Enabled {
		return nil, nil
	}
	ln, err := admin.Listen(c.adminSocket())
	if err != nil {
		return nil, err
	}
	admin.SetLog(ln, log)
	log.Info("admin socket listening", "path", c.adminSocket())
	as := admin.NewServer(db, reload, log)
	as.PushDevices = db
	as.Validate = validate
	as.DeadLetters = dead
	if d, ok := dead.(*webhooks.Dispatcher); ok {
		as.WebhookQueues = webhookQueues{d, db}
	}
	as.Push = push
	return startBackground("admin", ln, as.Handler(), log), nil
}

// webhookQueues answers the admin socket's GET /webhooks/queues from the
// running dispatcher: the targets of one app, or of every stored app.
type webhookQueues struct {
	d  *webhooks.Dispatcher
	db *storage.DB
}

func (q webhookQueues) WebhookQueues(app string) ([]admin.WebhookQueue, error) {
	ids := []string{app}
	if app == "" {
		all, err := q.db.Apps()
		if err != nil {
			return nil, err
		}
		ids = ids[:0]
		for _, a := range all {
			ids = append(ids, a.ID)
		}
	}
	out := []admin.WebhookQueue{}
	for _, id := range ids {
		for _, t := range q.d.Queues(id) {
			out = append(out, admin.WebhookQueue{App: id, URL: t.URL, Pending: t.Pending, Failures: t.Failures,
				NextAttempt: t.NextAttempt})
		}
	}
	return out, nil
}

// auditLog adapts storage's buffered audit writer to the server's AuditLog.
// Everything the server records is a refusal: the writer aggregates the
// repeats per app, action, IP and reason and keeps them apart from the
// changes (apps.Service), which a flood therefore cannot evict.
type auditLog struct{ w *storage.AuditWriter }

func (a auditLog) Record(r server.AuditRecord) {
	a.w.Record(storage.AuditEntry{App: r.App, Action: r.Action, IP: r.IP, Channel: r.Channel, UserID: r.UserID, Reason: r.Reason})
}

// serveAudit is GET /apps/{app_id}/audit: the app's audit entries, newest
// first; query since (RFC 3339), action, limit.
func serveAudit(db *storage.DB) server.SignedHandler {
	return func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		f, err := admin.AuditQuery(r.URL.Query(), appID)
		if err != nil {
			server.WriteError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), storage.ErrInvalid.Error()+": "))
			return
		}
		entries, err := db.Audit(f)
		if err != nil {
			server.WriteError(w, http.StatusInternalServerError, "reading the audit log failed")
			return
		}
		b, _ := json.Marshal(map[string]any{"entries": entries})
		server.WriteJSON(w, http.StatusOK, b)
	}
}

// webhookSink adapts the server's lifecycle events to the webhook
// dispatcher, which does not import server.
type webhookSink struct{ d *webhooks.Dispatcher }

var _ server.EventSink = webhookSink{}

func (s webhookSink) Emit(e server.Event) {
	s.d.Emit(webhooks.Event{
		App:               e.App,
		Name:              e.Name,
		Channel:           e.Channel,
		UserID:            e.UserID,
		Event:             e.Event,
		Data:              e.Data,
		SocketID:          e.SocketID,
		SubscriptionCount: e.SubscriptionCount,
	})
}

// maxDeadLetterList bounds one dead-letter listing.
const maxDeadLetterList = 10_000

// routeWebhooks adds the signed webhook API routes (signed like the REST
// API, shared/spec/pusher-protocol.md §4.2). They answer an app's backend,
// not the operator, so target URLs lose their userinfo and query (where
// receivers' tokens live); the admin socket and the CLI show them whole.
//
//	GET  /apps/{app_id}/webhooks                      the targets and their queues
//	GET  /apps/{app_id}/webhooks/dead_letters?limit=N the dead letters, oldest first
//	POST /apps/{app_id}/webhooks/dead_letters/replay  {"ids":[…]} or {} for all
//
// A replay is audited through record, like one through the admin socket.
func routeWebhooks(srv *server.Server, d *webhooks.Dispatcher, record func(app, action, reason string)) {
	srv.HandleSigned("GET /apps/{app_id}/webhooks", func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		targets := d.Queues(appID)
		for i := range targets {
			targets[i].URL = webhooks.RedactURL(targets[i].URL)
		}
		writeJSONValue(w, map[string]any{"targets": targets})
	})
	srv.HandleSigned("GET /apps/{app_id}/webhooks/dead_letters", func(w http.ResponseWriter, r *http.Request, appID string, _ []byte) {
		limit := 1000
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxDeadLetterList {
				server.WriteError(w, http.StatusBadRequest, "limit must be 1-"+strconv.Itoa(maxDeadLetterList))
				return
			}
			limit = n
		}
		dead, err := d.DeadLetters(appID, limit)
		if err != nil {
			server.WriteError(w, http.StatusInternalServerError, "reading the dead letters failed")
			return
		}
		for i := range dead {
			dead[i].URL = webhooks.RedactURL(dead[i].URL)
		}
		writeJSONValue(w, map[string]any{"dead_letters": dead})
	})
	srv.HandleSigned("POST /apps/{app_id}/webhooks/dead_letters/replay", func(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
		var req struct {
			IDs []uint64 `json:"ids"`
		}
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				server.WriteError(w, http.StatusBadRequest, `body must be {"ids":[…]} or empty`)
				return
			}
		}
		replayed, skipped, err := d.Replay(appID, req.IDs)
		if err != nil {
			server.WriteError(w, http.StatusInternalServerError, "replaying the dead letters failed")
			return
		}
		record(appID, "dead_letters_replayed", strconv.Itoa(replayed)+" replayed (HTTP API)")
		writeJSONValue(w, map[string]int{"replayed": replayed, "skipped": skipped})
	})
}

func writeJSONValue(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		server.WriteError(w, http.StatusInternalServerError, "encoding the response failed")
		return
	}
	server.WriteJSON(w, http.StatusOK, b)
}

// webhookCollector exports the dispatcher's Stats as Prometheus metrics,
// read at scrape time.
type webhookCollector struct {
	d     *webhooks.Dispatcher
	descs map[string]*prometheus.Desc
}

func newWebhookCollector(d *webhooks.Dispatcher) *webhookCollector {
	c := &webhookCollector{d: d, descs: map[string]*prometheus.Desc{}}
	for name, help := range map[string]string{
		"queued_total":        "Webhook events committed to the durable queue (one per target).",
		"sent_total":          "Webhook events delivered with a 2xx.",
		"failed_total":        "Failed webhook requests (network errors and non-2xx statuses).",
		"retried_total":       "Webhook events scheduled for another attempt.",
		"dead_lettered_total": "Webhook events given up on.",
		"coalesced_total":     "Webhook events never sent because a later one made them moot (occupied then vacated, a newer subscription_count).",
		"queue_depth":         "Webhook events waiting in the durable queue.",
	} {
		c.descs[name] = prometheus.NewDesc("sockudo_webhook_"+name, help, nil, nil)
	}
	c.descs["dropped_total"] = prometheus.NewDesc("sockudo_webhook_dropped_total",
		"Webhook events dropped, by reason: not_persisted (lost before reaching the queue: buffer full, "+
			"shutdown, failed final write) or queue_full (the oldest of a full queue, moved to the dead letters).",
		[]string{"reason"}, nil)
	return c
}

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v))
	}
	counter("queued_total", s.Queued)
	counter("sent_total", s.Sent)
	counter("failed_total", s.Failed)
	counter("retried_total", s.Retried)
	counter("dead_lettered_total", s.DeadLettered)
	counter("coalesced_total", s.Coalesced)
	ch <- prometheus.MustNewConstMetric(c.descs["dropped_total"], prometheus.CounterValue, float64(s.Dropped),
		"not_persisted")
	ch <- prometheus.MustNewConstMetric(c.descs["dropped_total"], prometheus.CounterValue, float64(s.QueueFull),
		"queue_full")
	ch <- prometheus.MustNewConstMetric(c.descs["queue_depth"], prometheus.GaugeValue, float64(s.QueueDepth))
}

// pushFallback is the server's PushFallback: the push service, which is
// built after the server. svc is set before Serve and never changes after.
type pushFallback struct{ svc *push.Service }

func (f *pushFallback) CheckPush(appID string, raw json.RawMessage) error {
	return f.svc.CheckPush(appID, raw)
}

func (f *pushFallback) Push(ctx context.Context, appID string, channels []string, raw json.RawMessage,
	online func(ctx context.Context, userIDs []string) ([]bool, error)) error {
	return f.svc.Push(ctx, appID, channels, raw, online)
}

// pushEvents turns the push pipeline's reports into push webhooks
// (shared/spec/push-api.md §4.7), sent to targets that list them.
type pushEvents struct {
	d       *webhooks.Dispatcher
	console *console.Console // nil when the console is off
}

func (e pushEvents) PublishFinished(p storage.PushPublish) {
	if e.console != nil {
		e.console.ObservePush(p)
	}
	f := map[string]any{"publish_id": p.ID, "state": p.State, "counters": p.Counters,
		"created_at": p.CreatedAt.UnixMilli(), "finished_at": p.FinishedAt.UnixMilli()}
	e.d.Emit(webhooks.Event{App: p.App, Name: webhooks.PushPublishFinished, Fields: f})
}

// trail passes each push audit entry to record and shows the publishes
// the push API accepted in the console: push reports only finished
// publishes to Events, and its trail sees every accepted one at once.
func (e pushEvents) trail(record func(storage.PushAuditEntry)) func(storage.PushAuditEntry) {
	if e.console == nil {
		return record
	}
	return func(a storage.PushAuditEntry) {
		record(a)
		if !e.console.Watching() || (a.Action != push.AuditPublishCreate && a.Action != push.AuditPublishSchedule) {
			return
		}
		var d struct {
			Planned int   `json:"planned"`
			SendAt  int64 `json:"send_at"`
		}
		_ = json.Unmarshal(a.Details, &d)
		var at time.Time
		if d.SendAt > 0 {
			at = time.Unix(d.SendAt, 0)
		}
		e.console.ObservePushAccepted(a.App, strings.TrimPrefix(a.Target, "publish:"), a.Outcome, d.Planned, at)
	}
}

func (e pushEvents) DeviceInvalidated(app string, d storage.Device, reason string) {
	f := map[string]any{"device_id": d.ID, "platform": d.Platform, "reason": reason}
	if d.UserID != "" {
		f["user_id"] = d.UserID
	}
	e.d.Emit(webhooks.Event{App: app, Name: webhooks.PushDeviceInvalidated, Fields: f})
}

func (e pushEvents) CredentialUnhealthy(app string, p push.CredentialProvider, version uint64, reason string) {
	provider := string(p)
	if p == push.ProviderWebPush {
		provider = "web"
	}
	e.d.Emit(webhooks.Event{App: app, Name: webhooks.PushCredentialUnhealthy,
		Fields: map[string]any{"provider": provider, "version": version, "reason": reason}})
}

// routePush builds the push subsystem and mounts its routes: the server API
// signed like the Pusher API, the client API with its own authentication.
func routePush(srv *server.Server, cfg push.Config, db *storage.DB, audit push.Audit, events push.Events,
	trail *push.AuditTrail, log *slog.Logger) (*push.Service, error) {
	metrics := push.NewMetrics(srv.Registry(), func() float64 {
		n, _ := db.PushQueueDepth()
		return float64(n)
	})
	deps := push.Deps{DB: db, Apps: srv, Audit: audit, Changes: changeLog{db, log}, Log: log,
		ClientIP: srv.ClientKey, WebSubscription: webSubscription(cfg.AllowLocalWebPush, cfg.WebAllowedHosts), ClientBuilder: providers.Builder(cfg),
		Sender: providers.Send, Metrics: metrics, Events: events}
	if trail != nil {
		deps.Trail = trail.Record
		if pe, ok := events.(pushEvents); ok {
			deps.Trail = pe.trail(trail.Record)
		}
	}
	svc, err := push.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	for _, r := range svc.SignedRoutes() {
		srv.HandleSigned(r.Pattern, r.Handler)
	}
	for _, r := range svc.Routes() {
		srv.Handle(r.Pattern, r.Handler)
	}
	return svc, nil
}

// changeLog writes an operator change to the audit log's changes, which
// refusals never evict.
type changeLog struct {
	db  *storage.DB
	log *slog.Logger
}

func (c changeLog) Record(e storage.AuditEntry) {
	if err := c.db.AppendAudit([]storage.AuditEntry{e}); err != nil && c.log != nil {
		c.log.Error("writing the audit log", "action", e.Action, "err", err)
	}
}

// consoleLoginLimit bounds console logins per client when the shared
// limiters are off (RATE_LIMITER_ENABLED=false): the console guards every
// app, so its login is never unlimited.
var consoleLoginLimit = ratelimit.MemoryConfig{Limit: 10, Window: time.Minute}

// startConsole mounts the operator console at /console when
// CONSOLE_ENABLED, and returns nil otherwise. Logins count against login
// (the auth-failure limiter, keyed per client), or against a limiter of
// its own when that one is off. While a console streams events it is the
// server's observer and the webhook delivery observer. nodes is the
// cluster in Redis mode (clusterMode.consoleNodes), nil otherwise.
func startConsole(cfg Config, srv *server.Server, hooks *webhooks.Dispatcher, audit consoleAudit,
	login ratelimit.Limiter, nodes console.Nodes, bgCtx context.Context, bg *sync.WaitGroup, log *slog.Logger) (*console.Console, error) {
	if !cfg.Console.Enabled {
		return nil, nil
	}
	if login == nil {
		m := ratelimit.NewMemory(consoleLoginLimit)
		bg.Add(1)
		go func() { defer bg.Done(); m.Run(bgCtx) }()
		login = m
	}
	var con *console.Console
	con, err := console.New(cfg.ConsoleConfig(), console.Deps{Server: srv, DeadLetters: hooks, Audit: audit, Login: login,
		Nodes: nodes, Log: log, Watch: func(on bool) {
			if on {
				srv.SetObserver(con)
				hooks.SetObserver(con.ObserveDelivery)
				return
			}
			srv.SetObserver(nil)
			hooks.SetObserver(nil)
		}})
	if err != nil {
		return nil, err
	}
	srv.Registry().MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sockudo_console_dropped_events_total",
		Help: "Console event-stream events dropped because a console read too slowly."},
		func() float64 { return float64(con.Dropped()) }))
	h := con.Handler()
	srv.Handle("/console", h)
	srv.Handle("/console/", h)
	bg.Add(1)
	go func() { defer bg.Done(); con.Run(bgCtx) }()
	if cfg.Console.Token == "" {
		log.Info("console enabled at /console: app key+secret logins only (CONSOLE_TOKEN is not set)")
	} else {
		log.Info("console enabled at /console")
	}
	return con, nil
}

// consoleAudit routes the console's audit records: refusals (refused and
// rate-limited logins, CSRF refusals) to the aggregating writer with the
// server's, changes (logins, logouts, triggers, replays) to the changes,
// which a flood of refusals never evicts.
type consoleAudit struct {
	refusals server.AuditLog
	changes  changeLog
}

func (a consoleAudit) Record(r server.AuditRecord) {
	if console.IsRefusal(r.Action) {
		a.refusals.Record(r)
		return
	}
	a.changes.Record(storage.AuditEntry{Time: time.Now().UTC(), App: r.App, Action: r.Action, IP: r.IP, Reason: r.Reason})
}
