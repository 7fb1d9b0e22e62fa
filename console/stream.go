package console

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockudo/sockudo/server"
	"github.com/sockudo/sockudo/storage"
	"github.com/sockudo/sockudo/webhooks"
)

// Kinds of Event besides server's Observe* kinds.
const (
	KindWebhook = "webhook"
	KindPush    = "push_publish"
)

// Event is one line of the live stream. It never carries a secret, a
// device token, a signature or an event payload.
type Event struct {
	Time     time.Time `json:"time"`
	App      string    `json:"app_id"`
	Kind     string    `json:"kind"`
	Channel  string    `json:"channel,omitempty"`
	Event    string    `json:"event,omitempty"`
	SocketID string    `json:"socket_id,omitempty"`
	UserID   string    `json:"user_id,omitempty"`
	// Detail is a short description: a webhook's outcome and target, a
	// push publish's state.
	Detail string `json:"detail,omitempty"`
}

// subscriber is one open event stream. ch is bounded: a full buffer drops
// the event and counts it.
type subscriber struct {
	app     string
	ch      chan []byte
	dropped atomic.Uint64
}

// stream fans observations out to the open event streams without ever
// blocking the caller.
type stream struct {
	mu    sync.RWMutex // guards subs
	subs  map[*subscriber]struct{}
	buf   int                 // per-subscriber buffer, in events
	max   int                 // streams open at once
	watch func(watching bool) // called on 0→1 and 1→0 streams, under mu
	// dropped counts the events lost by every stream, for metrics.
	dropped atomic.Uint64
}

func newStream(buf, max int, watch func(bool)) *stream {
	if watch == nil {
		watch = func(bool) {}
	}
	return &stream{subs: make(map[*subscriber]struct{}), buf: buf, max: max, watch: watch}
}

// add opens a stream for app; nil when max streams are open.
func (st *stream) add(app string) *subscriber {
	s := &subscriber{app: app, ch: make(chan []byte, st.buf)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.subs) >= st.max {
		return nil
	}
	st.subs[s] = struct{}{}
	if len(st.subs) == 1 {
		st.watch(true)
	}
	return s
}

func (st *stream) remove(s *subscriber) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.subs[s]; !ok {
		return
	}
	delete(st.subs, s)
	if len(st.subs) == 0 {
		st.watch(false)
	}
}

// publish queues e on every stream of its app. It encodes e once, and only
// if some stream wants it; a full stream drops it.
func (st *stream) publish(e Event) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var b []byte
	for s := range st.subs {
		if s.app != e.App {
			continue
		}
		if b == nil {
			var err error
			if b, err = json.Marshal(e); err != nil {
				return
			}
		}
		select {
		case s.ch <- b:
		default:
			s.dropped.Add(1)
			st.dropped.Add(1)
		}
	}
}

// Observe takes a server observation (server.Observer).
func (c *Console) Observe(o server.Observation) {
	c.stream.publish(Event{Time: o.Time, App: o.App, Kind: o.Kind, Channel: o.Channel, Event: o.Event,
		SocketID: o.SocketID, UserID: o.UserID})
}

var _ server.Observer = (*Console)(nil)

// ObserveDelivery takes a webhook delivery report (webhooks.Dispatcher's
// SetObserver). The URL is already redacted.
func (c *Console) ObserveDelivery(d webhooks.Delivery) {
	outcome, detail := "failed", ""
	switch d.Outcome {
	case webhooks.DeliveryDelivered:
		outcome, detail = "delivered", strconv.Itoa(d.Events)+" event(s) to "+d.URL
	case webhooks.DeliveryRetry:
		detail = "retried, or dead-lettered after the last attempt: " + d.URL
	default:
		detail = "dead-lettered: " + d.URL
	}
	if d.Reason != "" {
		detail += " — " + d.Reason
	}
	c.stream.publish(Event{Time: time.Now(), App: d.App, Kind: KindWebhook, Event: outcome, Detail: detail})
}

// ObservePushAccepted reports a push publish the push API accepted, when
// it is accepted: its id, state (queued, or scheduled for sendAt) and how
// many deliveries it planned.
func (c *Console) ObservePushAccepted(app, publishID, state string, planned int, sendAt time.Time) {
	if !c.Watching() {
		return
	}
	detail := "publish " + publishID + " accepted, " + state + ": " + strconv.Itoa(planned) + " device(s) planned"
	if !sendAt.IsZero() {
		detail += ", sending at " + sendAt.UTC().Format(time.RFC3339)
	}
	c.stream.publish(Event{Time: time.Now(), App: app, Kind: KindPush, Event: state, Detail: detail})
}

// ObservePush reports a finished push publish: its id, final state and
// delivery counts. Never its body, recipients or devices.
func (c *Console) ObservePush(p storage.PushPublish) {
	if !c.Watching() {
		return
	}
	n := p.Counters
	detail := fmt.Sprintf("publish %s finished, %s: %d planned, %d sent, %d failed, %d invalidated", p.ID, p.State,
		n.Planned, n.Sent, n.Failed, n.Invalidated)
	if n.Cancelled > 0 {
		detail += ", " + strconv.Itoa(n.Cancelled) + " cancelled"
	}
	if len(n.ErrorsByReason) > 0 {
		reasons := make([]string, 0, len(n.ErrorsByReason))
		for r, k := range n.ErrorsByReason {
			reasons = append(reasons, r+" "+strconv.Itoa(k))
		}
		sort.Strings(reasons)
		detail += " (" + strings.Join(reasons, ", ") + ")"
	}
	c.stream.publish(Event{Time: time.Now(), App: p.App, Kind: KindPush, Event: p.State, Detail: detail})
}

// Dropped is the number of events lost by event streams that read too
// slowly, since New.
func (c *Console) Dropped() uint64 { return c.stream.dropped.Load() }

// Watching reports whether an event stream is open; observation sources
// outside the server check it before building an event.
func (c *Console) Watching() bool { return c.watching.Load() }
