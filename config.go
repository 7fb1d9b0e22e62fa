package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/cli"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
)

// Fixed server settings that have no variable (yet).
const (
	// pongTimeout is how long a client has to answer our pusher:ping.
	pongTimeout = 30 * time.Second
	// writeTimeout bounds one flush to a socket.
	writeTimeout = 10 * time.Second
	// maxPayloadKBLimit keeps WEBSOCKET_MAX_PAYLOAD_KB under gws's default
	// 16 MiB read cap, above which gws closes with 1009 instead of letting us
	// answer with pusher:error.
	maxPayloadKBLimit = 16 << 10
)

// Config is everything sockudo reads from the environment, parsed once at
// startup by loadConfig. The env tags are Sockudo's variable names; the
// README's configuration table lists the same set (config_test.go checks).
type Config struct {
	// Listen is where the server listens and how long it drains.
	Listen listenConfig
	// Socket limits every WebSocket on this node (see ServerConfig).
	Socket socketConfig
	// Log picks the log level and format.
	Log logConfig
	// Storage locates the database.
	Storage storageConfig
	// DefaultAppEnv is the app upserted at every start (see DefaultApp).
	DefaultAppEnv defaultAppConfig
	// RateLimit configures the rate limiters (config_security.go).
	RateLimit rateLimitConfig
	// TLS serves wss/https directly.
	TLS tlsConfig
	// Metrics is the Prometheus listener.
	Metrics metricsConfig
	// Admin is the local control socket.
	Admin adminConfig
	// Webhooks is webhook delivery (config_webhooks.go).
	Webhooks webhookConfig
	// Audit is the audit log of refusals (config_security.go).
	Audit auditConfig
	// Push is the push subsystem (config_push.go).
	Push pushConfig
	// Cluster is Redis mode (config_cluster.go).
	Cluster clusterConfig
	// Console is the operator console at /console (config_console.go).
	Console consoleConfig
}

// listenConfig is where the server listens and how it stops.
type listenConfig struct {
	// Host is the interface to listen on; 0.0.0.0 means all IPv4 ones.
	Host string `env:"HOST" envDefault:"0.0.0.0"`
	// Port is the TCP port for both WebSocket and HTTP API, 1-65535.
	Port int `env:"PORT" envDefault:"6001"`
	// ShutdownGracePeriod is how long SIGTERM/SIGINT waits for sockets to
	// drain (whole seconds in the environment). Zero closes them at once.
	ShutdownGracePeriod time.Duration `env:"SHUTDOWN_GRACE_PERIOD" envDefault:"10"`
}

// socketConfig governs every WebSocket on this node; it becomes server.Config.
type socketConfig struct {
	// ActivityTimeout is sent to clients in pusher:connection_established,
	// and the server pings a socket after this much silence (whole seconds
	// in the environment, 1-3600).
	ActivityTimeout time.Duration `env:"ACTIVITY_TIMEOUT" envDefault:"120"`
	// MaxConnections caps sockets on this node; beyond it a new socket is
	// closed with 4100. Zero means no cap.
	MaxConnections int `env:"SOCKUDO_MAX_CONNECTIONS" envDefault:"0"`
	// MaxPayloadKB is the largest client message, in KiB, that is answered
	// normally; slightly larger ones get a pusher:error, and the socket is
	// closed with 1009 beyond 4 KiB over it. Must be 1-16384.
	MaxPayloadKB int `env:"WEBSOCKET_MAX_PAYLOAD_KB" envDefault:"64"`
	// MessageTimeout is how long one client message may take to arrive,
	// from its first byte to its last (whole seconds in the environment,
	// 1-300); a socket over it is closed with 4100.
	MessageTimeout time.Duration `env:"WEBSOCKET_MESSAGE_TIMEOUT" envDefault:"10"`
	// MaxConnectionsPerIP caps the open sockets of one client IP; beyond it
	// a new socket is closed with 4100. Zero means no cap.
	MaxConnectionsPerIP int `env:"WEBSOCKET_MAX_CONNECTIONS_PER_IP" envDefault:"0"`
	// MaxChannelsPerConnection caps the channels one socket may subscribe
	// to (1-100000).
	MaxChannelsPerConnection int `env:"WEBSOCKET_MAX_CHANNELS_PER_CONNECTION" envDefault:"100"`
	// MaxInboundPerSecond is the average rate of messages one socket may
	// send (1-100000); over it the socket is closed with 4100.
	MaxInboundPerSecond int `env:"WEBSOCKET_MAX_INBOUND_MESSAGES_PER_SECOND" envDefault:"100"`
	// MaxPendingBytes is how many outbound bytes may queue for one socket
	// before it is closed with 4100 (a slow consumer). Must be at least 1024.
	MaxPendingBytes int `env:"WEBSOCKET_MAX_BYTES" envDefault:"1048576"`
	// DebugAuthErrors puts the expected string-to-sign in auth error
	// messages. It helps while writing an auth endpoint; keep it off in
	// production.
	DebugAuthErrors bool `env:"DEBUG" envDefault:"false"`
}

