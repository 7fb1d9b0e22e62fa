package cli

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/up" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer ts.Close()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"HOST": host, "PORT": port}
	if r := runCLI(t, env, "healthcheck"); r.code != 0 {
		t.Errorf("healthy server: exit %d, %s", r.code, r.stderr)
	}
	// A wildcard HOST is checked on loopback.
	if r := runCLI(t, map[string]string{"HOST": "0.0.0.0", "PORT": port}, "healthcheck"); r.code != 0 {
		t.Errorf("healthy server via 0.0.0.0: exit %d, %s", r.code, r.stderr)
	}
	status = http.StatusServiceUnavailable
	if r := runCLI(t, env, "healthcheck"); r.code != 1 || !strings.Contains(r.stderr, "503") {
		t.Errorf("unready server: exit %d, %s", r.code, r.stderr)
	}

	if r := runCLI(t, map[string]string{"PORT": "x"}, "healthcheck"); r.code != 1 || !strings.Contains(r.stderr, "healthcheck: PORT") {
		t.Errorf("bad PORT: exit %d, %s", r.code, r.stderr)
	}

	// Nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	if r := runCLI(t, map[string]string{"HOST": "127.0.0.1", "PORT": closedPort}, "healthcheck"); r.code != 1 {
		t.Errorf("no server: exit %d", r.code)
	}
}
