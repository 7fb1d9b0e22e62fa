package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sockudo/sockudo/admin"
	"github.com/sockudo/sockudo/cli"
	"github.com/sockudo/sockudo/storage"
)

// writeCert writes a self-signed certificate valid until notAfter and its
// key into dir, and returns their paths.
func writeCert(t *testing.T, dir, name string, notAfter time.Time) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// busyPort returns a loopback port held by a listener until the test ends.
func busyPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// doctorEnv is a clean, valid loopback environment: free ports, a new
// database path, credentials that are not the public ones.
func doctorEnv(t *testing.T) map[string]string {
	return map[string]string{
		"HOST": "127.0.0.1", "PORT": strconv.Itoa(freePort(t)),
		"METRICS_HOST": "127.0.0.1", "METRICS_PORT": strconv.Itoa(freePort(t)),
		"SOCKUDO_DB_PATH":            filepath.Join(t.TempDir(), "data", "sockudo.db"),
		"SOCKUDO_DEFAULT_APP_ID":     "my-app",
		"SOCKUDO_DEFAULT_APP_KEY":    "my-key",
		"SOCKUDO_DEFAULT_APP_SECRET": "a-secret-nobody-has-read-in-a-readme",
	}
}

// shortDoctorTimeout makes the lock wait and Redis dial quick for a test.
func shortDoctorTimeout(t *testing.T) {
	old := doctorTimeout
	doctorTimeout = 200 * time.Millisecond
	t.Cleanup(func() { doctorTimeout = old })
}

