package apps

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestSettingsTable: each row has one kind, a flag, usage, a default that
// parses, and no name used twice.
func TestSettingsTable(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, s := range Settings {
		kinds := 0
		for _, set := range []bool{s.Bool != nil, s.Int != nil, s.List != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 || s.Flag == "" || s.Usage == "" {
			t.Errorf("%+v: want one kind, a flag and usage", s)
		}
		if flags[s.Flag] || envs[s.Env()] {
			t.Errorf("%s: flag or variable listed twice", s.Flag)
		}
		flags[s.Flag] = true
		if s.Env() != "" {
			envs[s.Env()] = true
		}
		if s.Feature && (s.Bool == nil || !strings.HasPrefix(s.Flag, "enable-")) {
			t.Errorf("%s: a feature is an enable-* flag", s.Flag)
		}
		var a storage.App
		if err := s.Set(&a, s.Default); err != nil {
			t.Errorf("%s: default %q: %v", s.Flag, s.Default, err)
		}
	}
}

func TestEnv(t *testing.T) {
	for flag, want := range map[string]string{
		"enabled":                        "SOCKUDO_DEFAULT_APP_ENABLED",
		"max-presence-member-size-in-kb": "SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBER_SIZE_IN_KB",
		"allowed-origins":                "SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS",
		"rate-limit-ws-max-requests":     "",
		"push-max-devices-per-user":      "",
	} {
		if got := setting(t, flag).Env(); got != want {
			t.Errorf("%s: Env() = %q, want %q", flag, got, want)
		}
	}
}

// TestDefaults: a new app's settings are Pusher's defaults, and enabled.
func TestDefaults(t *testing.T) {
	want := storage.App{Enabled: true}.WithDefaults()
	if got := Defaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Defaults() = %+v\nwant %+v", got, want)
	}
}

func setting(t *testing.T, flag string) Setting {
	t.Helper()
	for _, s := range Settings {
		if s.Flag == flag {
			return s
		}
	}
	t.Fatalf("no setting %s", flag)
	return Setting{}
}

func TestSetAndProblem(t *testing.T) {
	tcs := []struct {
		name, flag, v string
		err, problem  string
		check         func(storage.App) bool
	}{
		{name: "bool", flag: "enable-client-messages", v: "1", check: func(a storage.App) bool { return a.EnableClientMessages }},
		{name: "bad bool", flag: "enabled", v: "on", err: `"on" is not true or false`},
		{name: "int", flag: "max-connections", v: "7", check: func(a storage.App) bool { return a.MaxConnections == 7 }},
		{name: "empty int keeps the value", flag: "max-event-batch-size", v: "",
			check: func(a storage.App) bool { return a.MaxEventBatchSize == 0 }},
		{name: "bad int", flag: "max-event-batch-size", v: "many", err: `"many" is not an integer`},
		{name: "int beyond 32 bits", flag: "max-connections", v: "4294967296", err: "is not an integer"},
		{name: "negative int", flag: "cache-ttl-seconds", v: "-5", problem: "must be at least 0, got -5"},
		{name: "push override", flag: "push-max-devices-per-user", v: "3",
			check: func(a storage.App) bool { return a.PushLimits == storage.AppPushLimits{MaxDevicesPerUser: 3} }},
		{name: "push override of zero keeps the server-wide limit", flag: "push-max-interests-per-device", v: "0",
			check: func(a storage.App) bool { return a.PushLimits.MaxInterestsPerDevice == 0 }},
		{name: "push registrations override", flag: "push-registrations-per-ip-per-minute", v: "7",
			check: func(a storage.App) bool { return a.PushLimits.RegistrationsPerMinute == 7 }},
		{name: "negative push override", flag: "push-registrations-per-ip-per-minute", v: "-1", problem: "must be at least 0, got -1"},
		{name: "list", flag: "allowed-origins", v: " https://a.example.com, https://*.b.example.com ,,*",
			check: func(a storage.App) bool {
				return reflect.DeepEqual(a.AllowedOrigins, []string{"https://a.example.com", "https://*.b.example.com", "*"})
			}},
		{name: "list with two wildcards", flag: "allowed-origins", v: "https://ok.example.com,https://*.*.example.com",
			problem: `each pattern may contain at most one '*', got "https://*.*.example.com"`},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			s := setting(t, tc.flag)
			var a storage.App
			err := s.Set(&a, tc.v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Set(%q) = %v, want %q", tc.v, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Problem(a); got != tc.problem {
				t.Fatalf("Problem = %q, want %q", got, tc.problem)
			}
			if tc.check != nil && !tc.check(a) {
				t.Fatalf("Set(%q) gave %+v", tc.v, a)
			}
		})
	}
}

func TestIdentAndSecretProblems(t *testing.T) {
	for s, want := range map[string]string{"app-1_x.y": "", "": "must not be empty", "a/b": "may contain only"} {
		if got := IdentProblem(s); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("IdentProblem(%q) = %q, want %q", s, got, want)
		}
	}
	for s, want := range map[string]string{"s3cret": "", "": "must not be empty", " hunter2 ": "whitespace"} {
		got := SecretProblem(s)
		if want == "" && got != "" || !strings.Contains(got, want) || strings.Contains(got, "hunter2") {
			t.Errorf("SecretProblem(%q) = %q, want %q", s, got, want)
		}
	}
}
