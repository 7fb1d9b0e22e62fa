package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/cli"
	"github.com/sockudo/sockudo/storage"
)

// doctorTimeout bounds each network check of doctor (Redis dial and PING)
// and its wait for the database lock. A variable so tests need not wait.
var doctorTimeout = 2 * time.Second

// certExpiryWarning is how close to its expiry a served certificate is
// reported.
const certExpiryWarning = 14 * 24 * time.Hour

// doctor checks the configuration in environ for "sockudo doctor" and
// returns its findings; it changes nothing (a database that does not exist
// yet is not created). The checks are run in the order of the README table.
func doctor(ctx context.Context, environ map[string]string) []cli.Finding {
	cfg, err := loadConfig(environ)
	if err != nil {
		return configFindings(err)
	}
	d := &doctorRun{cfg: cfg}
	d.ok("config", "the configuration is valid")
	d.running = d.serverRunning()
	d.checkPort("port", "PORT", cfg.Listen.Host, cfg.Listen.Port)
	if cfg.Metrics.Enabled {
		d.checkPort("metrics_port", "METRICS_PORT", cfg.Metrics.Host, cfg.Metrics.Port)
	}
	credentials := d.checkDatabase()
	d.checkAdminSocket()
	d.checkTLS()
	d.checkRedis(ctx)
	d.checkDefaultApp()
	d.checkPushKey(credentials)
	d.checkUnsafe()
	d.checkConsole()
	return d.findings
}

// doctorRun collects the findings of one doctor run.
type doctorRun struct {
	cfg      Config
	running  bool // a sockudo server answers on the admin socket
	findings []cli.Finding
	// apps are the apps stored in the database, when checkDatabase could
	// read it (the console check compares CONSOLE_TOKEN with their secrets).
	apps []storage.App
}

func (d *doctorRun) add(sev cli.Severity, check, msg, fix string) {
	d.findings = append(d.findings, cli.Finding{Severity: sev, Check: check, Message: msg, Fix: fix})
}

func (d *doctorRun) ok(check, msg string) { d.add(cli.SeverityOK, check, msg, "") }

// configFindings turns loadConfig's joined error into one error finding
// per problem; the other checks need a valid configuration and are
// skipped.
func configFindings(err error) []cli.Finding {
	var problems []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	} else {
		problems = []error{err}
	}
	var out []cli.Finding
	for _, p := range problems {
		f := cli.Finding{Severity: cli.SeverityError, Check: "config", Message: p.Error(),
			Fix: "correct the variable (README, Configuration)"}
		var ce *configError
		if errors.As(p, &ce) {
			f.Fix = "set " + ce.Var + " to a valid value (README, Configuration)"
		}
		out = append(out, f)
	}
	out = append(out, cli.Finding{Severity: cli.SeverityWarn, Check: "config",
		Message: "the other checks were skipped: they need a valid configuration", Fix: "fix the errors above and run doctor again"})
	return out
}

// serverRunning reports whether a sockudo server answers on the admin
// socket: then its port and its database lock are expected.
func (d *doctorRun) serverRunning() bool {
	if !d.cfg.Admin.Enabled {
		return false
	}
	path := d.cfg.adminSocket()
	if _, err := os.Stat(path); err != nil {
		return false
	}
	cl, err := admin.Dial(path)
	if err != nil {
		return false
	}
	_ = cl.Close()
	return true
}

// checkPort binds host:port for a moment.
func (d *doctorRun) checkPort(check, name, host string, port int) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		_ = ln.Close()
		d.ok(check, fmt.Sprintf("%s: %s is free to bind", name, addr))
		return
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE) && d.running:
		d.ok(check, fmt.Sprintf("%s: %s is in use by the running sockudo server (its admin socket answers)", name, addr))
	case errors.Is(err, syscall.EADDRINUSE):
		d.add(cli.SeverityError, check, fmt.Sprintf("%s: %s is in use by another process", name, addr),
			fmt.Sprintf("stop that process or set %s to a free port", name))
	case errors.Is(err, syscall.EACCES):
		d.add(cli.SeverityError, check, fmt.Sprintf("%s: no permission to bind %s", name, addr),
			fmt.Sprintf("use a port above 1023 in %s, or grant CAP_NET_BIND_SERVICE", name))
	default:
		d.add(cli.SeverityError, check, fmt.Sprintf("%s: cannot bind %s: %v", name, addr, err),
			fmt.Sprintf("check %s and the host's interfaces", name))
	}
}

