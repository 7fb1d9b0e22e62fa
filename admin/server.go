package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/storage"
)

// Server serves the admin API.
type Server struct {
	// Validate, if set, vets an app before it is stored (for example its
	// webhook targets); its error is reported as invalid input.
	Validate func(storage.App) error
	// PushDevices, if set, serves the push devices (the database).
	PushDevices PushDeviceService
	// PushAudit, if set, verifies the push audit trail; NewServer sets it
	// to the store when the store can (*storage.DB), so the CLI's
	// "audit verify" works against a running server without more wiring.
	PushAudit PushAuditVerifier
	// DeadLetters, if set, serves the webhook dead letters (the running
	// dispatcher, which must know about replayed entries).
	DeadLetters DeadLetterService
	// WebhookQueues, if set, serves GET /webhooks/queues: the running
	// dispatcher's targets and their queues.
	WebhookQueues WebhookQueueService
	// Push, if set, serves /apps/{id}/push/...: the running push
	// subsystem's credential operations (push.Service.AdminHandler), so
	// that a change swaps provider clients at once.
	Push http.Handler

	apps   *apps.Service
	reload func() error // applies app changes to the running server
	log    *slog.Logger
}

// DeadLetterService lists and replays webhook dead letters;
// *webhooks.Dispatcher implements it.
type DeadLetterService interface {
	DeadLetters(app string, limit int) ([]storage.DeadLetter, error)
	Replay(app string, ids []uint64) (replayed, skipped int, err error)
}

// NewServer returns the admin API over store; reload is called after every
// app change (server.ReloadApps).
func NewServer(store apps.Store, reload func() error, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{apps: apps.NewService(store, ""), reload: reload, log: log}
	if v, ok := store.(PushAuditVerifier); ok {
		s.PushAudit = v
	}
	return s
}

// Handler returns the admin API routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, map[string]bool{"ok": true}) })
	mux.HandleFunc("GET /apps", s.listApps)
	mux.HandleFunc("GET /apps/{id}", s.getApp)
	mux.HandleFunc("POST /apps", s.createApp)
	mux.HandleFunc("PUT /apps/{id}", s.putApp)
	mux.HandleFunc("DELETE /apps/{id}", s.deleteApp)
	mux.HandleFunc("POST /apps/{id}/rotate-secret", s.rotateSecret)
	mux.HandleFunc("POST /apps/{id}/beams-key", s.beamsKey)
	mux.HandleFunc("GET /push/devices", s.listPushDevices)
	mux.HandleFunc("GET /push/devices/{app}/{id}", s.getPushDevice)
	mux.HandleFunc("DELETE /push/devices/{app}/{id}", s.deletePushDevice)
	mux.HandleFunc("GET /audit", s.listAudit)
	mux.HandleFunc("GET /push/audit/verify", s.verifyPushAudit)
	mux.HandleFunc("GET /webhooks/dead-letters", s.listDeadLetters)
	mux.HandleFunc("POST /webhooks/dead-letters/replay", s.replayDeadLetters)
	mux.HandleFunc("GET /webhooks/queues", s.listWebhookQueues)
	if s.Push != nil {
		mux.Handle("/apps/{id}/push/", s.Push)
	}
	return mux
}

// Secrets leave the admin API only in the answers of create and
// rotate-secret, the two moments the CLI prints them; every other answer
// carries an app without Secret and PreviousSecret (withoutSecrets), so a
// listing in a terminal, a log or a support ticket shows none. PUT keeps
// the stored secrets when its body has none, so an app read, changed and
// written back keeps them.

// The Beams secret keys follow the same rule (shown only by beams-key),
// and a PUT never changes them: they change through beams-key only.

