package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/storage"
)

const appsUsage = `Usage: sockudo apps <command> [arguments]

Commands:
  list [--json]              list apps; secrets are never shown
  show <id>                  print an app as JSON, secret hidden
  create [flags]             create an app and print its secret once
  update <id> [flags]        change only the settings given as flags
  delete <id>                delete an app
  rotate-secret <id>         new secret; the old one stays valid for --grace
  beams-key <op> <id>        Beams secret key: generate, rotate (--grace) or revoke

Run 'sockudo apps <command> -h' for the flags of a command.
`

// hiddenSecret replaces the secret wherever an app is printed after creation.
const hiddenSecret = "(hidden)"

// appsCommands are the commands of "sockudo apps".
var appsCommands = map[string]func(*command, []string) int{
	"list":          (*command).list,
	"show":          (*command).show,
	"create":        (*command).create,
	"update":        (*command).update,
	"delete":        (*command).delete,
	"rotate-secret": (*command).rotateSecret,
	"beams-key":     (*command).beamsKey,
}

func (c *command) list(args []string) int {
	fs := c.flagSet("[--json]", "List every app, sorted by id. Secrets are never shown.")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	return c.withStore(true, func(st appStore) int {
		list, err := st.Apps()
		if err != nil {
			return c.failf("%v", err)
		}
		if *asJSON {
			for i := range list {
				hideSecrets(&list[i])
			}
			return c.printJSON(list)
		}
		return c.printTable("ID\tKEY\tENABLED\tFEATURES", func(w io.Writer) {
			for _, a := range list {
				fmt.Fprintf(w, "%s\t%s\t%t\t%s\n", a.ID, a.Key, a.Enabled, features(a))
			}
		})
	})
}

// features summarises an app's feature flags for the list table.
func features(a storage.App) string {
	var fs []string
	for _, s := range apps.Settings {
		if s.Feature && *s.Bool(&a) {
			fs = append(fs, strings.TrimPrefix(s.Flag, "enable-"))
		}
	}
	if len(fs) == 0 {
		return "-"
	}
	return strings.Join(fs, ",")
}

func (c *command) show(args []string) int {
	fs := c.flagSet("<id> [--json]", "Print the app as JSON. The secret is hidden.")
	_ = jsonFlag(fs, "print JSON (the only format)")
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	return c.withStore(true, func(st appStore) int {
		a, err := st.App(pos[0])
		if err != nil {
			return c.failApp(pos[0], err)
		}
		hideSecrets(&a)
		return c.printJSON(a)
	})
}

func (c *command) create(args []string) int {
	fs := c.flagSet("[flags]", "Create an app and print it as JSON, secret included. The secret is not shown\n"+
		"again. Omitted --id, --key and --secret are generated at random.")
	id := fs.String("id", "", "app id (letters, digits, '-', '_', '.'); default: 9 random digits")
	set := registerAppFlags(fs, true)
	_ = jsonFlag(fs, "print JSON (the only format)")
	if _, code, done := c.parse(fs, args, 0); done {
		return code
	}
	a := storage.App{ID: *id}
	set.apply(fs, &a, true)
	if a.Key == "" {
		a.Key = randomHex(10)
	}
	if a.Secret == "" {
		a.Secret = randomHex(20)
	}
	if msg := appProblem(a, *id != ""); msg != "" {
		return c.usagef("%s", msg)
	}

	return c.withStore(false, func(st appStore) int {

		generateID := a.ID == ""
		for attempt := 0; ; attempt++ {
			if generateID {
				a.ID = randomDigits(9)
			}
			err := st.CreateApp(a)
			switch {
			case err == nil:
			case errors.Is(err, storage.ErrExists) && generateID && attempt < 5:
				continue
			case errors.Is(err, storage.ErrExists):
				return c.failf("an app with id %q already exists", a.ID)
			case errors.Is(err, storage.ErrKeyInUse):
				return c.failf("key %q already belongs to another app: %v", a.Key, err)
			default:
				return c.fail(err)
			}
			break
		}
		stored, err := st.App(a.ID)
		if err != nil {
			return c.failf("%v", err)
		}
		stored.Secret = a.Secret // the admin socket does not send it back
		if code := c.printJSON(stored); code != 0 {
			return code
		}
		// On stderr, so stdout stays one JSON document for scripts.
		fmt.Fprintf(c.stderr, "Created app %s. Save the secret now: sockudo will not show it again.\n", stored.ID)
		return 0
	})
}

