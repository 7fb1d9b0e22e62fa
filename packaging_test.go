package main

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
)

// The packaging files are parsed line by line (no YAML or TOML library):
// they are small and kept in a simple shape, which these tests also pin.

// dockerfile is what the packaging tests read from Dockerfile.
type dockerfile struct {
	from        []string          // FROM images
	args        map[string]string // ARG defaults
	env         map[string]string // ENV of the last stage
	expose      []int
	volumes     []string
	healthcheck []string // the CMD's exec form
	build       string   // the RUN command with "go build", continuation lines joined
}

// logicalLines joins continuation lines (ending in a backslash) and drops
// comments and blank lines.
func logicalLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var quoted = regexp.MustCompile(`"([^"]*)"`)

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	d := dockerfile{args: map[string]string{}, env: map[string]string{}}
	for _, line := range logicalLines(t, "Dockerfile") {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			d.from = append(d.from, strings.Fields(rest)[0])
			d.env = map[string]string{} // a new stage
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			d.args[k] = v
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("ENV %q: use the KEY=value form", kv)
				}
				d.env[k] = strings.Trim(v, `"`)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Fatalf("EXPOSE %q", p)
				}
				d.expose = append(d.expose, n)
			}
		case "VOLUME":
			d.volumes = append(d.volumes, strings.Fields(rest)...)
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(rest, "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK without CMD: %q", rest)
			}
			for _, m := range quoted.FindAllStringSubmatch(cmd, -1) {
				d.healthcheck = append(d.healthcheck, m[1])
			}
		case "RUN":
			if strings.Contains(rest, "go build") {
				d.build = rest
			}
		}
	}
	return d
}

// flyConfig is what the packaging tests read from fly.toml: top-level keys
// and each [table]'s keys, values unquoted.
type flyConfig map[string]map[string]string