// checkDatabase checks that SOCKUDO_DB_PATH can be created or opened, and
// returns how many push credential versions are active in it (-1 when it
// could not be read).
func (d *doctorRun) checkDatabase() int {
	path := d.cfg.Storage.DBPath
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		dir := existingAncestor(filepath.Dir(path))
		if err := writableDir(dir); err != nil {
			d.add(cli.SeverityError, "database", fmt.Sprintf("SOCKUDO_DB_PATH: %s does not exist and cannot be created: %v", path, err),
				"point SOCKUDO_DB_PATH into a directory sockudo's user can write (the /data volume in the image)")
			return -1
		}
		d.ok("database", fmt.Sprintf("SOCKUDO_DB_PATH: %s does not exist yet; its directory is writable, serve creates it", path))
		return 0
	case err != nil:
		d.add(cli.SeverityError, "database", fmt.Sprintf("SOCKUDO_DB_PATH: %v", err), "check the path and its permissions")
		return -1
	case st.IsDir():
		d.add(cli.SeverityError, "database", fmt.Sprintf("SOCKUDO_DB_PATH: %s is a directory", path),
			"set SOCKUDO_DB_PATH to a file path such as /data/sockudo.db")
		return -1
	}
	db, err := storage.Open(path, &storage.Options{Timeout: doctorTimeout})
	switch {
	case errors.Is(err, storage.ErrLocked) && d.running:
		d.ok("database", fmt.Sprintf("SOCKUDO_DB_PATH: %s is held by the running sockudo server", path))
		return -1
	case errors.Is(err, storage.ErrLocked):
		d.add(cli.SeverityError, "database", fmt.Sprintf("SOCKUDO_DB_PATH: %s is locked by another process (waited %s)", path, doctorTimeout),
			"stop the other sockudo process (only one may open the file), or give this one its own SOCKUDO_DB_PATH")
		return -1
	case err != nil:
		d.add(cli.SeverityError, "database", fmt.Sprintf("SOCKUDO_DB_PATH: cannot open %s: %v", path, err),
			"make the file and its directory writable by sockudo's user, or restore it from a backup")
		return -1
	}
	defer db.Close()
	n := 0
	recs, err := db.AppRecords()
	if err == nil {
		d.apps = d.decodeApps(recs)
		n, err = activeCredentials(db, d.apps)
	}
	if err != nil {
		d.add(cli.SeverityError, "database", fmt.Sprintf("SOCKUDO_DB_PATH: reading %s: %v", path, err),
			"restore the database from a backup")
		return -1
	}
	d.ok("database", fmt.Sprintf("SOCKUDO_DB_PATH: %s opens for writing and no other process holds it", path))
	return n
}

// decodeApps returns the apps of recs that decode, with an error finding
// for each that does not: the server serves such an app as disabled and
// logs it once, so this is where its operator learns what is wrong.
func (d *doctorRun) decodeApps(recs []storage.AppRecord) []storage.App {
	apps := make([]storage.App, 0, len(recs))
	for _, r := range recs {
		a, err := r.Decode()
		if err != nil {
			d.add(cli.SeverityError, "apps", fmt.Sprintf("app %q: its stored record cannot be used (%v); the server refuses its sockets and API calls", r.ID, err),
				fmt.Sprintf("delete it with \"sockudo apps delete %s\" and create it again, or restore the database from a backup", r.ID))
			continue
		}
		apps = append(apps, a)
	}
	return apps
}

