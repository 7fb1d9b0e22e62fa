// Command sockudo is a Pusher-protocol-compatible realtime server: one
// binary serving WebSockets and the Pusher HTTP API on one port, with its
// apps in a local bbolt file. Run "sockudo help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/cli"
	"github.com/sockudo/sockudo/internal/gcfloor"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// dbLockTimeout is how long serve and the apps commands wait for the
// database lock. A variable so tests need not wait the full default.
var dbLockTimeout = storage.DefaultTimeout

// The credentials a fresh install starts with. They are public (they are in
// the README), so serve warns while any is in use.
const (
	publicAppID     = "app-id"
	publicAppKey    = "app-key"
	publicAppSecret = "app-secret"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], env.ToMap(os.Environ()), os.Stdout, os.Stderr))
}

// run executes the command line args (without the program name) and returns
// the exit code; environ stands in for the process environment. The command
// line is package cli's; serving and the settings are main's.
func run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, environ, stdout, stderr, cli.Program{
		Version:     version,
		Serve:       serve,
		Settings:    cliSettings,
		LockTimeout: dbLockTimeout,
		Doctor:      doctor,
	})
}

// serve runs the server until SIGTERM/SIGINT or until ctx ends, then drains
// it for at most SHUTDOWN_GRACE_PERIOD. It returns the process exit code: 0
// after a clean stop, 1 if the server could not start or failed, 2 if the
// configuration is invalid.
func serve(ctx context.Context, environ map[string]string, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintf(stderr, "sockudo: invalid configuration:\n%s\n", indent(err.Error()))
		return 2
	}
	log := newLogger(cfg.Log, stderr)
	tuneRuntime(environ)
	log.Info("starting sockudo", "version", version, "db", cfg.Storage.DBPath)

	db, err := storage.Open(cfg.Storage.DBPath, &storage.Options{Timeout: dbLockTimeout})
	if err != nil {
		if errors.Is(err, storage.ErrLocked) {
			log.Error("cannot open the database: another sockudo process holds it; stop it or set SOCKUDO_DB_PATH",
				"err", err)
		} else {
			log.Error("cannot open the database", "err", err)
		}
		return 1
	}
	// Storage closes last, after the server has drained (house style 2.7).
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the database", "err", err)
		}
	}()

	if err := ensureDefaultApp(db, cfg.DefaultApp(), log); err != nil {
		log.Error("cannot store the default app", "err", err)
		return 1
	}

	// Redis mode: opened before the background loops so that it closes
	// after them.
	cm, err := cfg.openCluster(log)
	if err != nil {
		log.Error("cannot use Redis", "err", err)
		return 1
	}
	defer cm.close()

	// Background loops (limiter sweeps, the audit writer, Redis mode's
	// loops) run until bg ends, after the server has drained and before
	// storage closes.
	bgCtx, stopBg := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer func() { stopBg(); bg.Wait() }()

	lims := cfg.buildLimiters()
	pushCfg := cfg.PushConfig(&lims.memory)
	cfg.shareLimiters(&lims, &pushCfg.Limits, cm.client(), log)
	pushCfg.Limits.AuthFailures = lims.AuthFailures // push's refused signatures count with the sockets'
	for _, m := range lims.memory {
		bg.Add(1)
		go func() { defer bg.Done(); m.Run(bgCtx) }()
	}
	sc := cfg.ServerConfig()
	sc.Limits = lims.Limits
	cfg.clientSettings(&sc, log)
	// The push service needs the server (its apps, its client IPs), and the
	// server hands trigger push objects to it: pf is filled in below,
	// before Serve.
	pf := &pushFallback{}
	srv, err := server.New(sc, db, log, append(cm.serverOptions(), server.WithPushFallback(pf))...)
	if err != nil {
		log.Error("invalid server configuration", "err", err)
		return 1
	}
	cm.register(srv.Registry())
	cm.run(bgCtx, &bg)
	audit := storage.NewAuditWriter(db, cfg.AuditWriterConfig(), func(err error) {
		log.Error("writing the audit log", "err", err)
	})
	bg.Add(1)
	go func() { defer bg.Done(); audit.Run(bgCtx) }()
	srv.SetAuditLog(auditLog{audit})
	srv.HandleSigned("GET /apps/{app_id}/audit", serveAudit(db))

	hooks, err := webhooks.New(cfg.WebhooksConfig(), db, log)
	if err != nil {
		log.Error("invalid webhook configuration", "err", err)
		return 1
	}
	srv.SetEventSink(webhookSink{hooks})
	con, err := startConsole(cfg, srv, hooks, consoleAudit{auditLog{audit}, changeLog{db, log}}, lims.AuthFailures,
		cm.consoleNodes(), bgCtx, &bg, log)
	if err != nil {
		log.Error("invalid console configuration", "err", err)
		return 1
	}
	routeWebhooks(srv, hooks, func(app, action, reason string) {
		// A change, kept apart from the refusals (storage.AppendAudit).
		if err := apps.NewService(db, "").Record(app, action, reason); err != nil {
			log.Error("writing the audit log", "err", err)
		}
	})
	// The daily notification quota is counted in storage, so a restart
	// does not reset it; it is flushed by its loop and once more at exit.
	daily := ratelimit.NewWindow(db, 0, 24*time.Hour, nil)
	daily.OnError = func(err error) { log.Error("push: daily quota counter", "err", err) }
	pushCfg.Limits.Notifications = daily
	bg.Add(1)
	go func() { defer bg.Done(); daily.Run(bgCtx); _ = daily.Close() }()
	// The push audit trail is written by its own loop, which flushes what
	// is queued when bg ends.
	trail := push.NewAuditTrail(db, time.Duration(cfg.Push.AuditRetentionDays)*24*time.Hour, log)
	bg.Add(1)
	go func() { defer bg.Done(); trail.Run(bgCtx) }()
	pushSvc, err := routePush(srv, pushCfg, db, audit, pushEvents{hooks, con}, trail, log)
	if err != nil {
		log.Error("invalid push configuration", "err", err)
		return 1
	}
	pf.svc = pushSvc
	// Deliveries run until bg ends: after the server has drained, before
	// storage closes; sends in flight are finished and recorded.
	bg.Add(1)
	go func() { defer bg.Done(); pushSvc.Run(bgCtx) }()
	srv.Registry().MustRegister(newWebhookCollector(hooks))
	if err := hooks.Start(context.Background()); err != nil {
		log.Error("cannot start webhooks", "err", err)
		return 1
	}
	// After the server has drained (its last channel_vacated events are
	// in) and before storage closes: decide what waits in the grace period,
	// commit the buffer, stop the delivery loops.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
		defer cancel()
		if err := hooks.Close(ctx); err != nil {
			log.Error("stopping webhooks", "err", err)
		}
	}()

	ln, err := listen(cfg, log)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr(), "err", err)
		return 1
	}
	log.Info("listening", "addr", ln.Addr().String())
	metrics, err := startMetrics(cfg, srv, log)
	if err != nil {
		log.Error("cannot serve metrics", "err", err)
		ln.Close()
		return 1
	}
	reload := func() error { return errors.Join(srv.ReloadApps(), hooks.Reload(), pushSvc.AppsChanged()) }
	validate := func(a storage.App) error { return webhooks.Validate(a.Webhooks) }
	adminSrv, err := startAdmin(cfg, db, reload, validate, hooks, pushSvc.AdminHandler(), log)
	if err != nil {
		log.Error("cannot serve the admin socket", "err", err)
		ln.Close()
		metrics.stop(context.Background())
		return 1
	}
	// Stop the side listeners after the server drained, before storage closes.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		adminSrv.stop(sctx)
		metrics.stop(sctx)
	}()

	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	srv.MarkReady()

	select {
	case err := <-served:
		// Serve returned before any signal: the listener failed. Still drain
		// whatever was accepted before exiting.
		log.Error("server stopped unexpectedly", "err", err)
		shutdown(srv, cfg.Listen.ShutdownGracePeriod, log)
		return 1
	case <-sigCtx.Done():
	}
	// A second signal now kills the process the default way, for operators
	// who do not want to wait out the grace period.
	stop()
	log.Info("shutting down", "grace_period", cfg.Listen.ShutdownGracePeriod)
	shutdown(srv, cfg.Listen.ShutdownGracePeriod, log)

	// Shutdown has closed the listener, so Serve returns promptly; anything
	// but ErrServerClosed is a failure worth a non-zero exit. The wait is
	// bounded so a stuck Serve cannot keep the process (and the database
	// lock) alive.
	wait := time.NewTimer(serveReturnTimeout)
	defer wait.Stop()
	select {
	case err := <-served:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server failed", "err", err)
			return 1
		}
	case <-wait.C:
		log.Warn("server did not return from Serve after Shutdown", "waited", serveReturnTimeout)
	}
	log.Info("stopped")
	return 0
}