// logConfig selects the slog handler.
type logConfig struct {
	// Level is the minimum level logged: debug, info, warn or error.
	Level string `env:"LOG_LEVEL" envDefault:"info"`
	// Format is human (slog text handler) or json (slog JSON handler).
	Format string `env:"LOG_OUTPUT_FORMAT" envDefault:"human"`
}

// storageConfig locates the database.
type storageConfig struct {
	// DBPath is the bbolt file; its directory is created if missing.
	DBPath string `env:"SOCKUDO_DB_PATH" envDefault:"./sockudo.db"`
}

// defaultAppConfig is the app upserted at every start, so a fresh install
// works without running "sockudo apps create". It becomes a storage.App; a
// zero limit means the Pusher default (storage.App.WithDefaults), except
// MaxConnections, where zero means no cap.
type defaultAppConfig struct {
	// ID, Key and Secret are the app's credentials. The defaults are public:
	// sockudo warns at startup while any of them is unchanged.
	ID     string `env:"SOCKUDO_DEFAULT_APP_ID" envDefault:"app-id"`
	Key    string `env:"SOCKUDO_DEFAULT_APP_KEY" envDefault:"app-key"`
	Secret string `env:"SOCKUDO_DEFAULT_APP_SECRET" envDefault:"app-secret"`
	// BeamsSecretKey is the default app's Pusher Beams secret key (its own
	// secret, never Secret); empty keeps whatever is stored ("sockudo
	// apps beams-key"), which is none by default. Never logged.
	BeamsSecretKey string `env:"SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY"`
	// Settings holds the app's flags and limits: the fields of apps.Settings
	// (SOCKUDO_DEFAULT_APP_ENABLED … SOCKUDO_DEFAULT_APP_CACHE_TTL_SECONDS),
	// which that table describes once for the environment, validation and
	// the CLI; parseSection reads them. Its other fields stay zero.
	Settings storage.App `env:"-"`
	// Webhooks is a JSON array of webhook targets (storage.Webhook); empty
	// means none. Validated at startup (webhooks.ParseTargets).
	Webhooks string `env:"SOCKUDO_DEFAULT_APP_WEBHOOKS"`
}

// parseSettings reads the variables of apps.Settings into d.Settings,
// starting from their defaults; an empty variable means the default, as for
// the tagged fields.
func (d *defaultAppConfig) parseSettings(environ map[string]string) []error {
	d.Settings = apps.Defaults()
	var ps []error
	for _, s := range apps.Settings {
		if s.Env() == "" {
			continue
		}
		if err := s.Set(&d.Settings, environ[s.Env()]); err != nil {
			ps = append(ps, &configError{Var: s.Env(), Msg: err.Error()})
		}
	}
	return ps
}

