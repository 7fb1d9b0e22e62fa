package server

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/sockudo/sockudo/storage"
)

// TestUpDegraded: a failing dependency check keeps /up at 200 (the node
// still serves its clients) and names the problem.
func TestUpDegraded(t *testing.T) {
	var down atomic.Bool
	store := &memStore{apps: []storage.App{testApp()}}
	s, err := New(Config{}, store, nil, WithHealthCheck("redis", func() error {
		if down.Load() {
			return errors.New("dial tcp 127.0.0.1:6379: connection refused")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	ts := serveTest(t, s, store)
	get := func() (int, string) {
		resp, err := http.Get("http://" + ts.addr + "/up")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != `{"ok":true}` {
		t.Fatalf("healthy: %d %s", code, body)
	}
	down.Store(true)
	if code, body := get(); code != 200 || body != `{"ok":true,"degraded":{"redis":"dial tcp 127.0.0.1:6379: connection refused"}}` {
		t.Fatalf("degraded: %d %s", code, body)
	}
}