// withoutSecrets blanks the secrets and Beams keys of a; the expiry times
// stay.
func withoutSecrets(a storage.App) storage.App {
	a.Secret, a.PreviousSecret = "", ""
	a.BeamsSecretKey, a.PreviousBeamsSecretKey = "", ""
	return a
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	list, err := s.apps.Apps()
	if err != nil {
		writeErr(w, err)
		return
	}
	for i := range list {
		list[i] = withoutSecrets(list[i])
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	a, err := s.apps.App(r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, withoutSecrets(a))
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) {
	s.storeApp(w, r, "", s.apps.CreateApp)
}

func (s *Server) putApp(w http.ResponseWriter, r *http.Request) {
	s.storeApp(w, r, r.PathValue("id"), s.apps.PutApp)
}

// storeApp reads an app from the body, vets it (and its id against the
// path's, when pathID is set), stores it with store and answers with the
// stored app: with its secrets after a create, without after a PUT. A PUT
// without a secret keeps the stored app's secrets.
func (s *Server) storeApp(w http.ResponseWriter, r *http.Request, pathID string, store func(storage.App) error) {
	var a storage.App
	if !readJSON(w, r, &a) {
		return
	}
	if pathID != "" && a.ID != pathID {
		writeErr(w, fmt.Errorf("%w: id in the body differs from the path", storage.ErrInvalid))
		return
	}
	if pathID != "" {
		old, err := s.apps.App(a.ID)
		if err == nil && a.Secret == "" {
			a.Secret, a.PreviousSecret, a.PreviousSecretExpiresAt = old.Secret, old.PreviousSecret, old.PreviousSecretExpiresAt
		}
		// Old is the zero App for a new id: a PUT creates no Beams key.
		a.BeamsSecretKey, a.PreviousBeamsSecretKey = old.BeamsSecretKey, old.PreviousBeamsSecretKey
		a.PreviousBeamsSecretKeyExpiresAt = old.PreviousBeamsSecretKeyExpiresAt
	}
	if !s.valid(w, a) || !s.applied(w, store(a)) {
		return
	}
	stored, err := s.apps.App(a.ID)
	if err != nil {
		writeErr(w, err)
		return
	}
	if pathID != "" {
		stored = withoutSecrets(stored)
	}
	writeJSON(w, http.StatusOK, stored)
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	if s.applied(w, s.apps.DeleteApp(r.PathValue("id"))) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

// RotateRequest is the body of POST /apps/{id}/rotate-secret.
type RotateRequest struct {
	// Secret is the new secret; empty means generate one.
	Secret string `json:"secret,omitempty"`
	// GraceSeconds keeps the old secret valid this long; 0 revokes it now.
	GraceSeconds int64 `json:"grace_seconds"`
}

func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	var req RotateRequest
	if !readJSON(w, r, &req) {
		return
	}
	a, err := s.apps.RotateSecret(r.PathValue("id"), req.Secret, time.Duration(req.GraceSeconds)*time.Second)
	if s.applied(w, err) {
		writeJSON(w, http.StatusOK, a)
	}
}

// BeamsKeyRequest is the body of POST /apps/{id}/beams-key.
type BeamsKeyRequest struct {
	// Op is generate, rotate or revoke (apps.BeamsKey*).
	Op string `json:"op"`
	// GraceSeconds keeps the old key valid this long after a rotation; 0
	// revokes it now.
	GraceSeconds int64 `json:"grace_seconds"`
}

// beamsKey answers with the app's Beams keys and without its secrets: the
// one moment a Beams key leaves the server.
func (s *Server) beamsKey(w http.ResponseWriter, r *http.Request) {
	var req BeamsKeyRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.GraceSeconds < 0 {
		writeErr(w, fmt.Errorf("%w: grace_seconds must not be negative", storage.ErrInvalid))
		return
	}
	a, err := s.apps.BeamsKey(r.PathValue("id"), req.Op, time.Duration(req.GraceSeconds)*time.Second)
	if s.applied(w, err) {
		a.Secret, a.PreviousSecret = "", ""
		writeJSON(w, http.StatusOK, a)
	}
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := AuditQuery(q, q.Get("app"))
	if err != nil {
		writeErr(w, err)
		return
	}
	entries, err := s.apps.Audit(f)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.DeadLetters == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "webhooks are not running"})
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeErr(w, fmt.Errorf("%w: limit must be a non-negative integer", storage.ErrInvalid))
			return
		}
		limit = n
	}
	dead, err := s.DeadLetters.DeadLetters(r.URL.Query().Get("app"), limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, dead)
}