func (c *command) update(args []string) int {
	fs := c.flagSet("<id> [flags]", "Change the settings given as flags and leave the rest as they are.\n"+
		"Without flags nothing changes.")
	set := registerAppFlags(fs, false)
	_ = jsonFlag(fs, "print JSON (the only format)")
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	id := pos[0]

	return c.withStore(true, func(st appStore) int {
		a, err := st.App(id)
		if err != nil {
			return c.failApp(id, err)
		}
		if !set.apply(fs, &a, false) {
			fmt.Fprintf(c.stderr, "App %s unchanged: no flags given.\n", id)
			hideSecrets(&a)
			return c.printJSON(a)
		}
		check := a
		if check.Secret == "" {
			check.Secret = hiddenSecret // not sent by the admin socket, which keeps it when none is given
		}
		if msg := appProblem(check, false); msg != "" {
			return c.usagef("%s", msg)
		}
		if err := st.PutApp(a); err != nil {
			if errors.Is(err, storage.ErrKeyInUse) {
				return c.failf("key %q already belongs to another app: %v", a.Key, err)
			}
			return c.fail(err)
		}
		c.noteDefaultApp(id)
		stored, err := st.App(id)
		if err != nil {
			return c.failf("%v", err)
		}
		hideSecrets(&stored)
		return c.printJSON(stored)
	})
}

func (c *command) delete(args []string) int {
	fs := c.flagSet("<id> [--json]", "Delete the app and release its key.")
	asJSON := jsonFlag(fs, `print {"app_id": id, "deleted": true}`)
	pos, code, done := c.parse(fs, args, 1)
	if done {
		return code
	}
	id := pos[0]
	return c.withStore(true, func(st appStore) int {
		if err := st.DeleteApp(id); err != nil {
			return c.failApp(id, err)
		}
		c.noteDefaultApp(id)
		if *asJSON {
			return c.printJSON(deletedAnswer{ID: id, Deleted: true})
		}
		fmt.Fprintf(c.stdout, "Deleted app %s.\n", id)
		return 0
	})
}

// deletedAnswer is what "apps delete --json" prints.
type deletedAnswer struct {
	ID      string `json:"app_id"`
	Deleted bool   `json:"deleted"`
}

// noteDefaultApp warns when id is the env-configured default app, whose
// stored settings serve overwrites at every start.
func (c *command) noteDefaultApp(id string) {
	if c.settings.DefaultAppID == id {
		fmt.Fprintf(c.stderr, "Note: %s is the default app; the server resets it from the "+
			"SOCKUDO_DEFAULT_APP_* variables at every start.\n", id)
	}
}

// appProblem checks an app built from flags; checkID is false when the id
// was generated or already stored.
func appProblem(a storage.App, checkID bool) string {
	if checkID {
		if msg := apps.IdentProblem(a.ID); msg != "" {
			return "--id: " + msg
		}
	}
	if msg := apps.IdentProblem(a.Key); msg != "" {
		return "--key: " + msg
	}
	if msg := apps.SecretProblem(a.Secret); msg != "" {
		return "--secret: " + msg
	}
	for _, s := range apps.Settings {
		if msg := s.Problem(a); msg != "" {
			return "--" + s.Flag + ": " + msg
		}
	}
	return ""
}

// appFlagSet holds the values of the flags registerAppFlags defined.
type appFlagSet struct {
	key, secret *string
	// settings copy the flag of each apps.Settings row into an app.
	settings map[string]func(*storage.App)
	webhooks webhooksFlag
}

// registerAppFlags defines the app settings flags on fs: one per
// apps.Settings row, defaulting to a new app's value, plus key, secret and
// webhooks. forCreate makes the key and secret usage that of a new app;
// update ignores defaults and applies only the flags given.
func registerAppFlags(fs *flag.FlagSet, forCreate bool) *appFlagSet {
	s := &appFlagSet{settings: map[string]func(*storage.App){}}
	keyUsage, secretUsage := "new app key", "new app secret"
	if forCreate {
		keyUsage, secretUsage = "app key; default: 20 random hex digits", "app secret; default: 40 random hex digits"
	}
	s.key = fs.String("key", "", keyUsage)
	s.secret = fs.String("secret", "", secretUsage)
	def := apps.Defaults()
	for _, st := range apps.Settings {
		switch {
		case st.Bool != nil:
			v := fs.Bool(st.Flag, *st.Bool(&def), st.Usage)
			s.settings[st.Flag] = func(a *storage.App) { *st.Bool(a) = *v }
		case st.Int != nil:
			v := fs.Int(st.Flag, *st.Int(&def), st.Usage)
			s.settings[st.Flag] = func(a *storage.App) { *st.Int(a) = *v }
		case st.List != nil:
			v := fs.String(st.Flag, st.Default, st.Usage)
			s.settings[st.Flag] = func(a *storage.App) { _ = st.Set(a, *v) } // a list always parses
		}
	}
	fs.Var(&s.webhooks, "webhooks", `webhook targets, a JSON array such as '[{"url":"https://x/hook",`+
		`"event_types":["channel_occupied"]}]' (README, Webhooks); '' removes them`)
	return s
}

