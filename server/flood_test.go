package server

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// TestFloodLeavesServerResponsive opens thousands of connections from one
// IP and sends a burst of bad-signature API calls while a well-behaved
// client keeps publishing to itself. The floods are refused (4100 / 401)
// and the client is served throughout. Durations are logged, not asserted.
func TestFloodLeavesServerResponsive(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test")
	}
	ts := newTestServer(t, Config{Limits: Limits{WSConnect: limiter(50)}})
	good := ts.dial(t)
	good.subscribe("steady")

	// Baseline: the same publish→receive round without a flood.
	var calm time.Duration
	for i := 0; i < 100; i++ {
		t0 := time.Now()
		ts.trigger(t, "steady", "tick", "1")
		good.expect("tick")
		calm = max(calm, time.Since(t0))
	}

	const conns, badCalls = 2000, 2000
	var refused, opened, unauthorized atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < conns/8; i++ {
				h := &floodHandler{done: make(chan struct{})}
				ws, _, err := gws.NewClient(h, &gws.ClientOption{Addr: "ws://" + ts.addr + "/app/app-key"})
				if err != nil {
					continue
				}
				go ws.ReadLoop()
				<-h.done
				if h.code == 4100 {
					refused.Add(1)
				} else {
					opened.Add(1)
				}
			}
		}()
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < badCalls/8; i++ {
				url := "http://" + ts.addr + "/apps/app-id/events?auth_key=app-key&auth_timestamp=" +
					strings.Repeat("1", 10) + "&auth_version=1.0&body_md5=x&auth_signature=00"
				resp, err := http.Post(url, "application/json", strings.NewReader(`{"name":"e","channel":"c","data":"x"}`))
				if err == nil {
					if resp.StatusCode == 401 {
						unauthorized.Add(1)
					}
					resp.Body.Close()
				}
			}
		}()
	}
	go func() { wg.Wait(); close(stop) }()

	// The well-behaved client: publish and receive until the floods end.
	var worst time.Duration
	rounds := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		t0 := time.Now()
		ts.trigger(t, "steady", "tick", "1")
		good.expect("tick")
		if d := time.Since(t0); d > worst {
			worst = d
		}
		rounds++
	}
	t.Logf("flood: %d connection attempts (%d refused with 4100, %d let in by the 50/min budget), %d bad-signature calls (%d answered 401) in %s; "+
		"the good client did %d publish→receive rounds, worst %s (worst of 100 calm rounds before: %s)",
		conns, refused.Load(), opened.Load(), badCalls, unauthorized.Load(), time.Since(start).Round(time.Millisecond), rounds, worst.Round(time.Microsecond), calm.Round(time.Microsecond))
	if refused.Load() < conns-100 || unauthorized.Load() != badCalls {
		t.Fatalf("floods not refused: %d/%d sockets refused, %d/%d calls 401", refused.Load(), conns, unauthorized.Load(), badCalls)
	}
}

// floodHandler waits for the server to close a flood socket, or closes an
// admitted one itself.
type floodHandler struct {
	gws.BuiltinEventHandler
	code uint16
	done chan struct{}
}

func (h *floodHandler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if strings.Contains(string(m.Bytes()), "connection_established") {
		_ = c.NetConn().Close()
	}
}

func (h *floodHandler) OnClose(_ *gws.Conn, err error) {
	if ce, ok := err.(*gws.CloseError); ok {
		h.code = ce.Code
	}
	close(h.done)
}
