package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/storage"
)

// appStore is where the apps and audit commands read and change things:
// the running server's admin socket, or the database file when no server
// runs (bbolt lets one process open it).
type appStore interface {
	Apps() ([]storage.App, error)
	App(id string) (storage.App, error)
	CreateApp(a storage.App) error
	PutApp(a storage.App) error
	DeleteApp(id string) error
	RotateSecret(id, secret string, grace time.Duration) (storage.App, error)
	Audit(f storage.AuditFilter) ([]storage.AuditEntry, error)
	Close() error
}

var _ appStore = (*admin.Client)(nil)

// dbStore edits the database directly when no server runs, through the
// same apps.Service as the admin socket, so every change is audited alike
// (with reason "cli").
type dbStore struct {
	*apps.Service
	db *storage.DB
}

func newDBStore(db *storage.DB) dbStore { return dbStore{apps.NewService(db, "cli"), db} }

func (d dbStore) Close() error { return d.db.Close() }

// adminClient returns a client of the running server's admin socket, or
// nil when no server answers there.
func (c *appsCLI) adminClient() *admin.Client {
	var ac adminConfig
	var sc storageConfig
	if len(parseSection(&ac, c.environ)) > 0 || len(parseSection(&sc, c.environ)) > 0 || !ac.Enabled {
		return nil
	}
	path := Config{Admin: ac, Storage: sc}.adminSocket()
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	cl, err := admin.Dial(path)
	if err != nil {
		return nil // a stale socket of a crashed server
	}
	return cl
}

// openStore reaches the running server through its admin socket when one
// answers, else opens the database (see open).
func (c *appsCLI) openStore(mustExist bool) (appStore, int) {
	if cl := c.adminClient(); cl != nil {
		return cl, 0
	}
	db, code := c.open(mustExist)
	if db == nil {
		return nil, code
	}
	return newDBStore(db), 0
}

// hideSecrets blanks the secrets of an app about to be printed.
func hideSecrets(a *storage.App) {
	a.Secret = hiddenSecret
	if a.PreviousSecret != "" {
		a.PreviousSecret = hiddenSecret
	}
	// Webhook headers often carry tokens for the receiver.
	hooks := make([]storage.Webhook, len(a.Webhooks))
	for i, w := range a.Webhooks {
		hooks[i] = w
		if len(w.Headers) > 0 {
			hooks[i].Headers = make(map[string]string, len(w.Headers))
			for k := range w.Headers {
				hooks[i].Headers[k] = hiddenSecret
			}
		}
	}
	if a.Webhooks != nil {
		a.Webhooks = hooks
	}
}

func (c *appsCLI) rotateSecret(args []string) int {
	fs := c.flagSet("<id> [--grace 24h] [--secret S]", "Give the app a new secret and print the app with it, once. The old secret keeps\n"+
		"working for --grace (REST signatures, channel auth, signin), so clients and\n"+
		"backends can switch without downtime; webhooks are signed with the new one.\n"+
		"Applies at once to a running server.")
	grace := fs.Duration("grace", 24*time.Hour, "how long the old secret stays valid; 0 revokes it now")
	secret := fs.String("secret", "", "the new secret; default: 40 random hex digits")
	_ = fs.Bool("json", true, "print JSON (the only format)")
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	if *grace < 0 {
		return c.usagef("--grace must not be negative")
	}
	if *secret != "" {
		if msg := apps.SecretProblem(*secret); msg != "" {
			return c.usagef("--secret %s", msg)
		}
	}
	st, code := c.openStore(true)
	if st == nil {
		return code
	}
	defer st.Close()
	a, err := st.RotateSecret(pos[0], *secret, *grace)
	if errors.Is(err, storage.ErrNotFound) {
		return c.failf("no app with id %q", pos[0])
	}
	if err != nil {
		return c.failf("%v", err)
	}
	if a.PreviousSecret != "" {
		a.PreviousSecret = hiddenSecret
	}
	if code := c.printJSON(a); code != 0 {
		return code
	}
	fmt.Fprintf(c.stderr, "Rotated the secret of app %s. Save it now: sockudo will not show it again.\n", a.ID)
	c.noteDefaultApp(a.ID)
	return 0
}

const auditUsage = `Usage: sockudo audit list [--since 1h|2026-01-02T15:04:05Z] [--app id] [--action name] [--limit n] [--json]

Print the audit log, newest first: denied channel auth and signins, refused
origins, rate-limit trips, API signature failures, app and secret changes.
Works against a running server (through its admin socket) or a stopped one.
`

// auditCmd runs "sockudo audit <command>".
func auditCmd(args []string, environ map[string]string, c *appsCLI) int {
	if len(args) == 0 || args[0] != "list" {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(c.stdout, auditUsage)
			return 0
		}
		fmt.Fprint(c.stderr, auditUsage)
		return 2
	}
	fs := flag.NewFlagSet("sockudo audit list", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), auditUsage) }
	since := fs.String("since", "", "only entries this recent: a duration (1h) or an RFC 3339 time")
	app := fs.String("app", "", "only this app")
	action := fs.String("action", "", "only this action (auth_denied, rate_limited, secret_rotated, ...)")
	limit := fs.Int("limit", 100, "at most this many entries")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if _, code, done := c.parse(fs, args[1:], 0); done {
		return code
	}
	f := storage.AuditFilter{App: *app, Action: *action, Limit: *limit}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			f.Since = t
		} else {
			return c.usagef("--since must be a duration (1h) or an RFC 3339 time, got %q", *since)
		}
	}
	st, code := c.openStore(true)
	if st == nil {
		return code
	}
	defer st.Close()
	entries, err := st.Audit(f)
	if err != nil {
		return c.failf("%v", err)
	}
	if *asJSON {
		return c.printJSON(entries)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tAPP\tACTION\tIP\tCHANNEL\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), dash(e.App), e.Action, dash(e.IP), dash(e.Channel), dash(e.Reason))
	}
	if err := tw.Flush(); err != nil {
		return c.failf("%v", err)
	}
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
