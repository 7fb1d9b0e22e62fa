package main

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/apps"
	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
)

func defaultConfig() Config {
	return Config{
		Listen: listenConfig{Host: "0.0.0.0", Port: 6001, ShutdownGracePeriod: 10 * time.Second},
		Socket: socketConfig{
			ActivityTimeout: 120 * time.Second,
			MaxPayloadKB:    64,
			MaxPendingBytes: 1 << 20,

			MessageTimeout:           10 * time.Second,
			MaxChannelsPerConnection: 100,
			MaxInboundPerSecond:      100,
		},
		Log:     logConfig{Level: "info", Format: "human"},
		Storage: storageConfig{DBPath: "./sockudo.db"},
		DefaultAppEnv: defaultAppConfig{
			ID:     "app-id",
			Key:    "app-key",
			Secret: "app-secret",
			Settings: storage.App{
				Enabled:                      true,
				MaxClientEventsPerSecond:     10,
				MaxPresenceMembersPerChannel: 100,
				MaxPresenceMemberSizeInKB:    1,
				MaxChannelNameLength:         200,
				MaxEventChannelsAtOnce:       100,
				MaxEventNameLength:           200,
				MaxEventPayloadInKB:          10,
				MaxEventBatchSize:            10,
				CacheTTLSeconds:              1800,
			},
		},
		RateLimit: rateLimitConfig{Enabled: true, WSMaxRequests: 120, WSWindow: time.Minute,
			APIMaxRequests: 6000, APIReadMaxRequests: 6000, APIWindow: time.Minute,
			AuthMaxFailures: 30, AuthWindow: time.Minute, SigninMaxAttempts: 60, SigninWindow: time.Minute,
			IPv6PrefixLength: 64, ReplayCacheMaxEntries: 100_000},
		Metrics: metricsConfig{Enabled: true, Host: "127.0.0.1", Port: 9601},
		Admin:   adminConfig{Enabled: true},
		Webhooks: webhookConfig{BatchingEnabled: true, BatchingDuration: 50, BatchingSize: 100,
			Timeout: 10 * time.Second, RetryMax: 300 * time.Second, GracePeriodMs: 3000, MaxConcurrency: 64,
			DeadLetterMax: 10000, CommitIntervalMs: 10, QueueMax: 10000},
		Audit: auditConfig{AggregationWindow: time.Minute, MaxRefusals: 100_000},
		Push: pushConfig{APNsEndpoint: "production", FCMEndpoint: "https://fcm.googleapis.com", RegistrationsPerMinute: 60, DeviceRequestsPerSecond: 10,
			PublishRPS: 100, MaxRecipientsPerPublish: 100000, MaxInFlight: 256, ConcurrencyPerCredential: 64, MaxAttempts: 8,
			RetryMaxSeconds: 600, SendTimeoutSeconds: 30, MaxDeadLetters: 10000, PublishRetentionDays: 7, AuditRetentionDays: 90,
			MaxDevicesPerUser: 100, MaxInterestsPerDevice: 5000, MaxChannelsPerDevice: 100, MaxDevicesPerApp: 1_000_000},
		Cluster: clusterConfig{Driver: "local", RedisURL: "redis://127.0.0.1:6379/0", Prefix: "sockudo", HeartbeatMs: 10000,
			NodeTimeoutMs: 30000},
	}
}