// checkAdminSocket checks that serve can open the admin socket: its
// directory must be private to sockudo's user.
func (d *doctorRun) checkAdminSocket() {
	if !d.cfg.Admin.Enabled {
		return
	}
	path := d.cfg.adminSocket()
	if d.running {
		d.ok("admin_socket", fmt.Sprintf("the admin socket %s answers (a server is running)", path))
		return
	}
	if err := admin.CheckSocketDir(path); err != nil {
		d.add(cli.SeverityError, "admin_socket", fmt.Sprintf("SOCKUDO_ADMIN_SOCKET: serve would refuse %s: %v", path, err),
			"point SOCKUDO_ADMIN_SOCKET (or SOCKUDO_DB_PATH) into a directory only sockudo's user can write, "+
				"or set SOCKUDO_ADMIN_SOCKET_ENABLED=false")
		return
	}
	d.ok("admin_socket", fmt.Sprintf("the admin socket's directory %s is private", filepath.Dir(path)))
}

// activeCredentials counts the push credential versions of list not
// revoked.
func activeCredentials(db *storage.DB, list []storage.App) (int, error) {
	n := 0
	for _, a := range list {
		creds, err := db.PushCredentials(a.ID, "")
		if err != nil {
			return 0, err
		}
		for _, c := range creds {
			if c.Status != storage.PushCredentialRevoked {
				n++
			}
		}
	}
	return n, nil
}

