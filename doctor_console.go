package main

import (
	"crypto/subtle"
	"math"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/sockudo/sockudo/cli"
	"github.com/sockudo/sockudo/storage"
)

// minConsoleTokenBits is the least guessing work doctor accepts in
// CONSOLE_TOKEN, estimated from its length and character classes: the
// token opens every app, and logins are rate-limited, not locked out.
const minConsoleTokenBits = 80

// weakTokenWords are placeholders people paste into a token.
var weakTokenWords = []string{"password", "changeme", "change-me", "secret", "example", "default", "sockudo",
	"console", "letmein", "qwerty", "admin", "123456"}

// checkConsole checks the console's settings when CONSOLE_ENABLED: the
// operator token (missing, weak, or another credential reused) and whether
// its logins cross the network without TLS. A token shorter than 16
// characters never gets here: loadConfig refuses it.
func (d *doctorRun) checkConsole() {
	c := d.cfg
	if !c.Console.Enabled {
		return
	}
	const check = "console"
	token := c.Console.Token
	switch {
	case token == "":
		d.add(cli.SeverityWarn, check, "CONSOLE_ENABLED=true without CONSOLE_TOKEN: only app key+secret logins work, each seeing its own app; "+
			"nobody can see every app or the cluster's nodes",
			"set CONSOLE_TOKEN to a random value (openssl rand -base64 24) for the operator view, or leave it unset on purpose")
	case d.tokenReused(token) != "":
		d.add(cli.SeverityError, check, "CONSOLE_TOKEN is the same as "+d.tokenReused(token)+
			": whoever holds that credential logs in to the console as the operator, with every app",
			"set CONSOLE_TOKEN to a value of its own (openssl rand -base64 24)")
	case weakToken(token) != "":
		d.add(cli.SeverityWarn, check, "CONSOLE_TOKEN is weak: "+weakToken(token),
			"set CONSOLE_TOKEN to a random value (openssl rand -base64 24)")
	default:
		d.ok(check, "CONSOLE_TOKEN is set, long and used for nothing else")
	}
	switch {
	case c.TLS.Enabled:
		d.ok(check, "the console is served over TLS (SSL_ENABLED)")
	case loopbackHost(c.Listen.Host):
		d.ok(check, "the console listens on loopback only ("+c.Listen.Host+"): reach it through a proxy that terminates TLS, or an SSH tunnel")
	default:
		d.add(cli.SeverityWarn, check, "the console is served without TLS on "+c.Addr()+
			": logins (token, app secrets) and session cookies cross the network in clear unless a proxy in front terminates TLS",
			"serve /console only through a proxy that terminates TLS (and set TRUSTED_PROXIES), set SSL_ENABLED=true, "+
				"or set HOST=127.0.0.1")
	}
}

// tokenReused names the credential token equals ("the default app's
// secret", …), or "" when none; never the credential itself.
func (d *doctorRun) tokenReused(token string) string {
	same := func(s string) bool {
		return s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(token)) == 1
	}
	def := d.cfg.DefaultApp()
	if same(def.Secret) {
		return "the default app's secret (SOCKUDO_DEFAULT_APP_SECRET)"
	}
	if same(def.BeamsSecretKey) {
		return "the default app's Beams secret key (SOCKUDO_DEFAULT_APP_BEAMS_SECRET_KEY)"
	}
	for _, a := range d.apps {
		for _, s := range appCredentials(a) {
			if same(s) {
				return "a credential of app " + a.ID + " (its key, secret or Beams key)"
			}
		}
	}
	return ""
}

func appCredentials(a storage.App) []string {
	return []string{a.Key, a.Secret, a.PreviousSecret, a.BeamsSecretKey, a.PreviousBeamsSecretKey}
}

// weakToken says why token is easy to guess, or "" when it is not.
func weakToken(token string) string {
	lower := strings.ToLower(token)
	for _, w := range weakTokenWords {
		if strings.Contains(lower, w) {
			return "it contains \"" + w + "\""
		}
	}
	distinct := map[rune]bool{}
	var classes [4]bool // lower, upper, digit, other
	for _, r := range token {
		distinct[r] = true
		switch {
		case unicode.IsLower(r):
			classes[0] = true
		case unicode.IsUpper(r):
			classes[1] = true
		case unicode.IsDigit(r):
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	if len(distinct) < 8 {
		return "it uses fewer than 8 different characters"
	}
	alphabet := 0
	for i, size := range []int{26, 26, 10, 32} {
		if classes[i] {
			alphabet += size
		}
	}
	// An upper bound on the work: a human-chosen token has far less.
	if bits := float64(len([]rune(token))) * math.Log2(float64(alphabet)); bits < minConsoleTokenBits {
		return "it is short for its characters (about " + strconv.Itoa(int(bits)) + " bits; use at least " + strconv.Itoa(minConsoleTokenBits) + ")"
	}
	return ""
}

// loopbackHost reports whether HOST binds loopback only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
