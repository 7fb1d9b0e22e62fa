package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/push/providers"
	"github.com/sockudo/sockudo/storage"
)

const pushUsage = `Usage: sockudo push credentials <command> [flags]
       sockudo push devices <command> [flags]       (sockudo push devices help)
       sockudo push publishes <command> [flags]     (sockudo push publishes help)
       sockudo push dead-letters list|replay [flags]
       sockudo push limits [--app id]

Commands:
  list [--app id] [--provider p] [--json]
                 list credential versions: metadata only, never key material
  put <apns|fcm|webpush> [--app id] [flags]
                 store a new version and make it current
  generate-vapid [--app id] --subject mailto:ops@example.com
                 make a VAPID key pair; only the public key is printed
  revoke <apns|fcm|webpush> [--app id] [--version n]
                 revoke one version, or every version of the provider
  validate <apns|fcm|webpush> [--app id] [--version n] [--live]
                 open the credential and build its client
  reseal [--app id]
                 seal again with PUSH_CREDENTIAL_ENCRYPTION_KEY what a key in
                 PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS sealed (every app by default)

put takes the same JSON body as the HTTP API (--file, "-" for stdin) or:
  apns     --p8 AuthKey_XXXXXXXXXX.p8 --team-id T --key-id K [--topic bundle.id] [--environment both]
  fcm      --service-account service-account.json
  webpush  --subject mailto:... --private-key-file vapid_private.txt

They go through the running server's admin socket, where a change swaps the
provider clients at once; with no server running they open the database at
SOCKUDO_DB_PATH. Credentials are sealed with PUSH_CREDENTIAL_ENCRYPTION_KEY
(or _FILE), the server's key; without it put and generate-vapid are refused.
The signed HTTP API offers the same: /apps/{app_id}/push/credentials/...
`

// pushCommands are the commands of "sockudo push credentials".
var pushCommands = map[string]func(*command, []string) int{
	"list":           (*command).pushCredentialsList,
	"put":            (*command).pushCredentialsPut,
	"generate-vapid": (*command).pushCredentialsGenerate,
	"revoke":         (*command).pushCredentialsRevoke,
	"validate":       (*command).pushCredentialsValidate,
	"reseal":         (*command).pushCredentialsReseal,
}

// pushCmd runs "sockudo push credentials <command>" and "sockudo push devices <command>".
func pushCmd(args []string, in invocation) int {
	if len(args) == 0 || isHelp(args[0]) {
		out, code := in.stderr, 2
		if len(args) > 0 {
			out, code = in.stdout, 0
		}
		fmt.Fprint(out, pushUsage)
		return code
	}
	switch args[0] {
	case "devices":
		return pushDevicesCmd(args[1:], in)
	case "publishes":
		return pushPublishesCmd(args[1:], in)
	case "dead-letters":
		return pushDeadLettersCmd(args[1:], in)
	case "limits":
		return pushLimitsCmd(args[1:], in)
	}
	if args[0] != "credentials" {
		fmt.Fprintf(in.stderr, "sockudo push: unknown command %q\n\n%s", strings.Join(args, " "), pushUsage)
		return 2
	}
	return runGroup("sockudo push credentials", pushUsage, pushCommands, args[1:], in)
}

// syncAudit writes audit entries as they come, remembering the first
// failure: the CLI reports an unaudited change.
type syncAudit struct {
	db   *storage.DB
	mu   sync.Mutex
	errs []error
}

func (a *syncAudit) Record(e storage.AuditEntry) {
	if err := a.db.AppendAudit([]storage.AuditEntry{e}); err != nil {
		a.mu.Lock()
		a.errs = append(a.errs, err)
		a.mu.Unlock()
	}
}

// Trail appends e to the push audit trail at once (push.Deps.Trail; the
// server batches through push.AuditTrail instead).
func (a *syncAudit) Trail(e storage.PushAuditEntry) {
	if _, err := a.db.AppendPushAudit([]storage.PushAuditEntry{e}); err != nil {
		a.mu.Lock()
		a.errs = append(a.errs, err)
		a.mu.Unlock()
	}
}

