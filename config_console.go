package main

import (
	"unicode"

	"github.com/sockudo/sockudo/console"
)

// minConsoleToken is the shortest operator token accepted: it guards every
// app, and logins are only rate-limited, not locked out.
const minConsoleToken = 16

// consoleConfig is the operator console (package console).
type consoleConfig struct {
	// Enabled serves the console at /console. Off by default.
	Enabled bool `env:"CONSOLE_ENABLED" envDefault:"false"`
	// Token is the operator token: it logs in to every app. Empty allows
	// only app key+secret logins (each sees its own app). At least 16
	// characters, no spaces. Never logged.
	Token string `env:"CONSOLE_TOKEN"`
}

// consoleProblems checks consoleConfig.
func (c Config) consoleProblems(ch *checks) {
	t := c.Console.Token
	if t == "" {
		return
	}
	if len(t) < minConsoleToken {
		ch.bad("CONSOLE_TOKEN", "must be at least %d characters", minConsoleToken)
	}
	for _, r := range t {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			ch.bad("CONSOLE_TOKEN", "must not contain spaces or control characters")
			break
		}
	}
}

// ConsoleConfig is the console's configuration; the cookie is Secure when
// this process terminates TLS.
func (c Config) ConsoleConfig() console.Config {
	return console.Config{Token: c.Console.Token, Secure: c.TLS.Enabled}
}