// loadConfig parses environ (variable -> value; main passes the process
// environment, nil means an empty one) into a Config and validates it. The
// error, if any, joins one line per problem, each naming its variable, so a
// misconfigured deployment learns everything that is wrong at once.
func loadConfig(environ map[string]string) (Config, error) {
	if environ == nil {
		environ = map[string]string{}
	}
	var c Config
	var problems []error
	failed := map[string]bool{} // variables that did not parse
	for _, section := range c.sections() {
		ps := parseSection(section, environ)
		for _, p := range ps {
			var ce *configError
			if errors.As(p, &ce) {
				failed[ce.Var] = true
			}
		}
		problems = append(problems, ps...)
	}
	// A variable that failed to parse is left at zero; don't also report the
	// zero as out of range.
	for _, p := range c.problems() {
		var ce *configError
		if errors.As(p, &ce) && failed[ce.Var] {
			continue
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		sortByVar(problems)
		return Config{}, errors.Join(problems...)
	}
	return c, nil
}

// cliSettings reads the settings the CLI commands share with the server.
// Each section is parsed on its own, as the commands always have: a bad
// variable elsewhere (PORT, say) does not stop "sockudo apps".
func cliSettings(environ map[string]string) cli.Settings {
	var s cli.Settings
	var sc storageConfig
	if ps := parseSection(&sc, environ); len(ps) > 0 {
		s.DBPathErr = errors.Join(ps...)
	} else {
		s.DBPath = sc.DBPath
	}
	var ac adminConfig
	if len(parseSection(&ac, environ)) == 0 && s.DBPathErr == nil && ac.Enabled {
		s.AdminSocket = Config{Admin: ac, Storage: sc}.adminSocket()
	}
	var dc defaultAppConfig
	if len(parseSection(&dc, environ)) == 0 {
		s.DefaultAppID = dc.ID
	}
	var lc listenConfig
	if ps := parseSection(&lc, environ); len(ps) > 0 {
		s.ListenErr = errors.Join(ps...)
	} else {
		s.Host, s.Port = lc.Host, lc.Port
	}
	var pc pushConfig
	if ps := parseSection(&pc, environ); len(ps) > 0 {
		s.Push.CredentialKeyErr = errors.Join(ps...)
	} else {
		key, err := pc.credentialKey()
		prev, perr := pc.previousKeys()
		s.Push = cli.PushSettings{CredentialKey: string(key), PreviousCredentialKeys: string(bytes.Join(prev, nil)),
			CredentialKeyErr: errors.Join(err, perr), APNsEndpoint: pc.APNsEndpoint, FCMEndpoint: pc.FCMEndpoint,
			AllowLocalWebPush: pc.AllowLocalWebPush, FCMTokenURL: pc.FCMTokenURL}
	}
	return s
}

// sortByVar orders problems as the variables are declared in Config, so the
// report reads like the README table whatever stage found each problem.
func sortByVar(problems []error) {
	order := map[string]int{}
	for i, v := range envVars() {
		order[v] = i
	}
	rank := func(err error) int {
		var ce *configError
		if errors.As(err, &ce) {
			return order[ce.Var]
		}
		return len(order) // problems without a variable go last
	}
	slices.SortStableFunc(problems, func(a, b error) int { return rank(a) - rank(b) })
}

// sections returns pointers to c's parts, parsed one at a time so that a
// parse error's Go field name (all env reports) maps back to one variable.
func (c *Config) sections() []any {
	return []any{&c.Listen, &c.Socket, &c.Log, &c.Storage, &c.DefaultAppEnv, &c.RateLimit, &c.TLS, &c.Metrics, &c.Admin,
		&c.Webhooks, &c.Audit, &c.Push, &c.Cluster, &c.Console}
}

// envVars lists every variable Config reads, in declaration order.
func envVars() []string {
	var c Config
	var vars []string
	for _, s := range c.sections() {
		t := reflect.TypeOf(s).Elem()
		for i := range t.NumField() {
			vars = append(vars, fieldVars(t.Field(i))...)
		}
	}
	return vars
}

// fieldVars lists the variables a section field reads: its env tag, or for
// defaultAppConfig.Settings those of apps.Settings.
func fieldVars(f reflect.StructField) []string {
	if f.Type != reflect.TypeFor[storage.App]() {
		return []string{envName(f)}
	}
	var vars []string
	for _, s := range apps.Settings {
		if s.Env() != "" {
			vars = append(vars, s.Env())
		}
	}
	return vars
}

func envName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// parseSection fills one section from environ and turns env's errors into
// configErrors naming the variable.
func parseSection(section any, environ map[string]string) []error {
	ps := parseTagged(section, environ)
	if d, ok := section.(*defaultAppConfig); ok {
		ps = append(ps, d.parseSettings(environ)...)
	}
	return ps
}

// parseTagged fills the env-tagged fields of one section.
func parseTagged(section any, environ map[string]string) []error {
	err := env.ParseWithOptions(section, env.Options{
		Environment: environ,
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeOf(time.Duration(0)): parseSeconds,
		},
	})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []error{fmt.Errorf("config: %w", err)}
	}
	t := reflect.TypeOf(section).Elem()
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		f, ok := reflect.StructField{}, false
		if errors.As(e, &pe) {
			f, ok = t.FieldByName(pe.Name)
		}
		if !ok {
			out = append(out, fmt.Errorf("config: %w", e))
			continue
		}
		// Quoting the value is safe: only non-string variables fail to
		// parse, and no secret is a number or a bool.
		name := envName(f)
		out = append(out, &configError{Var: name,
			Msg: fmt.Sprintf("%q is not %s", environ[name], describeType(f.Type))})
	}
	return out
}