// credentialStore is where the credential commands work: the running
// server's admin socket (changes swap its clients at once), or the
// database when no server runs. *push.Credentials implements it.
type credentialStore interface {
	List(app string, p push.CredentialProvider) ([]push.ProviderCredentials, error)
	Put(app string, p push.CredentialProvider, body []byte, by push.CredentialActor) (push.CredentialVersion, error)
	GenerateVAPID(app, subject string, by push.CredentialActor) (push.CredentialVersion, error)
	Revoke(app string, p push.CredentialProvider, v uint64, by push.CredentialActor) (push.RevokeResult, error)
	Validate(ctx context.Context, app string, p push.CredentialProvider, v uint64, live bool, by push.CredentialActor) (push.ValidationResult, error)
}

var (
	_ credentialStore = (*push.Credentials)(nil)
	_ credentialStore = remoteCredentials{}
)

// withCredentials runs fn on the credentials of app: through the running
// server's admin socket when one answers, else on the database (the app
// must exist; the audit entries say "cli").
func (c *command) withCredentials(app string, fn func(m credentialStore) int) int {
	if app == "" {
		return c.usagef("--app is required (or set SOCKUDO_DEFAULT_APP_ID)")
	}
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		return fn(remoteCredentials{cl})
	}
	return c.localCredentials(app, true, func(m *push.Credentials) int { return fn(m) })
}

// localCredentials runs fn on the credentials in the database, with no
// server running: it needs the encryption key, checks that app exists
// (unless app is ""), builds provider clients if build, and fails when
// fn's changes could not be audited (as "cli").
func (c *command) localCredentials(app string, build bool, fn func(m *push.Credentials) int) int {
	if err := c.settings.Push.CredentialKeyErr; err != nil {
		return c.failf("%v", err)
	}
	db, code := c.open(true)
	if db == nil {
		return code
	}
	defer db.Close()
	if app != "" {
		if _, err := db.App(app); err != nil {
			return c.failApp(app, err)
		}
	}
	cfg := c.settings.Push.config()
	var builder push.ClientBuilder
	if build {
		builder = providers.Builder(cfg)
	}
	audit := &syncAudit{db: db}
	m, err := push.NewCredentials(db, cfg, builder, audit, nil)
	if err != nil {
		return c.failf("%v", err)
	}
	// Offline changes enter the push audit trail as the server's do.
	m.SetTrail(audit.Trail)
	if code := fn(m); code != 0 {
		return code
	}
	if err := errors.Join(audit.errs...); err != nil {
		return c.failf("the change is stored but its audit entry was not written: %v", err)
	}
	return 0
}

// remoteCredentials calls the credential API of the running server over
// its admin socket (push.Service.AdminHandler): the signed API's paths
// and bodies. The server audits the changes as "admin".
type remoteCredentials struct{ cl *admin.Client }

func (r remoteCredentials) call(method, path string, body []byte, out any) error {
	return callPush(r.cl, method, path, body, out)
}

func credentialsPath(app string, p push.CredentialProvider, rest ...string) string {
	s := "/apps/" + url.PathEscape(app) + "/push/credentials"
	if p != "" {
		s += "/" + string(p)
	}
	for _, r := range rest {
		s += "/" + r
	}
	return s
}

func (r remoteCredentials) List(app string, p push.CredentialProvider) ([]push.ProviderCredentials, error) {
	if p != "" {
		var one push.ProviderCredentials
		err := r.call("GET", credentialsPath(app, p), nil, &one)
		return []push.ProviderCredentials{one}, err
	}
	var all struct {
		Credentials []push.ProviderCredentials `json:"credentials"`
	}
	err := r.call("GET", credentialsPath(app, ""), nil, &all)
	return all.Credentials, err
}

func (r remoteCredentials) Put(app string, p push.CredentialProvider, body []byte, _ push.CredentialActor) (push.CredentialVersion, error) {
	var v push.CredentialVersion
	return v, r.call("PUT", credentialsPath(app, p), body, &v)
}

func (r remoteCredentials) GenerateVAPID(app, subject string, _ push.CredentialActor) (push.CredentialVersion, error) {
	body, _ := json.Marshal(map[string]string{"subject": subject})
	var v push.CredentialVersion
	return v, r.call("POST", credentialsPath(app, push.ProviderWebPush, "generate"), body, &v)
}

func (r remoteCredentials) Revoke(app string, p push.CredentialProvider, v uint64, _ push.CredentialActor) (push.RevokeResult, error) {
	path := credentialsPath(app, p)
	if v != 0 {
		path += "/versions/" + strconv.FormatUint(v, 10)
	}
	var res push.RevokeResult
	return res, r.call("DELETE", path, nil, &res)
}

