package main

import (
	"strings"
	"testing"
)

func TestConsoleConfig(t *testing.T) {
	tcs := []struct {
		name, token, problem string
	}{
		{"off by default without a token", "", ""},
		{"a long token", "0123456789abcdef", ""},
		{"a short token", "short", "CONSOLE_TOKEN"},
		{"a token with a space", "0123456789 abcdef", "CONSOLE_TOKEN"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CONSOLE_ENABLED": "true"}
			if tc.token != "" {
				env["CONSOLE_TOKEN"] = tc.token
			}
			cfg, err := loadConfig(env)
			if tc.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !cfg.Console.Enabled || cfg.ConsoleConfig().Token != tc.token {
					t.Fatalf("%+v", cfg.Console)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("err %v, want one naming %s", err, tc.problem)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Fatal("the error shows the token")
			}
		})
	}
	cfg, err := loadConfig(map[string]string{})
	if err != nil || cfg.Console.Enabled {
		t.Fatalf("console on by default: %v %v", cfg.Console.Enabled, err)
	}
}