// ReplayRequest is the body of POST /webhooks/dead-letters/replay: the
// dead letters of App ("" = every app), only IDs when given.
type ReplayRequest struct {
	App string   `json:"app,omitempty"`
	IDs []uint64 `json:"ids,omitempty"`
}

// ReplayResult says how many dead letters went back into the queue and how
// many stayed because their target is gone.
type ReplayResult struct {
	Replayed int `json:"replayed"`
	Skipped  int `json:"skipped"`
}

func (s *Server) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.DeadLetters == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "webhooks are not running"})
		return
	}
	var req ReplayRequest
	if !readJSON(w, r, &req) {
		return
	}
	replayed, skipped, err := s.DeadLetters.Replay(req.App, req.IDs)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.record(req.App, "dead_letters_replayed", strconv.Itoa(replayed)+" replayed")
	writeJSON(w, http.StatusOK, ReplayResult{replayed, skipped})
}

// AuditQuery reads an audit filter from a query string: since (RFC 3339),
// action and limit (1-10000); app is the app to filter on ("" = all). Its
// errors wrap storage.ErrInvalid.
func AuditQuery(q url.Values, app string) (storage.AuditFilter, error) {
	f := storage.AuditFilter{App: app, Action: q.Get("action")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, fmt.Errorf("%w: since must be an RFC 3339 time", storage.ErrInvalid)
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return f, fmt.Errorf("%w: limit must be 1-10000", storage.ErrInvalid)
		}
		f.Limit = n
	}
	return f, nil
}

// valid runs Validate and answers 400 when it fails.
func (s *Server) valid(w http.ResponseWriter, a storage.App) bool {
	if s.Validate == nil {
		return true
	}
	if err := s.Validate(a); err != nil {
		writeErr(w, fmt.Errorf("%w: %v", storage.ErrInvalid, err))
		return false
	}
	return true
}

// applied finishes an app change that ended with err: a failed change is
// answered with its error (false); a stored one is applied to the running
// server (true), even if its audit entry could not be written, which is
// only logged: the change stands either way.
func (s *Server) applied(w http.ResponseWriter, err error) bool {
	if err != nil && !errors.Is(err, apps.ErrNotAudited) {
		writeErr(w, err)
		return false
	}
	if err != nil {
		s.log.Error("admin: audit write failed", "err", err)
	}
	s.applyReload()
	return true
}

func (s *Server) record(app, action, reason string) {
	if err := s.apps.Record(app, action, reason); err != nil {
		s.log.Error("admin: audit write failed", "err", err)
	}
}

func (s *Server) applyReload() {
	if s.reload == nil {
		return
	}
	if err := s.reload(); err != nil {
		s.log.Error("admin: reloading apps failed", "err", err)
	}
}

// maxBody bounds an admin request body.
const maxBody = 1 << 20

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeErr(w, fmt.Errorf("%w: bad request body: %v", storage.ErrInvalid, err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorBody carries an error and its kind, so the client can map it back to
// the storage sentinel.
type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

var kinds = []struct {
	kind   string
	err    error
	status int
}{
	{"not_found", storage.ErrNotFound, http.StatusNotFound},
	{"exists", storage.ErrExists, http.StatusConflict},
	{"key_in_use", storage.ErrKeyInUse, http.StatusConflict},
	{"invalid", storage.ErrInvalid, http.StatusBadRequest},
}

func writeErr(w http.ResponseWriter, err error) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			writeJSON(w, k.status, errorBody{err.Error(), k.kind})
			return
		}
	}
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
}