func (r remoteCredentials) Validate(_ context.Context, app string, p push.CredentialProvider, v uint64, live bool, _ push.CredentialActor) (push.ValidationResult, error) {
	body, _ := json.Marshal(map[string]any{"version": v, "live": live})
	var res push.ValidationResult
	return res, r.call("POST", credentialsPath(app, p, "validate"), body, &res)
}

// credentialFail reports a credential operation's error.
func (c *command) credentialFail(err error) int {
	var ce *push.CredentialError
	switch {
	case errors.As(err, &ce) && ce.Status == http.StatusNotFound:
		return c.notFoundf("%s", ce.Description)
	case errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 && ce.Status != http.StatusConflict &&
		ce.Status != http.StatusTooManyRequests && ce.Status != http.StatusServiceUnavailable:
		// The body or the flags named something invalid.
		return c.invalidf("%s", ce.Description)
	case errors.As(err, &ce):
		return c.failf("%s", ce.Description)
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, push.ErrNoCredential):
		return c.notFoundf("no such credential version")
	}
	return c.fail(err)
}

// parseProvider parses the command's flags (fs) and its one positional
// argument, a provider. ok is false when the command is done (help, or a
// usage error) with exit code code.
func (c *command) parseProvider(fs *flag.FlagSet, args []string) (p push.CredentialProvider, code int, ok bool) {
	c.argName = "provider (apns, fcm or webpush)"
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return "", code, false
	}
	if p, ok = push.ParseCredentialProvider(pos[0]); !ok {
		return "", c.usagef("unknown provider %q: use apns, fcm or webpush", pos[0]), false
	}
	return p, 0, true
}

func (c *command) pushCredentialsList(args []string) int {
	fs := c.flagSet("[--app id] [--provider p] [--json]", "List an app's push credential versions: metadata only.")
	app := fs.String("app", c.settings.DefaultAppID, "the app")
	prov := fs.String("provider", "", "only apns, fcm or webpush")
	asJSON := fs.Bool("json", false, "print JSON (the API's shape)")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	var p push.CredentialProvider
	if *prov != "" {
		var ok bool
		if p, ok = push.ParseCredentialProvider(*prov); !ok {
			return c.usagef("unknown provider %q: use apns, fcm or webpush", *prov)
		}
	}
	return c.withCredentials(*app, func(m credentialStore) int {
		list, err := m.List(*app, p)
		if err != nil {
			return c.credentialFail(err)
		}
		if *asJSON {
			return c.printJSON(list)
		}
		return c.printTable("PROVIDER\tVERSION\tSTATUS\tFINGERPRINT\tCREATED\tLAST USED\tLAST ERROR\tDETAILS", func(w io.Writer) {
			for _, pc := range list {
				for _, v := range pc.Versions {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Provider, v.Version, v.Status, v.Fingerprint,
						v.CreatedAt.Format(time.RFC3339), timeOrDash(v.LastUsedAt), orDash(v.LastError), details(v))
				}
			}
		})
	})
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// details is a version's public description for the table.
func details(v push.CredentialVersion) string {
	switch v.Provider {
	case push.ProviderAPNs:
		return fmt.Sprintf("team %s key %s topic %s env %s", v.TeamID, v.KeyID, orDash(v.Topic), v.Environment)
	case push.ProviderFCM:
		return fmt.Sprintf("project %s %s", v.ProjectID, v.ClientEmail)
	}
	return fmt.Sprintf("%s %s %s", v.VAPIDKeyID, v.Subject, v.VAPIDPublicKey)
}

