package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/sockudo/sockudo/storage"
)

// AppStore is where the server loads app configuration from. *storage.DB
// satisfies it.
type AppStore interface {
	// Apps returns every configured app.
	Apps() ([]storage.App, error)
	// Ping reports whether the store is usable (readiness).
	Ping() error
}

// Server is the realtime server: WebSocket endpoint and HTTP API on one port.
type Server struct {
	cfg   Config
	store AppStore
	log   *slog.Logger
}

// New validates cfg, loads the apps from store and returns a server that has
// started nothing yet.
func New(cfg Config, store AppStore, log *slog.Logger) (*Server, error) {
	return &Server{cfg: cfg, store: store, log: log}, nil
}

// Handler returns the HTTP handler serving /app/{key}, /apps/... and /up, /live.
func (s *Server) Handler() http.Handler { return http.NotFoundHandler() }

// Serve accepts connections on ln until Shutdown. It returns
// http.ErrServerClosed after a Shutdown.
func (s *Server) Serve(ln net.Listener) error { return errors.New("not implemented") }

// ReloadApps re-reads the apps from the store into the in-memory registry.
func (s *Server) ReloadApps() error { return nil }

// Shutdown drains the server: readiness goes false, listeners close, every
// socket is closed with 4200, and it returns when all are gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return nil }
