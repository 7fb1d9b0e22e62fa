package main

import (
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
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/tlscert"
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
	log.Info("admin socket listening", "path", c.adminSocket())
	as := admin.NewServer(db, reload, log)
	as.Validate = validate
	as.DeadLetters = dead
	as.Push = push
	return startBackground("admin", ln, as.Handler(), log), nil
}

// auditLog adapts storage's buffered audit writer to the server's AuditLog.
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