func (c *command) pushCredentialsPut(args []string) int {
	fs := c.flagSet("<apns|fcm|webpush> [--app id] [--file body.json | provider flags]",
		"Store a new credential version and make it current. The key material is\n"+
			"sealed with PUSH_CREDENTIAL_ENCRYPTION_KEY and never printed.")
	app := fs.String("app", c.settings.DefaultAppID, "the app")
	file := fs.String("file", "", `the API's JSON body ("-": stdin)`)
	p8 := fs.String("p8", "", "apns: the AuthKey_<key id>.p8 file")
	teamID := fs.String("team-id", "", "apns: the Apple Team ID")
	keyID := fs.String("key-id", "", "apns: the key's Key ID")
	topic := fs.String("topic", "", "apns: the default topic (bundle id)")
	env := fs.String("environment", "", "apns: production, sandbox or both (default both)")
	sa := fs.String("service-account", "", "fcm: the service-account JSON file")
	subject := fs.String("subject", "", "webpush: mailto: or https: contact")
	privFile := fs.String("private-key-file", "", "webpush: file holding the VAPID private key (base64url)")
	asJSON := jsonFlag(fs, "print the stored version's metadata as JSON")
	p, code, ok := c.parseProvider(fs, args)
	if !ok {
		return code
	}
	body, err := c.credentialBody(p, *file, map[string]string{"p8": *p8, "team_id": *teamID, "key_id": *keyID,
		"topic": *topic, "environment": *env, "service_account": *sa, "subject": *subject, "private_key": *privFile})
	if err != nil {
		return c.usagef("%v", err)
	}
	return c.withCredentials(*app, func(m credentialStore) int {
		v, err := m.Put(*app, p, body, push.CredentialActor{Source: "cli"})
		if err != nil {
			return c.credentialFail(err)
		}
		if *asJSON {
			return c.printJSON(v)
		}
		fmt.Fprintf(c.stdout, "Stored %s credential version %d of app %s (%s); it is current.\n", p, v.Version, *app, v.Fingerprint)
		return 0
	})
}

// credentialBody builds the API body from --file or the provider's flags
// (files are read; their content never printed).
func (c *command) credentialBody(p push.CredentialProvider, file string, f map[string]string) ([]byte, error) {
	if file != "" {
		if file == "-" {
			return io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		}
		return os.ReadFile(file)
	}
	read := func(flag, path string) (string, error) {
		if path == "" {
			return "", fmt.Errorf("--%s is required (or give the JSON body with --file)", flag)
		}
		b, err := os.ReadFile(path)
		return string(b), err
	}
	var v any
	switch p {
	case push.ProviderAPNs:
		key, err := read("p8", f["p8"])
		if err != nil {
			return nil, err
		}
		v = map[string]string{"team_id": f["team_id"], "key_id": f["key_id"], "topic": f["topic"],
			"environment": f["environment"], "p8": key}
	case push.ProviderFCM:
		sa, err := read("service-account", f["service_account"])
		if err != nil {
			return nil, err
		}
		v = map[string]json.RawMessage{"service_account": json.RawMessage(sa)}
	case push.ProviderWebPush:
		key, err := read("private-key-file", f["private_key"])
		if err != nil {
			return nil, err
		}
		v = map[string]string{"subject": f["subject"], "private_key": strings.TrimSpace(key)}
	}
	b, err := json.Marshal(v)
	if err != nil {
		// A service-account file that is not JSON: say so without it.
		return nil, fmt.Errorf("the %s file is not valid JSON", p)
	}
	return b, nil
}

func (c *command) pushCredentialsGenerate(args []string) int {
	fs := c.flagSet("[--app id] --subject mailto:ops@example.com",
		"Make a VAPID key pair on this machine and store it as the app's new Web Push\n"+
			"credential. Only the public key is printed; browsers subscribe with it.")
	app := fs.String("app", c.settings.DefaultAppID, "the app")
	subject := fs.String("subject", "", "the VAPID subject: mailto: or https: contact")
	asJSON := jsonFlag(fs, "print the new version's metadata (with the public key) as JSON")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	return c.withCredentials(*app, func(m credentialStore) int {
		v, err := m.GenerateVAPID(*app, *subject, push.CredentialActor{Source: "cli"})
		if err != nil {
			return c.credentialFail(err)
		}
		if *asJSON {
			return c.printJSON(v)
		}
		fmt.Fprintf(c.stdout, "Generated Web Push key %s of app %s.\nvapid_public_key: %s\n", v.VAPIDKeyID, *app, v.VAPIDPublicKey)
		return 0
	})
}

