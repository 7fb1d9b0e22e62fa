package apps

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sockudo/sockudo/storage"
)

// Editor reads and changes apps and reads the audit log, with storage's
// sentinel errors. *storage.DB, *Service and the admin socket's client
// implement it, so a command can work on whichever is at hand.
type Editor interface {
	Apps() ([]storage.App, error)
	App(id string) (storage.App, error)
	CreateApp(a storage.App) error
	PutApp(a storage.App) error
	DeleteApp(id string) error
	Audit(f storage.AuditFilter) ([]storage.AuditEntry, error)
}

// Store is what a Service reads and changes: an Editor that can append to
// the audit log. *storage.DB implements it.
type Store interface {
	Editor
	AppendAudit(entries []storage.AuditEntry) error
}

var (
	_ Store  = (*storage.DB)(nil)
	_ Editor = (*Service)(nil)
)

// ErrNotAudited is wrapped by the error of a change that was stored but
// whose audit entry could not be written. The change stands; the caller
// decides whether that fails the command (the CLI) or is only logged (the
// admin socket, whose server is already serving the change).
var ErrNotAudited = errors.New("apps: change stored, audit entry not written")

// Service changes apps and writes one audit entry per change. Reads pass
// through to the store, so a Service stands in for it. It is safe for
// concurrent use if its store is.
type Service struct {
	store Store
	// source is the Reason of app_created, app_updated and app_deleted
	// entries: "cli" when the CLI edits a stopped server's database, ""
	// through the admin socket.
	source string
	now    func() time.Time
}

// NewService returns a Service over store; source is the audit Reason of
// its app changes.
func NewService(store Store, source string) *Service {
	return &Service{store: store, source: source, now: time.Now}
}

// Apps lists every app, sorted by id.
func (s *Service) Apps() ([]storage.App, error) { return s.store.Apps() }

// App returns one app, or an error wrapping storage.ErrNotFound.
func (s *Service) App(id string) (storage.App, error) { return s.store.App(id) }

// Audit returns audit entries, newest first.
func (s *Service) Audit(f storage.AuditFilter) ([]storage.AuditEntry, error) { return s.store.Audit(f) }

// CreateApp stores a new app (storage.DB.CreateApp's errors) and audits it.
func (s *Service) CreateApp(a storage.App) error {
	return s.change(a.ID, "app_created", s.source, s.store.CreateApp(a))
}

// PutApp creates or replaces a and audits it as an update.
func (s *Service) PutApp(a storage.App) error {
	return s.change(a.ID, "app_updated", s.source, s.store.PutApp(a))
}

// DeleteApp deletes an app and audits it.
func (s *Service) DeleteApp(id string) error {
	return s.change(id, "app_deleted", s.source, s.store.DeleteApp(id))
}

// RotateSecret gives an app a new secret (generated when empty), keeping
// the old one valid for grace (storage.App.RotateSecret), audits it and
// returns the stored app.
func (s *Service) RotateSecret(id, secret string, grace time.Duration) (storage.App, error) {
	a, err := s.store.App(id)
	if err != nil {
		return storage.App{}, err
	}
	if secret == "" {
		if secret, err = storage.NewSecret(); err != nil {
			return storage.App{}, err
		}
	}
	a = a.RotateSecret(secret, grace, s.now())
	reason := "grace " + strconv.FormatInt(int64(grace/time.Second), 10) + "s"
	if err := s.change(id, "secret_rotated", reason, s.store.PutApp(a)); err != nil {
		return a, err
	}
	return a, nil
}

// Beams key operations (Service.BeamsKey).
const (
	// BeamsKeyGenerate gives an app without a Beams secret key its first.
	BeamsKeyGenerate = "generate"
	// BeamsKeyRotate replaces an app's Beams secret key, keeping the old
	// one valid for the grace period.
	BeamsKeyRotate = "rotate"
	// BeamsKeyRevoke removes an app's Beams secret keys, current and
	// previous: the app stops answering on the Beams routes.
	BeamsKeyRevoke = "revoke"
)

// BeamsKey generates, rotates or revokes an app's Beams secret key (op is
// one of the BeamsKey* constants), audits it and returns the stored app,
// whose BeamsSecretKey the caller shows once. Generating for an app that
// has a key, or rotating one that has none, is storage.ErrInvalid.
func (s *Service) BeamsKey(id, op string, grace time.Duration) (storage.App, error) {
	a, err := s.store.App(id)
	if err != nil {
		return storage.App{}, err
	}
	key := ""
	switch op {
	case BeamsKeyGenerate, BeamsKeyRotate:
		if op == BeamsKeyGenerate && a.BeamsSecretKey != "" {
			return storage.App{}, fmt.Errorf("%w: app %s already has a Beams secret key: rotate it", storage.ErrInvalid, id)
		}
		if op == BeamsKeyRotate && a.BeamsSecretKey == "" {
			return storage.App{}, fmt.Errorf("%w: app %s has no Beams secret key: generate one", storage.ErrInvalid, id)
		}
		if key, err = storage.NewBeamsKey(); err != nil {
			return storage.App{}, err
		}
	case BeamsKeyRevoke:
		grace = 0
	default:
		return storage.App{}, fmt.Errorf("%w: beams key operation %q (generate, rotate or revoke)", storage.ErrInvalid, op)
	}
	if op == BeamsKeyGenerate {
		grace = 0
	}
	a = a.RotateBeamsKey(key, grace, s.now())
	reason := "grace " + strconv.FormatInt(int64(grace/time.Second), 10) + "s"
	if err := s.change(id, "beams_key_"+op+"d", reason, s.store.PutApp(a)); err != nil {
		return a, err
	}
	return a, nil
}

// Record appends one audit entry about app, now.
func (s *Service) Record(app, action, reason string) error {
	return s.store.AppendAudit([]storage.AuditEntry{{Time: s.now().UTC(), App: app, Action: action, Reason: reason}})
}

// change audits a change that stored with err == nil; a failed change is
// not audited and its error returned as is.
func (s *Service) change(app, action, reason string, err error) error {
	if err != nil {
		return err
	}
	if err := s.Record(app, action, reason); err != nil {
		return fmt.Errorf("%w: %s of %s: %w", ErrNotAudited, action, app, err)
	}
	return nil
}
