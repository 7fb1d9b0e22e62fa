package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

type chanObserver chan Observation

func (c chanObserver) Observe(o Observation) {
	select {
	case c <- o:
	default:
	}
}

func (c chanObserver) expect(t *testing.T, kind string) Observation {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case o := <-c:
			if o.Kind == kind {
				return o
			}
		case <-timer.C:
			t.Fatalf("no %s observation", kind)
			return Observation{}
		}
	}
}

func TestObserverSeesTheLifeOfASocket(t *testing.T) {
	ts := newTestServer(t, Config{})
	obs := make(chanObserver, 64)
	ts.SetObserver(obs)
	c := ts.dial(t)
	if o := obs.expect(t, ObserveConnected); o.App != "app-id" || o.SocketID != c.socketID {
		t.Fatalf("connected: %+v", o)
	}
	c.subscribe("chat")
	if o := obs.expect(t, ObserveSubscribed); o.Channel != "chat" || o.SocketID != c.socketID {
		t.Fatalf("subscribed: %+v", o)
	}
	ts.trigger(t, "chat", "greet", "hi")
	if o := obs.expect(t, ObserveAPIEvent); o.Channel != "chat" || o.Event != "greet" {
		t.Fatalf("api event: %+v", o)
	}
	c.expect("greet")
	if err := ts.Trigger(context.Background(), "app-id", "chat", "from-console", "{}"); err != nil {
		t.Fatal(err)
	}
	c.expect("from-console")
	c.sendJSON(`{"event":"pusher:unsubscribe","data":{"channel":"chat"}}`)
	obs.expect(t, ObserveUnsubscribed)
	c.ws.NetConn().Close()
	obs.expect(t, ObserveDisconnected)

	st, ok := ts.AppStats("app-id")
	if !ok || st.MessagesIn < 3 || st.MessagesOut < 2 {
		t.Fatalf("stats %+v %v", st, ok)
	}
	// Removed: nothing more is observed.
	ts.SetObserver(nil)
	ts.dial(t)
	select {
	case o := <-obs:
		t.Fatalf("observed after removal: %+v", o)
	default:
	}
}

func TestTriggerRefusesBadNamesAndUnknownApps(t *testing.T) {
	ts := newTestServer(t, Config{})
	if err := ts.Trigger(context.Background(), "nope", "chat", "e", ""); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}
	if err := ts.Trigger(context.Background(), "app-id", "bad name", "e", ""); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("bad channel: %v", err)
	}
	if id, secrets, ok := ts.AppByKey("app-key"); !ok || id != "app-id" || len(secrets) != 1 {
		t.Fatalf("AppByKey: %q %d %v", id, len(secrets), ok)
	}
	if ids := ts.AppIDs(); len(ids) != 1 || ids[0] != "app-id" {
		t.Fatalf("AppIDs: %v", ids)
	}
}

// TestObserveUnwatchedIsFree: with no observer an observation point is an
// atomic load: no allocation.
func TestObserveUnwatchedIsFree(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := &conn{app: ts.apps.byID("app-id"), socketID: "1.2"}
	if n := testing.AllocsPerRun(1000, func() {
		ts.observe(ObserveAPIEvent, "app-id", "chat", "e", "", "")
		ts.observeConn(c, true)
	}); n != 0 {
		t.Fatalf("%v allocations per unwatched observation", n)
	}
}