// parseSeconds reads a duration written as whole seconds, the unit of
// Sockudo's timeout variables.
func parseSeconds(v string) (any, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return nil, err
	}
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return nil, strconv.ErrRange
	}
	return time.Duration(n) * time.Second, nil
}

func describeType(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "a whole number of seconds"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "an integer"
	default:
		return "a valid " + t.String()
	}
}

// configError is one problem with one variable.
type configError struct {
	Var string // the environment variable, e.g. "PORT"
	Msg string
}

func (e *configError) Error() string { return e.Var + ": " + e.Msg }

// validate reports every problem with c at once, joined, or nil.
func (c Config) validate() error { return errors.Join(c.problems()...) }

func (c Config) problems() []error {
	var ch checks
	if strings.TrimSpace(c.Listen.Host) == "" || strings.ContainsAny(c.Listen.Host, " \t/") {
		ch.bad("HOST", "must be a host name or IP address, got %q", c.Listen.Host)
	}
	ch.intIn("PORT", c.Listen.Port, 1, 65535)
	ch.secondsIn("SHUTDOWN_GRACE_PERIOD", c.Listen.ShutdownGracePeriod, 0, 3600)

	ch.secondsIn("ACTIVITY_TIMEOUT", c.Socket.ActivityTimeout, 1, 3600)
	ch.atLeast("SOCKUDO_MAX_CONNECTIONS", c.Socket.MaxConnections, 0)
	ch.intIn("WEBSOCKET_MAX_PAYLOAD_KB", c.Socket.MaxPayloadKB, 1, maxPayloadKBLimit)
	ch.atLeast("WEBSOCKET_MAX_BYTES", c.Socket.MaxPendingBytes, 1024)
	ch.secondsIn("WEBSOCKET_MESSAGE_TIMEOUT", c.Socket.MessageTimeout, 1, 300)
	ch.atLeast("WEBSOCKET_MAX_CONNECTIONS_PER_IP", c.Socket.MaxConnectionsPerIP, 0)
	ch.intIn("WEBSOCKET_MAX_CHANNELS_PER_CONNECTION", c.Socket.MaxChannelsPerConnection, 1, 100000)
	ch.intIn("WEBSOCKET_MAX_INBOUND_MESSAGES_PER_SECOND", c.Socket.MaxInboundPerSecond, 1, 100000)

	if _, ok := logLevels[strings.ToLower(c.Log.Level)]; !ok {
		ch.bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if f := strings.ToLower(c.Log.Format); f != "human" && f != "json" {
		ch.bad("LOG_OUTPUT_FORMAT", "must be human or json, got %q", c.Log.Format)
	}
	if strings.TrimSpace(c.Storage.DBPath) == "" {
		ch.bad("SOCKUDO_DB_PATH", "must not be empty")
	}

	a := c.DefaultAppEnv
	if msg := apps.IdentProblem(a.ID); msg != "" {
		ch.bad("SOCKUDO_DEFAULT_APP_ID", "%s", msg)
	}
	if msg := apps.IdentProblem(a.Key); msg != "" {
		ch.bad("SOCKUDO_DEFAULT_APP_KEY", "%s", msg)
	}
	if msg := apps.SecretProblem(a.Secret); msg != "" {
		ch.bad("SOCKUDO_DEFAULT_APP_SECRET", "%s", msg)
	}
	if a.BeamsSecretKey != "" {
		if msg := apps.BeamsKeyProblem(a.BeamsSecretKey, a.Secret); msg != "" {
			ch.bad("SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY", "%s", msg)
		}
	}
	for _, s := range apps.Settings {
		if msg := s.Problem(a.Settings); msg != "" && s.Env() != "" {
			ch.bad(s.Env(), "%s", msg)
		}
	}
	c.securityProblems(&ch)
	c.webhookProblems(&ch)
	c.auditProblems(&ch)
	c.pushProblems(&ch)
	c.clusterProblems(&ch)
	c.consoleProblems(&ch)
	return ch.problems
}

// checks collects the problems of a configuration, each naming its
// variable; the config files of each area add theirs.
type checks struct{ problems []error }

func (ch *checks) bad(name, format string, args ...any) {
	ch.problems = append(ch.problems, &configError{Var: name, Msg: fmt.Sprintf(format, args...)})
}

func (ch *checks) intIn(name string, v, lo, hi int) {
	if v < lo || v > hi {
		ch.bad(name, "must be %d-%d, got %d", lo, hi, v)
	}
}

func (ch *checks) atLeast(name string, v, lo int) {
	if v < lo {
		ch.bad(name, "must be at least %d, got %d", lo, v)
	}
}

// secondsIn checks a duration read as whole seconds.
func (ch *checks) secondsIn(name string, d time.Duration, lo, hi int) {
	if d%time.Second != 0 || d < time.Duration(lo)*time.Second || d > time.Duration(hi)*time.Second {
		ch.bad(name, "must be %d-%d seconds, got %s", lo, hi, d)
	}
}

// logLevels maps LOG_LEVEL values to slog levels.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// Addr is the listen address, HOST:PORT.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Listen.Host, strconv.Itoa(c.Listen.Port))
}

