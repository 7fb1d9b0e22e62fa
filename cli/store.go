package cli

import (
	"errors"
	"os"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/storage"
)

// appStore is where the apps and audit commands read and change things:
// the running server's admin socket, or the database file when no server
// runs (bbolt lets one process open it).
type appStore interface {
	apps.Editor
	RotateSecret(id, secret string, grace time.Duration) (storage.App, error)
	BeamsKey(id, op string, grace time.Duration) (storage.App, error)
	VerifyPushAudit(app string) ([]storage.PushAuditReport, error)
	Close() error
}

var (
	_ appStore = (*admin.Client)(nil)
	_ appStore = dbStore{}
)

// dbStore edits the database directly when no server runs, through the
// same apps.Service as the admin socket, so every change is audited alike
// (with reason "cli").
type dbStore struct {
	*apps.Service
	db *storage.DB
}

func newDBStore(db *storage.DB) dbStore { return dbStore{apps.NewService(db, "cli"), db} }

func (d dbStore) Close() error { return d.db.Close() }

// VerifyPushAudit verifies the push audit trail in the file.
func (d dbStore) VerifyPushAudit(app string) ([]storage.PushAuditReport, error) {
	return d.db.VerifyPushAudit(app)
}

// adminClient returns a client of the running server's admin socket, or
// nil when no server answers there.
func (c *command) adminClient() *admin.Client {
	path := c.settings.AdminSocket
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	cl, err := admin.Dial(path)
	if err != nil {
		return nil // a stale socket of a crashed server
	}
	return cl
}

// open opens the database for an apps command. mustExist refuses to create
// a new file, so a mistyped SOCKUDO_DB_PATH is reported rather than silently
// giving an empty database.
func (c *command) open(mustExist bool) (*storage.DB, int) {
	path := c.settings.DBPath
	if err := c.settings.DBPathErr; err != nil {
		return nil, c.failf("%v", err)
	}
	if mustExist {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, c.failf("no database at %s (set SOCKUDO_DB_PATH, or create an app first)", path)
		}
	}
	db, err := storage.Open(path, &storage.Options{Timeout: c.lockTimeout})
	if errors.Is(err, storage.ErrLocked) {
		return nil, c.failf("database %s is in use: a server is running and its admin socket does not answer "+
			"(SOCKUDO_ADMIN_SOCKET_ENABLED=false, or another SOCKUDO_ADMIN_SOCKET); stop the server, or use "+
			"the signed HTTP API (audit, webhooks/dead_letters)", path)
	}
	if err != nil {
		return nil, c.failf("%v", err)
	}
	return db, 0
}

// withDB runs fn on the database (see open) and closes it after.
func (c *command) withDB(fn func(db *storage.DB) int) int {
	db, code := c.open(true)
	if db == nil {
		return code
	}
	defer db.Close()
	return fn(db)
}

// withStore runs fn on the store (see openStore) and closes it after.
func (c *command) withStore(mustExist bool, fn func(st appStore) int) int {
	st, code := c.openStore(mustExist)
	if st == nil {
		return code
	}
	defer st.Close()
	return fn(st)
}

// openStore reaches the running server through its admin socket when one
// answers, else opens the database (see open).
func (c *command) openStore(mustExist bool) (appStore, int) {
	if cl := c.adminClient(); cl != nil {
		return cl, 0
	}
	db, code := c.open(mustExist)
	if db == nil {
		return nil, code
	}
	return newDBStore(db), 0
}