func (c *command) pushCredentialsRevoke(args []string) int {
	fs := c.flagSet("<apns|fcm|webpush> [--app id] [--version n]",
		"Revoke one version of the provider's credential, or all of them. Needs no\nencryption key.")
	app := fs.String("app", c.settings.DefaultAppID, "the app")
	version := fs.Uint64("version", 0, "the version (0: every version)")
	asJSON := jsonFlag(fs, `print {"revoked": [...], "current_version": n} as JSON`)
	p, code, ok := c.parseProvider(fs, args)
	if !ok {
		return code
	}
	return c.withCredentials(*app, func(m credentialStore) int {
		res, err := m.Revoke(*app, p, *version, push.CredentialActor{Source: "cli"})
		if err != nil {
			return c.credentialFail(err)
		}
		if *asJSON {
			return c.printJSON(res)
		}
		if len(res.Revoked) == 0 {
			fmt.Fprintln(c.stdout, "Nothing to revoke: already revoked.")
		} else {
			fmt.Fprintf(c.stdout, "Revoked %s version(s) %v of app %s.\n", p, res.Revoked, *app)
		}
		if res.CurrentVersion == 0 {
			fmt.Fprintf(c.stdout, "No %s credential is active now.\n", p)
		} else {
			fmt.Fprintf(c.stdout, "Current %s version: %d.\n", p, res.CurrentVersion)
		}
		return 0
	})
}

func (c *command) pushCredentialsValidate(args []string) int {
	fs := c.flagSet("<apns|fcm|webpush> [--app id] [--version n] [--live]",
		"Open a credential version and build its client (APNs: sign a provider token).\n"+
			"With --live, FCM also fetches an access token from Google.")
	app := fs.String("app", c.settings.DefaultAppID, "the app")
	version := fs.Uint64("version", 0, "the version (0: the current one)")
	live := fs.Bool("live", false, "fcm: fetch an access token")
	asJSON := jsonFlag(fs, "print the result as JSON (exit 1 still when it does not work)")
	p, code, ok := c.parseProvider(fs, args)
	if !ok {
		return code
	}
	return c.withCredentials(*app, func(m credentialStore) int {
		res, err := m.Validate(context.Background(), *app, p, *version, *live, push.CredentialActor{Source: "cli"})
		if err != nil {
			return c.credentialFail(err)
		}
		if *asJSON {
			if code := c.printJSON(res); code != 0 || res.OK {
				return code
			}
		}
		if !res.OK {
			return c.failf("%s version %d does not work: %s", p, res.Version, res.Error)
		}
		if !*asJSON {
			fmt.Fprintf(c.stdout, "%s version %d works.\n", p, res.Version)
		}
		return 0
	})
}

func (c *command) pushCredentialsReseal(args []string) int {
	fs := c.flagSet("[--app id]", "After a change of PUSH_CREDENTIAL_ENCRYPTION_KEY (the old key in\n"+
		"PUSH_CREDENTIAL_ENCRYPTION_KEY_PREVIOUS), seal every credential again with the new key;\n"+
		"then the previous key can be removed.")
	app := fs.String("app", "", "only this app (default: every app)")
	asJSON := jsonFlag(fs, "print the result as JSON")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	var res push.ResealResult
	if cl := c.adminClient(); cl != nil {
		defer cl.Close()
		ids := []string{*app}
		if *app == "" {
			all, err := cl.Apps()
			if err != nil {
				return c.failf("%v", err)
			}
			ids = ids[:0]
			for _, a := range all {
				ids = append(ids, a.ID)
			}
		}
		res.Resealed = map[string]int{}
		for _, id := range ids {
			var one push.ResealResult
			if err := (remoteCredentials{cl}).call("POST", credentialsPath(id, "", "reseal"), nil, &one); err != nil {
				return c.credentialFail(err)
			}
			for a, n := range one.Resealed {
				res.Resealed[a] += n
			}
			res.Unreadable = append(res.Unreadable, one.Unreadable...)
		}
	} else {
		code := c.localCredentials(*app, false, func(m *push.Credentials) int {
			var err error
			if res, err = m.Reseal(*app, push.CredentialActor{Source: "cli"}); err != nil {
				return c.credentialFail(err)
			}
			return 0
		})
		if code != 0 {
			return code
		}
	}
	n := 0
	for _, k := range res.Resealed {
		n += k
	}
	if *asJSON {
		if code := c.printJSON(res); code != 0 {
			return code
		}
	} else {
		fmt.Fprintf(c.stdout, "Resealed %d credential versions with the current key.\n", n)
	}
	if len(res.Unreadable) > 0 {
		return c.failf("%d versions open with no configured key (left as they are): %s",
			len(res.Unreadable), strings.Join(res.Unreadable, ", "))
	}
	return 0
}