func TestLoadConfig(t *testing.T) {
	tcs := []struct {
		name string
		env  map[string]string
		// edit turns the defaults into the expected config.
		edit func(c *Config)
	}{
		{name: "empty environment gives defaults", env: map[string]string{}, edit: func(*Config) {}},
		{name: "nil environment gives defaults", env: nil, edit: func(*Config) {}},
		{
			name: "empty values mean the default",
			env:  map[string]string{"PORT": "", "HOST": "", "SOCKUDO_DEFAULT_APP_ID": ""},
			edit: func(*Config) {},
		},
		{
			name: "listen and socket overrides",
			env: map[string]string{
				"HOST": "127.0.0.1", "PORT": "7000", "SHUTDOWN_GRACE_PERIOD": "0",
				"ACTIVITY_TIMEOUT": "30", "SOCKUDO_MAX_CONNECTIONS": "5000",
				"WEBSOCKET_MAX_PAYLOAD_KB": "128", "WEBSOCKET_MAX_BYTES": "4096", "DEBUG": "true",
				"WEBSOCKET_MESSAGE_TIMEOUT": "3", "WEBSOCKET_MAX_CONNECTIONS_PER_IP": "50",
				"WEBSOCKET_MAX_CHANNELS_PER_CONNECTION": "20", "WEBSOCKET_MAX_INBOUND_MESSAGES_PER_SECOND": "7",
			},
			edit: func(c *Config) {
				c.Listen = listenConfig{Host: "127.0.0.1", Port: 7000, ShutdownGracePeriod: 0}
				c.Socket = socketConfig{ActivityTimeout: 30 * time.Second, MaxConnections: 5000,
					MaxPayloadKB: 128, MaxPendingBytes: 4096, DebugAuthErrors: true,
					MessageTimeout: 3 * time.Second, MaxConnectionsPerIP: 50, MaxChannelsPerConnection: 20,
					MaxInboundPerSecond: 7}
			},
		},
		{
			name: "log and storage overrides, level case-insensitive",
			env:  map[string]string{"LOG_LEVEL": "DEBUG", "LOG_OUTPUT_FORMAT": "json", "SOCKUDO_DB_PATH": "/data/s.db"},
			edit: func(c *Config) {
				c.Log = logConfig{Level: "DEBUG", Format: "json"}
				c.Storage.DBPath = "/data/s.db"
			},
		},
		{
			name: "default app overrides",
			env: map[string]string{
				"SOCKUDO_DEFAULT_APP_ID":                               "42",
				"SOCKUDO_DEFAULT_APP_KEY":                              "k3y",
				"SOCKUDO_DEFAULT_APP_SECRET":                           "s3cret",
				"SOCKUDO_DEFAULT_APP_ENABLED":                          "false",
				"SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES":           "1",
				"SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION":       "true",
				"SOCKUDO_DEFAULT_APP_ENABLE_WATCHLIST_EVENTS":          "TRUE",
				"SOCKUDO_DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT":        "t",
				"SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS":                  " https://a.example.com, https://*.b.example.com ,,*",
				"SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS":                  "7",
				"SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND":     "0",
				"SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL": "500",
				"SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBER_SIZE_IN_KB":   "2",
				"SOCKUDO_DEFAULT_APP_MAX_CHANNEL_NAME_LENGTH":          "100",
				"SOCKUDO_DEFAULT_APP_MAX_EVENT_CHANNELS_AT_ONCE":       "50",
				"SOCKUDO_DEFAULT_APP_MAX_EVENT_NAME_LENGTH":            "64",
				"SOCKUDO_DEFAULT_APP_MAX_EVENT_PAYLOAD_IN_KB":          "20",
				"SOCKUDO_DEFAULT_APP_MAX_EVENT_BATCH_SIZE":             "5",
				"SOCKUDO_DEFAULT_APP_CACHE_TTL_SECONDS":                "60",
			},
			edit: func(c *Config) {
				c.DefaultAppEnv = defaultAppConfig{
					ID: "42", Key: "k3y", Secret: "s3cret",
					Settings: storage.App{
						Enabled:              false,
						EnableClientMessages: true, EnableUserAuthentication: true,
						EnableWatchlistEvents: true, EnableSubscriptionCount: true,
						AllowedOrigins:               []string{"https://a.example.com", "https://*.b.example.com", "*"},
						MaxConnections:               7,
						MaxClientEventsPerSecond:     0,
						MaxPresenceMembersPerChannel: 500,
						MaxPresenceMemberSizeInKB:    2,
						MaxChannelNameLength:         100,
						MaxEventChannelsAtOnce:       50,
						MaxEventNameLength:           64,
						MaxEventPayloadInKB:          20,
						MaxEventBatchSize:            5,
						CacheTTLSeconds:              60,
					},
				}
			},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(tc.env)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := defaultConfig()
			tc.edit(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("config mismatch\n got: %+v\nwant: %+v", got, want)
			}
			if err := got.validate(); err != nil {
				t.Fatalf("validate on a loaded config: %v", err)
			}
		})
	}
}