// serveReturnTimeout bounds the wait for Serve to return after Shutdown.
const serveReturnTimeout = 5 * time.Second

// webhookCloseTimeout bounds the wait for the webhook delivery loops at
// shutdown; the final commit of pending events is not cut short by it.
const webhookCloseTimeout = 5 * time.Second

// shutdown drains srv for at most grace. Running out of time is logged, not
// fatal: the sockets left are cut when the process exits.
func shutdown(srv *server.Server, grace time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown did not finish within the grace period", "grace_period", grace, "err", err)
	}
}

// ensureDefaultApp upserts the app described by the SOCKUDO_DEFAULT_APP_*
// variables. The environment wins over whatever is stored for that id
// (changes made with "sockudo apps update" are overwritten); its CreatedAt is
// kept. It never logs the secret.
func ensureDefaultApp(db *storage.DB, app storage.App, log *slog.Logger) error {
	// A secret rotated with "sockudo apps rotate-secret" and then put in
	// SOCKUDO_DEFAULT_APP_SECRET keeps its previous secret's grace period.
	if stored, err := db.App(app.ID); err == nil {
		if stored.Secret == app.Secret {
			app.PreviousSecret, app.PreviousSecretExpiresAt = stored.PreviousSecret, stored.PreviousSecretExpiresAt
		}
		// The Beams key: without SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY the
		// stored one stays (made with "sockudo apps beams-key"); with it,
		// the variable wins, and a key rotated into it keeps its previous
		// key's grace period.
		if app.BeamsSecretKey == "" || stored.BeamsSecretKey == app.BeamsSecretKey {
			app.BeamsSecretKey = stored.BeamsSecretKey
			app.PreviousBeamsSecretKey = stored.PreviousBeamsSecretKey
			app.PreviousBeamsSecretKeyExpiresAt = stored.PreviousBeamsSecretKeyExpiresAt
		}
	}
	// Unchanged since the last start: nothing is written (storage.EnsureApp).
	if _, err := db.EnsureApp(app); err != nil {
		if errors.Is(err, storage.ErrKeyInUse) {
			return fmt.Errorf("SOCKUDO_DEFAULT_APP_KEY is the key of another stored app: %w", err)
		}
		return err
	}
	if public := publicCredentials(app); len(public) > 0 {
		log.Warn("INSECURE: THE DEFAULT APP USES THE PUBLIC DEFAULT CREDENTIALS. Anyone who has read the "+
			"README can connect to it and publish. Set SOCKUDO_DEFAULT_APP_ID, SOCKUDO_DEFAULT_APP_KEY and "+
			"SOCKUDO_DEFAULT_APP_SECRET.", "app_id", app.ID, "public", strings.Join(public, ","))
	}
	log.Info("default app ready", "app_id", app.ID, "enabled", app.Enabled)
	return nil
}