// ServerConfig is the part of c the realtime server takes.
func (c Config) ServerConfig() server.Config {
	return server.Config{
		ActivityTimeout: c.Socket.ActivityTimeout,
		PongTimeout:     pongTimeout,
		MaxConnections:  c.Socket.MaxConnections,
		MaxPayloadBytes: c.Socket.MaxPayloadKB << 10,
		MaxPendingBytes: c.Socket.MaxPendingBytes,
		WriteTimeout:    writeTimeout,
		DebugAuthErrors: c.Socket.DebugAuthErrors,
		TrustHops:       c.RateLimit.TrustHops,

		MessageTimeout:           c.Socket.MessageTimeout,
		MaxConnectionsPerIP:      c.Socket.MaxConnectionsPerIP,
		MaxChannelsPerConnection: c.Socket.MaxChannelsPerConnection,
		MaxMessagesPerSecond:     c.Socket.MaxInboundPerSecond,
	}
}

// DefaultApp is the app described by the SOCKUDO_DEFAULT_APP_* variables,
// without timestamps (storage sets them).
func (c Config) DefaultApp() storage.App {
	d := c.DefaultAppEnv
	a := d.Settings
	a.ID, a.Key, a.Secret, a.BeamsSecretKey = d.ID, d.Key, d.Secret, d.BeamsSecretKey
	a.AllowedOrigins = slices.Clone(a.AllowedOrigins)
	a.Webhooks = defaultAppWebhooks(d.Webhooks)
	return a
}