// seedCredential stores one (fake-sealed) push credential version in the
// database at path.
func seedCredential(t *testing.T, path string) {
	t.Helper()
	db, err := storage.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutApp(storage.App{ID: "a1", Key: "k1", Secret: "s1", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err = db.AddPushCredential("a1", "webpush", storage.PushCredential{Fingerprint: "sha256:0"},
		func(uint64) ([]byte, error) { return []byte("sealed"), nil })
	if err != nil {
		t.Fatal(err)
	}
}

// TestDoctorChecks runs doctor against one misconfiguration per case and
// checks the finding it must report, its severity and the exit code.
func TestDoctorChecks(t *testing.T) {
	shortDoctorTimeout(t)
	key32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes
	tcs := []struct {
		name  string
		setup func(t *testing.T, env map[string]string)
		check string
		sev   cli.Severity
		msg   string // in the finding's message
		code  int
	}{
		{"clean", func(*testing.T, map[string]string) {}, "config", cli.SeverityOK, "valid", 0},
		{"invalid configuration", func(_ *testing.T, env map[string]string) { env["PORT"] = "x" },
			"config", cli.SeverityError, `PORT: "x" is not an integer`, 1},
		{"out of range", func(_ *testing.T, env map[string]string) { env["SHUTDOWN_GRACE_PERIOD"] = "-1" },
			"config", cli.SeverityError, "SHUTDOWN_GRACE_PERIOD", 1},
		{"port free", func(*testing.T, map[string]string) {}, "port", cli.SeverityOK, "is free to bind", 0},
		{"port in use", func(t *testing.T, env map[string]string) { env["PORT"] = strconv.Itoa(busyPort(t)) },
			"port", cli.SeverityError, "in use by another process", 1},
		{"metrics port in use", func(t *testing.T, env map[string]string) { env["METRICS_PORT"] = strconv.Itoa(busyPort(t)) },
			"metrics_port", cli.SeverityError, "METRICS_PORT", 1},
		{"metrics port unchecked when metrics are off", func(t *testing.T, env map[string]string) {
			env["METRICS_PORT"] = strconv.Itoa(busyPort(t))
			env["METRICS_ENABLED"] = "false"
		}, "port", cli.SeverityOK, "free", 0},
		{"database to be created", func(*testing.T, map[string]string) {}, "database", cli.SeverityOK, "does not exist yet", 0},
		{"database directory not creatable", func(t *testing.T, env map[string]string) {
			file := filepath.Join(t.TempDir(), "a-file")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			env["SOCKUDO_DB_PATH"] = filepath.Join(file, "sockudo.db")
		}, "database", cli.SeverityError, "cannot be created", 1},
		{"database is a directory", func(t *testing.T, env map[string]string) { env["SOCKUDO_DB_PATH"] = t.TempDir() },
			"database", cli.SeverityError, "is a directory", 1},
		{"database opens", func(t *testing.T, env map[string]string) {
			db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, "database", cli.SeverityOK, "no other process holds it", 0},
		{"app record that cannot be decoded", func(t *testing.T, env map[string]string) {
			db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.CreateApp(storage.App{ID: "broken", Key: "broken-key", Secret: "s", Enabled: true})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			// Damaged behind storage's back, as a bad restore or disk could.
			bdb, err := bolt.Open(env["SOCKUDO_DB_PATH"], 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("apps")).Put([]byte("broken"), []byte(`{"id":`)) })
			bdb.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, "apps", cli.SeverityError, `app "broken": its stored record cannot be used`, 1},
		{"database locked", func(t *testing.T, env map[string]string) {
			env["SOCKUDO_ADMIN_SOCKET_ENABLED"] = "false"
			db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
		}, "database", cli.SeverityError, "locked by another process", 1},
		{"admin socket directory open to others", func(t *testing.T, env map[string]string) {
			dir := filepath.Join(t.TempDir(), "shared")
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil { // past the umask
				t.Fatal(err)
			}
			env["SOCKUDO_DB_PATH"] = filepath.Join(dir, "sockudo.db")
		}, "admin_socket", cli.SeverityError, "writable by group or others", 1},
		{"admin socket directory private", func(*testing.T, map[string]string) {}, "admin_socket", cli.SeverityOK, "is private", 0},
		{"TLS pair valid", func(t *testing.T, env map[string]string) {
			env["SSL_ENABLED"] = "true"
			env["SSL_CERT_PATH"], env["SSL_KEY_PATH"] = writeCert(t, t.TempDir(), "a", time.Now().Add(90*24*time.Hour))
		}, "tls", cli.SeverityOK, "valid pair", 0},
		{"TLS cert unreadable", func(t *testing.T, env map[string]string) {
			env["SSL_ENABLED"] = "true"
			_, env["SSL_KEY_PATH"] = writeCert(t, t.TempDir(), "a", time.Now().Add(90*24*time.Hour))
			env["SSL_CERT_PATH"] = filepath.Join(t.TempDir(), "missing.crt")
		}, "tls", cli.SeverityError, "SSL_CERT_PATH: cannot read", 1},
		{"TLS key unreadable", func(t *testing.T, env map[string]string) {
			env["SSL_ENABLED"] = "true"
			env["SSL_CERT_PATH"], _ = writeCert(t, t.TempDir(), "a", time.Now().Add(90*24*time.Hour))
			env["SSL_KEY_PATH"] = filepath.Join(t.TempDir(), "missing.key")
		}, "tls", cli.SeverityError, "SSL_KEY_PATH: cannot read", 1},
		{"TLS cert and key of different pairs", func(t *testing.T, env map[string]string) {
			dir := t.TempDir()
			env["SSL_ENABLED"] = "true"
			env["SSL_CERT_PATH"], _ = writeCert(t, dir, "a", time.Now().Add(90*24*time.Hour))
			_, env["SSL_KEY_PATH"] = writeCert(t, dir, "b", time.Now().Add(90*24*time.Hour))
		}, "tls", cli.SeverityError, "not a valid pair", 1},
		{"TLS cert expired", func(t *testing.T, env map[string]string) {
			env["SSL_ENABLED"] = "true"
			env["SSL_CERT_PATH"], env["SSL_KEY_PATH"] = writeCert(t, t.TempDir(), "a", time.Now().Add(-time.Hour))
		}, "tls", cli.SeverityError, "expired", 1},
		{"TLS cert expiring", func(t *testing.T, env map[string]string) {
			env["SSL_ENABLED"] = "true"
			env["SSL_CERT_PATH"], env["SSL_KEY_PATH"] = writeCert(t, t.TempDir(), "a", time.Now().Add(48*time.Hour))
		}, "tls", cli.SeverityWarn, "expires on", 0},
		{"Redis reachable", func(_ *testing.T, env map[string]string) {
			env["ADAPTER_DRIVER"] = "redis"
			env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
		}, "redis", cli.SeverityOK, "answers PING", 0},
		{"Redis unreachable", func(_ *testing.T, env map[string]string) {
			env["ADAPTER_DRIVER"] = "redis"
			env["REDIS_URL"] = "redis://:hunter2@127.0.0.1:1/0"
		}, "redis", cli.SeverityError, "does not answer PING", 1},
		{"Redis limiter only", func(_ *testing.T, env map[string]string) {
			env["RATE_LIMITER_DRIVER"] = "redis"
			env["REDIS_URL"] = "redis://127.0.0.1:1/0"
		}, "redis", cli.SeverityError, "127.0.0.1:1", 1},
		{"public default credentials", func(_ *testing.T, env map[string]string) {
			delete(env, "SOCKUDO_DEFAULT_APP_KEY")
			delete(env, "SOCKUDO_DEFAULT_APP_SECRET")
		}, "default_app", cli.SeverityWarn, "public default key, secret", 0},
		{"own credentials", func(*testing.T, map[string]string) {}, "default_app", cli.SeverityOK, "not the public", 0},
		{"push credentials without the key", func(t *testing.T, env map[string]string) {
			seedCredential(t, env["SOCKUDO_DB_PATH"])
		}, "push_key", cli.SeverityError, "1 push credential versions are stored but PUSH_CREDENTIAL_ENCRYPTION_KEY is not set", 1},
		{"push credentials with the key", func(t *testing.T, env map[string]string) {
			seedCredential(t, env["SOCKUDO_DB_PATH"])
			env["PUSH_CREDENTIAL_ENCRYPTION_KEY"] = key32
		}, "push_key", cli.SeverityOK, "1 push credential versions are stored", 0},
		{"webhooks to private targets", func(_ *testing.T, env map[string]string) { env["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true" },
			"webhooks", cli.SeverityWarn, "WEBHOOK_ALLOW_PRIVATE_TARGETS=true", 0},
		{"local web push", func(_ *testing.T, env map[string]string) { env["PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS"] = "true" },
			"web_push", cli.SeverityWarn, "PUSH_ALLOW_LOCAL_WEB_PUSH_ENDPOINTS=true", 0},
		{"debug", func(_ *testing.T, env map[string]string) { env["DEBUG"] = "true" }, "debug", cli.SeverityWarn, "DEBUG=true", 0},
		{"console without a token", func(_ *testing.T, env map[string]string) { env["CONSOLE_ENABLED"] = "true" },
			"console", cli.SeverityWarn, "only app key+secret logins work", 0},
		{"console token too short", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "short-token"
		}, "config", cli.SeverityError, "CONSOLE_TOKEN", 1},
		{"console token of digits", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "9081726354091827"
		}, "console", cli.SeverityWarn, "CONSOLE_TOKEN is weak: it is short for its characters", 0},
		{"console token of few characters", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "abababababababababababab"
		}, "console", cli.SeverityWarn, "fewer than 8 different characters", 0},
		{"console token a placeholder", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "Changeme-Now-4711-Xy"
		}, "console", cli.SeverityWarn, `contains "changeme"`, 0},
		{"console token is the default app's secret", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", env["SOCKUDO_DEFAULT_APP_SECRET"]
		}, "console", cli.SeverityError, "the same as the default app's secret", 1},
		{"console token is a stored app's secret", func(t *testing.T, env map[string]string) {
			db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.PutApp(storage.App{ID: "stored", Key: "k9", Secret: "Rk2v8Qz1Wm5Tx7Lp3Hs9", Enabled: true}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "Rk2v8Qz1Wm5Tx7Lp3Hs9"
		}, "console", cli.SeverityError, "a credential of app stored", 1},
		{"console token strong", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "Vq3k9Zr1Lm7Tx2Wp5Hs8"
		}, "console", cli.SeverityOK, "used for nothing else", 0},
		{"console on loopback", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"] = "true", "Vq3k9Zr1Lm7Tx2Wp5Hs8"
		}, "console", cli.SeverityOK, "loopback only", 0},
		{"console on every interface without TLS", func(_ *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"], env["HOST"] = "true", "Vq3k9Zr1Lm7Tx2Wp5Hs8", "0.0.0.0"
		}, "console", cli.SeverityWarn, "unless a proxy in front terminates TLS", 0},
		{"console over TLS", func(t *testing.T, env map[string]string) {
			env["CONSOLE_ENABLED"], env["CONSOLE_TOKEN"], env["HOST"] = "true", "Vq3k9Zr1Lm7Tx2Wp5Hs8", "0.0.0.0"
			env["SSL_ENABLED"] = "true"
			env["SSL_CERT_PATH"], env["SSL_KEY_PATH"] = writeCert(t, t.TempDir(), "a", time.Now().Add(90*24*time.Hour))
		}, "console", cli.SeverityOK, "served over TLS", 0},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			env := doctorEnv(t)
			tc.setup(t, env)
			r := runMain(t, env, "doctor", "--json")
			var out struct {
				OK       bool
				Findings []cli.Finding
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("not JSON (%v): %+v", err, r)
			}
			if r.code != tc.code || out.OK != (tc.code == 0) {
				t.Errorf("exit %d ok %v, want %d: %+v", r.code, out.OK, tc.code, out.Findings)
			}
			found := false
			for _, f := range out.Findings {
				if f.Check == tc.check && f.Severity == tc.sev && strings.Contains(f.Message, tc.msg) {
					found = true
				}
				if f.Severity != cli.SeverityOK && f.Fix == "" {
					t.Errorf("finding without a fix: %+v", f)
				}
				if strings.Contains(f.Message, "hunter2") {
					t.Errorf("a finding shows the Redis password: %+v", f)
				}
				if tok := env["CONSOLE_TOKEN"]; tok != "" && strings.Contains(f.Message+f.Fix, tok) {
					t.Errorf("a finding shows CONSOLE_TOKEN: %+v", f)
				}
				if f.Severity == cli.SeverityError && tc.code == 0 {
					t.Errorf("unexpected error: %+v", f)
				}
			}
			if !found {
				t.Errorf("no %s finding %q with %q in: %+v", tc.sev, tc.check, tc.msg, out.Findings)
			}
			if _, err := os.Stat(env["SOCKUDO_DB_PATH"]); tc.name == "database to be created" && err == nil {
				t.Error("doctor created the database")
			}
		})
	}
}