// publicCredentials names the credentials of app still set to the public
// defaults.
func publicCredentials(app storage.App) []string {
	var public []string
	if app.ID == publicAppID {
		public = append(public, "id")
	}
	if app.Key == publicAppKey {
		public = append(public, "key")
	}
	if app.Secret == publicAppSecret {
		public = append(public, "secret")
	}
	return public
}

// newLogger builds the process logger: slog's text handler for "human", its
// JSON handler for "json", at LOG_LEVEL, writing to w.
func newLogger(c logConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevels[strings.ToLower(c.Level)]}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// indent prefixes every line of s with two spaces.
func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// tuneRuntime favours memory over handshake CPU, the trade an edge server
// wants (shared/notes/gws-tuning.md): GC at 50% heap growth unless GOGC is
// set, but not before the heap reaches gcHeapFloor (gcfloor: a server with
// few sockets otherwise collects its sub-MiB heap hundreds of times a
// minute under API traffic); and no heap profiling (saves its 1.4 MiB table
// and ~0.1 KiB per socket; nothing here serves profiles).
func tuneRuntime(environ map[string]string) {
	if _, set := environ["GOGC"]; !set {
		gcfloor.Start(50, gcHeapFloor)
	}
	runtime.MemProfileRate = debugMemProfileRate
}

// gcHeapFloor is the heap below which the collector waits longer than 50%
// growth: 8 MiB, a fraction of what one of the 20,000 sockets a small host
// holds costs in total (2.3 KiB each), and the point where 50% growth of
// the live heap takes over (about 5.3 MiB live).
const gcHeapFloor = 8 << 20

// debugMemProfileRate is 0 (no heap profiling) except in a perfdebug build
// (debug_perf.go), which measures where the bytes per socket go.
var debugMemProfileRate = 0