func TestLoadConfigInvalid(t *testing.T) {
	tcs := []struct {
		name string
		env  map[string]string
		// vars are the variables the error must name, in report order.
		vars []string
		// contains are fragments the message must include.
		contains []string
	}{
		{
			name:     "port zero",
			env:      map[string]string{"PORT": "0"},
			vars:     []string{"PORT"},
			contains: []string{"PORT: must be 1-65535, got 0"},
		},
		{
			name:     "port not a number is reported once",
			env:      map[string]string{"PORT": "http"},
			vars:     []string{"PORT"},
			contains: []string{`PORT: "http" is not an integer`},
		},
		{name: "port too big", env: map[string]string{"PORT": "65536"}, vars: []string{"PORT"}},
		{
			name:     "activity timeout as a Go duration",
			env:      map[string]string{"ACTIVITY_TIMEOUT": "2m"},
			vars:     []string{"ACTIVITY_TIMEOUT"},
			contains: []string{"not a whole number of seconds"},
		},
		{name: "activity timeout zero", env: map[string]string{"ACTIVITY_TIMEOUT": "0"}, vars: []string{"ACTIVITY_TIMEOUT"}},
		{
			name: "activity timeout overflows",
			env:  map[string]string{"ACTIVITY_TIMEOUT": "99999999999999"},
			vars: []string{"ACTIVITY_TIMEOUT"},
		},
		{name: "negative grace", env: map[string]string{"SHUTDOWN_GRACE_PERIOD": "-1"}, vars: []string{"SHUTDOWN_GRACE_PERIOD"}},
		{name: "negative node cap", env: map[string]string{"SOCKUDO_MAX_CONNECTIONS": "-1"}, vars: []string{"SOCKUDO_MAX_CONNECTIONS"}},
		{name: "payload zero", env: map[string]string{"WEBSOCKET_MAX_PAYLOAD_KB": "0"}, vars: []string{"WEBSOCKET_MAX_PAYLOAD_KB"}},
		{name: "payload over gws cap", env: map[string]string{"WEBSOCKET_MAX_PAYLOAD_KB": "16385"}, vars: []string{"WEBSOCKET_MAX_PAYLOAD_KB"}},
		{name: "pending bytes tiny", env: map[string]string{"WEBSOCKET_MAX_BYTES": "10"}, vars: []string{"WEBSOCKET_MAX_BYTES"}},
		{name: "message timeout zero", env: map[string]string{"WEBSOCKET_MESSAGE_TIMEOUT": "0"}, vars: []string{"WEBSOCKET_MESSAGE_TIMEOUT"}},
		{name: "connections per IP negative", env: map[string]string{"WEBSOCKET_MAX_CONNECTIONS_PER_IP": "-1"}, vars: []string{"WEBSOCKET_MAX_CONNECTIONS_PER_IP"}},
		{name: "channels per connection zero", env: map[string]string{"WEBSOCKET_MAX_CHANNELS_PER_CONNECTION": "0"}, vars: []string{"WEBSOCKET_MAX_CHANNELS_PER_CONNECTION"}},
		{name: "inbound rate zero", env: map[string]string{"WEBSOCKET_MAX_INBOUND_MESSAGES_PER_SECOND": "0"}, vars: []string{"WEBSOCKET_MAX_INBOUND_MESSAGES_PER_SECOND"}},
		{
			name:     "debug not a bool",
			env:      map[string]string{"DEBUG": "yes"},
			vars:     []string{"DEBUG"},
			contains: []string{`DEBUG: "yes" is not true or false`},
		},
		{name: "log level", env: map[string]string{"LOG_LEVEL": "verbose"}, vars: []string{"LOG_LEVEL"}},
		{name: "log format", env: map[string]string{"LOG_OUTPUT_FORMAT": "logfmt"}, vars: []string{"LOG_OUTPUT_FORMAT"}},
		{name: "blank db path", env: map[string]string{"SOCKUDO_DB_PATH": "  "}, vars: []string{"SOCKUDO_DB_PATH"}},
		{name: "app id with slash", env: map[string]string{"SOCKUDO_DEFAULT_APP_ID": "a/b"}, vars: []string{"SOCKUDO_DEFAULT_APP_ID"}},
		{name: "app key with space", env: map[string]string{"SOCKUDO_DEFAULT_APP_KEY": "a b"}, vars: []string{"SOCKUDO_DEFAULT_APP_KEY"}},
		{
			name:     "origin with two wildcards",
			env:      map[string]string{"SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS": "https://ok.example.com,https://*.*.example.com"},
			vars:     []string{"SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS"},
			contains: []string{`"https://*.*.example.com"`},
		},
		{
			name: "negative app limits",
			env: map[string]string{
				"SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS":   "-1",
				"SOCKUDO_DEFAULT_APP_CACHE_TTL_SECONDS": "-5",
			},
			vars: []string{"SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", "SOCKUDO_DEFAULT_APP_CACHE_TTL_SECONDS"},
		},
		{
			name: "app flag not a bool",
			env:  map[string]string{"SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "on"},
			vars: []string{"SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES"},
		},
		{
			name: "several problems are reported together, in table order",
			env: map[string]string{
				"LOG_LEVEL":        "loud",
				"PORT":             "0",
				"DEBUG":            "maybe",
				"ACTIVITY_TIMEOUT": "soon",
				"SOCKUDO_DEFAULT_APP_MAX_EVENT_BATCH_SIZE": "many",
			},
			vars: []string{"PORT", "ACTIVITY_TIMEOUT", "DEBUG", "LOG_LEVEL", "SOCKUDO_DEFAULT_APP_MAX_EVENT_BATCH_SIZE"},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			if err == nil {
				t.Fatal("loadConfig accepted an invalid environment")
			}
			if got := problemVars(err); !slices.Equal(got, tc.vars) {
				t.Errorf("problems name %v, want %v\nerror:\n%v", got, tc.vars, err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not contain %q:\n%v", s, err)
				}
			}
			// Every line starts with the variable it is about.
			for _, line := range strings.Split(err.Error(), "\n") {
				v, _, _ := strings.Cut(line, ":")
				if !slices.Contains(tc.vars, v) {
					t.Errorf("line %q does not start with a variable name", line)
				}
			}
		})
	}
}