// TestDoctorText prints one line per finding, severity first, and the fix.
func TestDoctorText(t *testing.T) {
	env := doctorEnv(t)
	env["PORT"] = strconv.Itoa(busyPort(t))
	r := runMain(t, env, "doctor")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 1 || len(lines) < 5 || !strings.HasPrefix(lines[1], "ERROR port: PORT: 127.0.0.1:") ||
		!strings.Contains(lines[1], "Fix: stop that process or set PORT") || !strings.HasPrefix(lines[0], "ok    config:") {
		t.Fatalf("%+v", r)
	}
	if r := runMain(t, env, "doctor", "extra"); r.code != 2 {
		t.Fatalf("doctor extra: %+v", r)
	}
	if r := runMain(t, env, "doctor", "-h"); r.code != 0 || !strings.Contains(r.stderr+r.stdout, "Usage: sockudo doctor") {
		t.Fatalf("doctor -h: %+v", r)
	}
}

// TestDoctorAgainstRunningServer: with a server answering on the admin
// socket, its port and its database lock are what they should be.
func TestDoctorAgainstRunningServer(t *testing.T) {
	shortDoctorTimeout(t)
	env := doctorEnv(t)
	env["PORT"] = strconv.Itoa(busyPort(t)) // stands in for the server's listener
	db, err := storage.Open(env["SOCKUDO_DB_PATH"], nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := admin.Listen(env["SOCKUDO_DB_PATH"] + ".sock")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: admin.NewServer(db, nil, nil).Handler()}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done; db.Close() })

	findings := doctor(context.Background(), env)
	for _, f := range findings {
		if f.Severity == cli.SeverityError {
			t.Errorf("error against a running server: %+v", f)
		}
		if f.Check == "port" && !strings.Contains(f.Message, "running sockudo server") ||
			f.Check == "database" && !strings.Contains(f.Message, "held by the running sockudo server") {
			t.Errorf("%+v", f)
		}
	}
}