// apply copies flag values into a: every flag if all is true (a new app,
// where defaults count), otherwise only those given on the command line. It
// reports whether any app setting was given on the command line.
func (s *appFlagSet) apply(fs *flag.FlagSet, a *storage.App, all bool) bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	use := func(name string) bool { return all || set[name] }

	if use("key") {
		a.Key = *s.key
	}
	if use("secret") {
		a.Secret = *s.secret
	}
	for name, copyTo := range s.settings {
		if use(name) {
			copyTo(a)
		}
	}
	if use("webhooks") {
		a.Webhooks = s.webhooks.hooks
	}
	delete(set, "id")
	delete(set, "json") // an output flag, not a setting
	return len(set) > 0
}

// randomHex returns n random bytes as 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes instead)
	return hex.EncodeToString(b)
}

// randomDigits returns n random decimal digits, the first non-zero, in the
// style of Pusher's numeric app ids.
func randomDigits(n int) string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	span := new(big.Int).Mul(lo, big.NewInt(9))
	v, _ := rand.Int(rand.Reader, span) // rand.Reader never fails
	return v.Add(v, lo).String()
}

// hideSecrets blanks the secrets of an app about to be printed.
func hideSecrets(a *storage.App) {
	a.Secret = hiddenSecret
	if a.PreviousSecret != "" {
		a.PreviousSecret = hiddenSecret
	}
	if a.BeamsSecretKey != "" {
		a.BeamsSecretKey = hiddenSecret
	}
	if a.PreviousBeamsSecretKey != "" {
		a.PreviousBeamsSecretKey = hiddenSecret
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

func (c *command) rotateSecret(args []string) int {
	fs := c.flagSet("<id> [--grace 24h] [--secret S]", "Give the app a new secret and print the app with it, once. The old secret keeps\n"+
		"working for --grace (REST signatures, channel auth, signin), so clients and\n"+
		"backends can switch without downtime; webhooks are signed with the new one.\n"+
		"Applies at once to a running server.")
	grace := fs.Duration("grace", 24*time.Hour, "how long the old secret stays valid; 0 revokes it now")
	secret := fs.String("secret", "", "the new secret; default: 40 random hex digits")
	_ = jsonFlag(fs, "print JSON (the only format)")
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
	return c.withStore(true, func(st appStore) int {
		a, err := st.RotateSecret(pos[0], *secret, *grace)
		if err != nil {
			return c.failApp(pos[0], err)
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
	})
}

// beamsKeyAnswer is what "apps beams-key" prints: the key once, never the
// app secret.
type beamsKeyAnswer struct {
	AppID string `json:"app_id"`
	// InstanceID is the Beams instance id the SDKs take: the app id.
	InstanceID     string `json:"instance_id"`
	BeamsSecretKey string `json:"beams_secret_key,omitempty"`
	// PreviousKeyValidUntil is when the replaced key stops working.
	PreviousKeyValidUntil time.Time `json:"previous_key_valid_until,omitzero"`
}

func (c *command) beamsKey(args []string) int {
	fs := c.flagSet("<generate|rotate|revoke> <id> [--grace 24h]", "Give the app a Pusher Beams secret key (generate), replace it (rotate: the old\n"+
		"key keeps working for --grace) or remove it (revoke: the app stops answering\n"+
		"on the Beams routes). The new key is printed once. It is the app's own secret,\n"+
		"never the app secret. Applies at once to a running server.")
	grace := fs.Duration("grace", 24*time.Hour, "rotate: how long the old key stays valid; 0 revokes it now")
	_ = jsonFlag(fs, "print JSON (the only format)")
	c.argName = "operation (generate, rotate or revoke) and app id"
	pos, code, done := c.parse(fs, args, 2)
	if done {
		return code
	}
	op, id := pos[0], pos[1]
	switch op {
	case apps.BeamsKeyGenerate, apps.BeamsKeyRotate, apps.BeamsKeyRevoke:
	default:
		return c.usagef("unknown operation %q: use generate, rotate or revoke", op)
	}
	if *grace < 0 {
		return c.usagef("--grace must not be negative")
	}
	return c.withStore(true, func(st appStore) int {
		a, err := st.BeamsKey(id, op, *grace)
		if err != nil {
			return c.failApp(id, err)
		}
		out := beamsKeyAnswer{AppID: a.ID, InstanceID: a.ID, BeamsSecretKey: a.BeamsSecretKey}
		if a.PreviousBeamsSecretKey != "" {
			out.PreviousKeyValidUntil = a.PreviousBeamsSecretKeyExpiresAt
		}
		if code := c.printJSON(out); code != 0 {
			return code
		}
		if op == apps.BeamsKeyRevoke {
			fmt.Fprintf(c.stderr, "Revoked the Beams secret keys of app %s.\n", a.ID)
		} else {
			fmt.Fprintf(c.stderr, "Beams secret key of app %s. Save it now: sockudo will not show it again.\n", a.ID)
		}
		if c.settings.DefaultAppID == id {
			fmt.Fprintf(c.stderr, "Note: %s is the default app; SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY, when set, "+
				"replaces its Beams key at every start.\n", id)
		}
		return 0
	})
}