func parseFly(t *testing.T) flyConfig {
	t.Helper()
	f := flyConfig{"": {}}
	table := ""
	for _, line := range logicalLines(t, "fly.toml") {
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[] ")
			if f[table] == nil {
				f[table] = map[string]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("fly.toml: %q", line)
		}
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		f[table][strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return f
}

func atoi(t *testing.T, what, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: %q is not a number", what, s)
	}
	return n
}

// checkEnvNames fails for a variable the config does not read.
func checkEnvNames(t *testing.T, file string, env map[string]string) {
	t.Helper()
	known := envVars()
	for k := range env {
		if !slices.Contains(known, k) {
			t.Errorf("%s sets %s, which sockudo does not read (config*.go env tags)", file, k)
		}
	}
	if cfgErr := func() error { _, err := loadConfig(env); return err }(); cfgErr != nil {
		t.Errorf("%s: its environment is not a valid configuration:\n%v", file, cfgErr)
	}
}

// TestDockerfileAgreesWithCode: the ports, variables, volume and health
// check of the image are the code's.
func TestDockerfileAgreesWithCode(t *testing.T) {
	d := parseDockerfile(t)
	def, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	checkEnvNames(t, "Dockerfile", d.env)
	if d.env["PORT"] != strconv.Itoa(def.Listen.Port) {
		t.Errorf("Dockerfile ENV PORT=%s, the default PORT is %d", d.env["PORT"], def.Listen.Port)
	}
	if !slices.Equal(d.expose, []int{def.Listen.Port}) {
		t.Errorf("Dockerfile EXPOSE %v, want the default PORT %d", d.expose, def.Listen.Port)
	}
	if dir := filepath.Dir(d.env["SOCKUDO_DB_PATH"]); !slices.Equal(d.volumes, []string{dir}) {
		t.Errorf("Dockerfile VOLUME %v, but SOCKUDO_DB_PATH=%s lives in %s", d.volumes, d.env["SOCKUDO_DB_PATH"], dir)
	}
	if len(d.healthcheck) != 2 || d.healthcheck[0] != "/sockudo" || d.healthcheck[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK CMD %q, want [/sockudo healthcheck]", d.healthcheck)
	}
	// The build image's Go is the go.mod's.
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if len(d.from) == 0 || goLine == nil || !strings.HasPrefix(d.from[0], "golang:"+string(goLine[1])) {
		t.Errorf("Dockerfile builds with %v, go.mod wants go %s", d.from, goLine)
	}
	if !strings.Contains(d.from[len(d.from)-1], "distroless") || !strings.HasSuffix(d.from[len(d.from)-1], ":nonroot") {
		t.Errorf("the run stage %q is not distroless nonroot", d.from[len(d.from)-1])
	}
}

// TestHealthCheckReachesUp: the healthcheck subcommand and fly's HTTP check
// both get 200 from the server's readiness route.
func TestHealthCheckReachesUp(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(filepath.Join(t.TempDir(), "sockudo.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv, err := server.New(cfg.ServerConfig(), db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.MarkReady()
	hs := httptest.NewServer(srv.Handler()) // loopback
	defer hs.Close()
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())

	if r := runMain(t, map[string]string{"HOST": "127.0.0.1", "PORT": port}, "healthcheck"); r.code != 0 {
		t.Errorf("healthcheck against a ready server: %+v", r)
	}
	fly := parseFly(t)
	check := fly["http_service.checks"]
	resp, err := http.Get(hs.URL + check["path"])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if check["method"] != "GET" || resp.StatusCode != http.StatusOK {
		t.Errorf("fly's check %s %s answers %d", check["method"], check["path"], resp.StatusCode)
	}
}

// TestFlyTomlAgreesWithCode: fly.toml's ports, variables, volume and kill
// timeout.
func TestFlyTomlAgreesWithCode(t *testing.T) {
	fly := parseFly(t)
	def, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	env := fly["env"]
	checkEnvNames(t, "fly.toml", env)
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if p := atoi(t, "internal_port", fly["http_service"]["internal_port"]); p != def.Listen.Port || p != cfg.Listen.Port {
		t.Errorf("fly internal_port %d, the default PORT %d, fly's PORT %d", p, def.Listen.Port, cfg.Listen.Port)
	}
	if p := atoi(t, "[metrics] port", fly["metrics"]["port"]); p != cfg.Metrics.Port || !cfg.Metrics.Enabled ||
		cfg.Metrics.Host != "0.0.0.0" {
		t.Errorf("fly scrapes metrics on %d, the server serves them on %s:%d (enabled %v)", p, cfg.Metrics.Host,
			cfg.Metrics.Port, cfg.Metrics.Enabled)
	}
	if fly["metrics"]["path"] != "/metrics" {
		t.Errorf("fly metrics path %q", fly["metrics"]["path"])
	}
	if dst := fly["mounts"]["destination"]; dst != filepath.Dir(cfg.Storage.DBPath) {
		t.Errorf("fly mounts %s, but SOCKUDO_DB_PATH=%s", dst, cfg.Storage.DBPath)
	}
	kill := time.Duration(atoi(t, "kill_timeout", fly[""]["kill_timeout"])) * time.Second
	for _, grace := range []time.Duration{def.Listen.ShutdownGracePeriod, cfg.Listen.ShutdownGracePeriod} {
		if kill <= grace {
			t.Errorf("fly kill_timeout %s is not longer than the drain period %s", kill, grace)
		}
	}
	if fly[""]["kill_signal"] != "SIGTERM" {
		t.Errorf("fly kill_signal %q: serve drains on SIGTERM", fly[""]["kill_signal"])
	}
	if fly["build"]["dockerfile"] != "Dockerfile" {
		t.Errorf("fly builds %q", fly["build"]["dockerfile"])
	}
}

// TestComposeExample: deploy/docker-compose.yml runs Redis mode with two
// nodes behind the proxy in deploy/nginx.conf, with variables sockudo reads.
func TestComposeExample(t *testing.T) {
	raw, err := os.ReadFile("deploy/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(raw)
	// logicalLines trims indentation; read the keys from the raw lines.
	env := map[string]string{}
	key := regexp.MustCompile(`(?m)^\s+([A-Z][A-Z0-9_]*):[ \t]*(.*)$`)
	for _, m := range key.FindAllStringSubmatch(compose, -1) {
		env[m[1]] = strings.Trim(strings.TrimSpace(m[2]), `"`)
	}
	if strings.HasPrefix(env["SOCKUDO_DEFAULT_APP_SECRET"], "${") {
		env["SOCKUDO_DEFAULT_APP_SECRET"] = "a-secret-the-operator-sets"
	}
	checkEnvNames(t, "deploy/docker-compose.yml", env)
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Cluster.redis() || !strings.Contains(cfg.Cluster.RedisURL, "//redis:") {
		t.Errorf("compose is not in Redis mode on the redis service: %s %s", cfg.Cluster.Driver, cfg.Cluster.RedisURL)
	}
	for _, svc := range []string{"redis:", "sockudo-1:", "sockudo-2:", "proxy:"} {
		if !strings.Contains(compose, "\n  "+svc) {
			t.Errorf("compose has no service %s", svc)
		}
	}
	if !strings.Contains(compose, "./nginx.conf:") {
		t.Error("compose does not mount deploy/nginx.conf")
	}
	grace := regexp.MustCompile(`stop_grace_period: (\d+)s`).FindStringSubmatch(compose)
	if grace == nil || time.Duration(atoi(t, "stop_grace_period", grace[1]))*time.Second <= cfg.Listen.ShutdownGracePeriod {
		t.Errorf("compose stop_grace_period %v is not longer than SHUTDOWN_GRACE_PERIOD %s", grace, cfg.Listen.ShutdownGracePeriod)
	}
	nginx, err := os.ReadFile("deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	servers := regexp.MustCompile(`server (sockudo-\d):(\d+);`).FindAllStringSubmatch(string(nginx), -1)
	if len(servers) != 2 {
		t.Fatalf("nginx.conf upstream %v, want the two nodes", servers)
	}
	for _, s := range servers {
		if atoi(t, "nginx upstream port", s[2]) != cfg.Listen.Port {
			t.Errorf("nginx sends to %s:%s, the nodes listen on %d", s[1], s[2], cfg.Listen.Port)
		}
	}
	for _, want := range []string{"proxy_set_header Upgrade $http_upgrade", `proxy_set_header Connection "upgrade"`,
		"X-Forwarded-For"} {
		if !strings.Contains(string(nginx), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if cfg.RateLimit.TrustedProxies == nil {
		t.Error("compose sets no TRUSTED_PROXIES: every client would share the proxy's rate limits")
	}
	// The published port reaches the port nginx listens on.
	published := regexp.MustCompile(`(?m)^\s+- "(\d+):(\d+)"`).FindAllStringSubmatch(compose, -1)
	listen := regexp.MustCompile(`listen (\d+);`).FindStringSubmatch(string(nginx))
	if len(published) != 1 || listen == nil || published[0][2] != listen[1] {
		t.Errorf("compose publishes %v, nginx listens on %v: they must be one port", published, listen)
	}
	// nginx must not cut idle sockets the server still keeps: the server's
	// ping comes up to an eighth of the activity period late (jitter) and
	// the answer may take the pong wait.
	read := regexp.MustCompile(`proxy_read_timeout (\d+)s;`).FindStringSubmatch(string(nginx))
	quiet := cfg.Socket.ActivityTimeout + cfg.Socket.ActivityTimeout/8 + pongTimeout
	if read == nil || time.Duration(atoi(t, "proxy_read_timeout", read[1]))*time.Second <= quiet {
		t.Errorf("nginx proxy_read_timeout %v is not longer than ACTIVITY_TIMEOUT x 1.125 + 30 s (%s)", read, quiet)
	}
	// Metrics are bound for scraping inside the compose network only: no
	// published port may expose them.
	for _, p := range published {
		if atoi(t, "published port", p[2]) == cfg.Metrics.Port {
			t.Errorf("compose publishes METRICS_PORT %d", cfg.Metrics.Port)
		}
	}
}

// TestComposeConfigValid has docker compose itself parse the example
// (no daemon needed). Skipped where the compose plugin is absent.
func TestComposeConfigValid(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("the docker CLI is not installed: deploy/docker-compose.yml is only checked by TestComposeExample")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, docker, "compose", "version").CombinedOutput(); err != nil {
		t.Skipf("the docker compose plugin is not installed (docker compose version: %s): "+
			"deploy/docker-compose.yml is only checked by TestComposeExample", strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	cmd := exec.CommandContext(ctx, docker, "compose", "-f", "deploy/docker-compose.yml", "config", "-q")
	cmd.Env = append(os.Environ(), "SOCKUDO_DEFAULT_APP_SECRET=a-secret-the-operator-sets")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}

// shellWords splits s on spaces, keeping double-quoted parts together.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, has := false, false
	for _, r := range s {
		switch {
		case r == '"':
			in, has = !in, true
		case r == ' ' && !in:
			if has {
				out = append(out, cur.String())
			}
			cur.Reset()
			has = false
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if has {
		out = append(out, cur.String())
	}
	return out
}

// TestBuildWithDockerfileFlags builds the binary with the Dockerfile's
// environment and flags and reports its size (stated in the README).
func TestBuildWithDockerfileFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	d := parseDockerfile(t)
	words := shellWords(d.build)
	var env, flags []string
	i := 0
	for i < len(words) && strings.HasPrefix(words[i], "--") { // RUN --mount=...
		i++
	}
	for ; i < len(words) && strings.Contains(words[i], "="); i++ {
		env = append(env, words[i]) // CGO_ENABLED=0
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		t.Fatalf("the Dockerfile's build step is not 'VAR=v go build ...': %q", d.build)
	}
	for i += 2; i < len(words) && words[i] != "-o"; i++ {
		flags = append(flags, os.Expand(words[i], func(k string) string { return d.args[k] }))
	}
	if !slices.Contains(env, "CGO_ENABLED=0") || !slices.Contains(flags, "-trimpath") {
		t.Errorf("the build is not static and trimmed: env %v flags %v", env, flags)
	}
	out := filepath.Join(t.TempDir(), "sockudo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"build"}, flags...), "-o", out, ".")...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", flags, err, b)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stripped binary (%s): %d bytes (%.1f MiB)", strings.Join(flags, " "), st.Size(), float64(st.Size())/(1<<20))
	// The README states the size; a binary far from it means the README
	// needs updating.
	if st.Size() > 40<<20 {
		t.Errorf("the binary is %.1f MiB, over the 40 MiB budget", float64(st.Size())/(1<<20))
	}
	v, err := exec.CommandContext(ctx, out, "version").Output()
	if want := "sockudo " + d.args["VERSION"] + " ("; err != nil || !strings.HasPrefix(string(v), want) {
		t.Errorf("built binary's version: %q %v, want %q", v, err, want)
	}
}