// existingAncestor is dir or its nearest parent that exists (storage.Open
// creates the missing ones).
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil || dir == filepath.Dir(dir) {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

// writableDir checks that a file can be created in dir.
func writableDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".sockudo-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// checkTLS reads the certificate and key when SSL_ENABLED and checks that
// they are a pair and the certificate is current.
func (d *doctorRun) checkTLS() {
	t := d.cfg.TLS
	if !t.Enabled {
		return
	}
	certPEM, err := os.ReadFile(t.CertPath)
	if err != nil {
		d.add(cli.SeverityError, "tls", fmt.Sprintf("SSL_CERT_PATH: cannot read %s: %v", t.CertPath, err),
			"point SSL_CERT_PATH at a PEM certificate chain readable by sockudo's user")
		return
	}
	keyPEM, err := os.ReadFile(t.KeyPath)
	if err != nil {
		d.add(cli.SeverityError, "tls", fmt.Sprintf("SSL_KEY_PATH: cannot read %s: %v", t.KeyPath, err),
			"point SSL_KEY_PATH at the PEM private key, readable by sockudo's user")
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		d.add(cli.SeverityError, "tls", fmt.Sprintf("SSL_CERT_PATH and SSL_KEY_PATH are not a valid pair: %v", err),
			"give the certificate and the private key it was issued for")
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		d.add(cli.SeverityError, "tls", fmt.Sprintf("SSL_CERT_PATH: %v", err), "give a valid X.509 certificate")
		return
	}
	switch left := time.Until(leaf.NotAfter); {
	case left <= 0:
		d.add(cli.SeverityError, "tls", fmt.Sprintf("SSL_CERT_PATH: the certificate expired on %s", leaf.NotAfter.Format(time.RFC3339)),
			"renew it; sockudo reloads the files when they change")
	case left < certExpiryWarning:
		d.add(cli.SeverityWarn, "tls", fmt.Sprintf("SSL_CERT_PATH: the certificate expires on %s", leaf.NotAfter.Format(time.RFC3339)),
			"renew it; sockudo reloads the files when they change")
	default:
		d.ok("tls", fmt.Sprintf("SSL_CERT_PATH and SSL_KEY_PATH are a valid pair, valid until %s", leaf.NotAfter.Format(time.RFC3339)))
	}
}

// checkRedis PINGs Redis when Redis mode or the shared limiters use it.
// REDIS_URL may hold a password: only its host is printed.
func (d *doctorRun) checkRedis(ctx context.Context) {
	cl := d.cfg.Cluster
	if !cl.redis() && !cl.sharedLimits() {
		return
	}
	opts, err := redis.ParseURL(cl.RedisURL)
	if err != nil {
		d.add(cli.SeverityError, "redis", "REDIS_URL does not parse", "set REDIS_URL to redis://host:port/db")
		return
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = doctorTimeout, doctorTimeout, doctorTimeout
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	// go-redis logs failed dials itself; the finding says it once.
	redis.SetLogger(redisLog{slog.New(slog.DiscardHandler)})
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		d.add(cli.SeverityError, "redis", fmt.Sprintf("REDIS_URL: Redis at %s does not answer PING: %s", opts.Addr, redactURL(err.Error(), cl.RedisURL)),
			"start Redis, or fix REDIS_URL (or set ADAPTER_DRIVER=local and RATE_LIMITER_DRIVER=memory for one node)")
		return
	}
	d.ok("redis", fmt.Sprintf("REDIS_URL: Redis at %s answers PING", opts.Addr))
}

// redactURL removes url from msg, in case an error quotes it.
func redactURL(msg, url string) string {
	if url == "" {
		return msg
	}
	return strings.ReplaceAll(msg, url, "(REDIS_URL)")
}

// checkDefaultApp warns while the default app uses the public credentials.
func (d *doctorRun) checkDefaultApp() {
	if public := publicCredentials(d.cfg.DefaultApp()); len(public) > 0 {
		d.add(cli.SeverityWarn, "default_app", "the default app uses the public default "+strings.Join(public, ", ")+
			" (anyone who read the README can connect and publish)",
			"set SOCKUDO_DEFAULT_APP_ID, SOCKUDO_DEFAULT_APP_KEY and SOCKUDO_DEFAULT_APP_SECRET")
		return
	}
	d.ok("default_app", "the default app's credentials are not the public defaults")
}

// checkPushKey reports stored push credentials without the key that opens
// them; credentials is -1 when the database could not be read.
func (d *doctorRun) checkPushKey(credentials int) {
	key, _ := d.cfg.Push.credentialKey() // validated by loadConfig
	switch {
	case credentials < 0:
	case credentials > 0 && key == nil:
		d.add(cli.SeverityError, "push_key", fmt.Sprintf("%d push credential versions are stored but PUSH_CREDENTIAL_ENCRYPTION_KEY is not set: push cannot open them", credentials),
			"set PUSH_CREDENTIAL_ENCRYPTION_KEY (or _FILE) to the key they were sealed with")
	case credentials > 0:
		d.ok("push_key", fmt.Sprintf("%d push credential versions are stored and PUSH_CREDENTIAL_ENCRYPTION_KEY is set", credentials))
	case key == nil:
		d.ok("push_key", "no push credentials are stored (PUSH_CREDENTIAL_ENCRYPTION_KEY is needed to add one)")
	default:
		d.ok("push_key", "PUSH_CREDENTIAL_ENCRYPTION_KEY is set")
	}
}

// checkUnsafe warns about settings meant for tests or development.
func (d *doctorRun) checkUnsafe() {
	if d.cfg.Webhooks.AllowPrivateTargets {
		d.add(cli.SeverityWarn, "webhooks", "WEBHOOK_ALLOW_PRIVATE_TARGETS=true lets webhooks reach loopback, private and cloud-metadata addresses",
			"set WEBHOOK_ALLOW_PRIVATE_TARGETS=false in production")
	}
	if d.cfg.Push.AllowLocalWebPush {
		d.add(cli.SeverityWarn, "web_push", "PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS=true lets Web Push subscriptions point at private addresses",
			"set PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS=false in production")
	}
	if d.cfg.Socket.DebugAuthErrors {
		d.add(cli.SeverityWarn, "debug", "DEBUG=true puts the expected string to sign in auth error messages",
			"set DEBUG=false in production")
	}
}