// problemVars lists the variables named by err's configErrors, in order.
func problemVars(err error) []string {
	var vars []string
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*configError); ok {
			vars = append(vars, ce.Var)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return vars
}

func TestConfigSecretNotEchoed(t *testing.T) {
	_, err := loadConfig(map[string]string{"SOCKUDO_DEFAULT_APP_SECRET": " hunter2 "})
	if err == nil {
		t.Fatal("secret with surrounding spaces accepted")
	}
	if !strings.Contains(err.Error(), "SOCKUDO_DEFAULT_APP_SECRET") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want the variable named and the secret not echoed, got: %v", err)
	}
}

func TestConfigConversions(t *testing.T) {
	c, err := loadConfig(map[string]string{
		"HOST":                     "::1",
		"WEBSOCKET_MAX_PAYLOAD_KB": "32",
		"SOCKUDO_MAX_CONNECTIONS":  "9",
		"DEBUG":                    "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Addr(), "[::1]:6001"; got != want {
		t.Errorf("Addr = %s, want %s", got, want)
	}
	wantServer := server.Config{
		ActivityTimeout: 120 * time.Second,
		PongTimeout:     30 * time.Second,
		MaxConnections:  9,
		MaxPayloadBytes: 32 << 10,
		MaxPendingBytes: 1 << 20,
		WriteTimeout:    10 * time.Second,
		DebugAuthErrors: true,

		MessageTimeout:           10 * time.Second,
		MaxChannelsPerConnection: 100,
		MaxMessagesPerSecond:     100,
	}
	if got := c.ServerConfig(); !reflect.DeepEqual(got, wantServer) {
		t.Errorf("ServerConfig = %+v, want %+v", got, wantServer)
	}

	// The env defaults for the default app are exactly Pusher's defaults.
	app := c.DefaultApp()
	if !reflect.DeepEqual(app, app.WithDefaults()) {
		t.Errorf("default app limits differ from storage defaults:\n got: %+v\nwant: %+v", app, app.WithDefaults())
	}
	wantApp := storage.App{ID: "app-id", Key: "app-key", Secret: "app-secret", Enabled: true}.WithDefaults()
	if !reflect.DeepEqual(app, wantApp) {
		t.Errorf("DefaultApp = %+v, want %+v", app, wantApp)
	}
}

// envRow matches a README table row that documents a variable.
var envRow = regexp.MustCompile("^\\| `[A-Z][A-Z0-9_]*` \\|")

// TestConfigTableMatchesStruct keeps the README's configuration table and
// the Config env tags in step: every variable in one is in the other, with
// the same default.
func TestConfigTableMatchesStruct(t *testing.T) {
	var doc strings.Builder
	for _, name := range []string{"README.md"} {
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		doc.Write(b)
		doc.WriteString("\n")
	}

	// table maps each documented variable to its Default cell.
	table := map[string]string{}
	for _, line := range strings.Split(doc.String(), "\n") {
		if !envRow.MatchString(line) {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Errorf("malformed table row: %q", line)
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		table[name] = strings.TrimSpace(cells[2])
	}
	if len(table) == 0 {
		t.Fatal("no configuration table found in README.md")
	}

	defaults := map[string]string{}
	var c Config
	for _, s := range c.sections() {
		rt := reflect.TypeOf(s).Elem()
		for i := range rt.NumField() {
			f := rt.Field(i)
			defaults[envName(f)] = f.Tag.Get("envDefault")
		}
	}
	// The default app's settings are described by the apps.Settings table.
	delete(defaults, "-")
	for _, s := range apps.Settings {
		if s.Env() != "" {
			defaults[s.Env()] = s.Default
		}
	}
	for _, v := range envVars() {
		cell, ok := table[v]
		if !ok {
			t.Errorf("%s is read from the environment but missing from the README table", v)
			continue
		}
		def := defaults[v]
		if strings.HasPrefix(cell, "`") {
			if got := strings.Trim(cell, "`"); got != def {
				t.Errorf("%s: README default %q, struct default %q", v, got, def)
			}
		} else if def != "" {
			t.Errorf("%s: README default %q should be `%s`", v, cell, def)
		}
	}
	for v := range table {
		if _, ok := defaults[v]; !ok {
			t.Errorf("%s is in the README table but not read by Config", v)
		}
	}
}

// TestReadmeListsAppOnlyFlags: a per-app setting without a variable is
// missing from the configuration table, so the README lists its flag in
// the table of per-app overrides.
func TestReadmeListsAppOnlyFlags(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range apps.Settings {
		if s.Env() == "" && !strings.Contains(string(b), "| `--"+s.Flag+"` |") {
			t.Errorf("--%s has no variable and no row in the README's table of per-app overrides", s.Flag)
		}
	}
}

func TestSecurityConfigProblems(t *testing.T) {
	tcs := []struct {
		name string
		env  map[string]string
		want []string // variables named in the error
	}{
		{"tls without files", map[string]string{"SSL_ENABLED": "true"}, []string{"SSL_CERT_PATH", "SSL_KEY_PATH"}},
		{"negative limit and zero window", map[string]string{"RATE_LIMITER_WS_MAX_REQUESTS": "-1", "RATE_LIMITER_API_WINDOW_SECONDS": "0"},
			[]string{"RATE_LIMITER_WS_MAX_REQUESTS", "RATE_LIMITER_API_WINDOW_SECONDS"}},
		{"metrics on the public port", map[string]string{"METRICS_PORT": "6001"}, []string{"METRICS_PORT"}},
		{"metrics port ignored when disabled", map[string]string{"METRICS_ENABLED": "false", "METRICS_PORT": "6001"}, nil},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, v := range tc.want {
				if !strings.Contains(err.Error(), v+":") {
					t.Errorf("error does not name %s: %v", v, err)
				}
			}
		})
	}
}

func TestBuildLimiters(t *testing.T) {
	c, err := loadConfig(map[string]string{"RATE_LIMITER_WS_MAX_REQUESTS": "0"})
	if err != nil {
		t.Fatal(err)
	}
	l := c.buildLimiters()
	if l.WSConnect != nil || l.APIPublish == nil || l.AuthFailures == nil || len(l.memory) != 4 {
		t.Fatalf("limiters %+v", l)
	}
	c.RateLimit.Enabled = false
	if l := c.buildLimiters(); l.APIPublish != nil || len(l.memory) != 0 {
		t.Fatal("RATE_LIMITER_ENABLED=false left a limiter on")
	}
}
