package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/server"
)

// Broker is the server.Broker of Redis mode. Everything a node publishes
// goes to this node's handler directly (local clients never wait for
// Redis, and keep receiving while it is down) and to the other nodes over
// one pub/sub channel, "<prefix>:bus", encoded once per event. Each node
// skips what it published itself. Cache channels' last events are Redis
// strings with a PX expiry.
type Broker struct {
	n  *Node
	h  atomic.Pointer[handlerBox] // set once by Register
	ch string

	// subscribed is closed once the first SUBSCRIBE is confirmed; ready
	// tracks the current subscription (false while reconnecting).
	subscribed chan struct{}
	ready      atomic.Bool
	first      atomic.Bool
}

type handlerBox struct{ h server.BrokerHandler }

var _ server.Broker = (*Broker)(nil)

// NewBroker returns n's broker; Run receives the other nodes' messages.
func NewBroker(n *Node) *Broker {
	return &Broker{n: n, ch: n.key("bus"), subscribed: make(chan struct{})}
}

// Register installs the server's handler.
func (b *Broker) Register(h server.BrokerHandler) error {
	if h == nil {
		return errors.New("cluster: nil broker handler")
	}
	b.h.Store(&handlerBox{h})
	return nil
}

// Publish delivers m here, then to the other nodes. A Redis failure is
// returned after local delivery happened.
func (b *Broker) Publish(ctx context.Context, m server.Message) error {
	if hb := b.h.Load(); hb != nil {
		hb.h.HandleMessage(m)
	}
	return b.send(ctx, "publish", encodeMessage(b.n.id, m))
}

// Command runs c here, then on the other nodes.
func (b *Broker) Command(ctx context.Context, c server.Command) error {
	if hb := b.h.Load(); hb != nil {
		hb.h.HandleCommand(c)
	}
	return b.send(ctx, "command", encodeCommand(b.n.id, c))
}

func (b *Broker) send(ctx context.Context, op string, payload []byte) error {
	if b.n.degraded() {
		return errDegraded
	}
	ctx, cancel := b.n.opContext(ctx)
	defer cancel()
	return b.n.observe(op, b.n.rdb.Publish(ctx, b.ch, payload).Err())
}

// SetCache stores e as the channel's last event until e.Expires.
func (b *Broker) SetCache(ctx context.Context, app, channel string, e server.CacheEntry) error {
	ttl := time.Until(e.Expires)
	if ttl <= 0 {
		return nil
	}
	if b.n.degraded() {
		return errDegraded
	}
	ctx, cancel := b.n.opContext(ctx)
	defer cancel()
	return b.n.observe("cache set", b.n.rdb.Set(ctx, b.cacheKey(app, channel), encodeCache(e), ttl).Err())
}

// Cache returns the channel's last unexpired event.
func (b *Broker) Cache(ctx context.Context, app, channel string) (server.CacheEntry, bool, error) {
	if b.n.degraded() {
		return server.CacheEntry{}, false, errDegraded
	}
	ctx, cancel := b.n.opContext(ctx)
	defer cancel()
	k := b.cacheKey(app, channel)
	pipe := b.n.rdb.Pipeline()
	get := pipe.Get(ctx, k)
	pttl := pipe.PTTL(ctx, k)
	_, err := pipe.Exec(ctx)
	if errors.Is(err, redis.Nil) {
		return server.CacheEntry{}, false, nil
	}
	if err != nil {
		return server.CacheEntry{}, false, b.n.observe("cache get", err)
	}
	raw, _ := get.Bytes()
	e, ok := decodeCache(raw)
	if !ok {
		return server.CacheEntry{}, false, errors.New("cluster: malformed cache entry")
	}
	e.Expires = time.Now().Add(pttl.Val())
	return e, true, nil
}

func (b *Broker) cacheKey(app, channel string) string {
	return b.n.key("cache", app, channel)
}

// Subscribed is closed once this node receives the other nodes' messages
// for the first time; tests and readiness wait on it.
func (b *Broker) Subscribed() <-chan struct{} { return b.subscribed }

// Ready reports whether the subscription is live now.
func (b *Broker) Ready() bool { return b.ready.Load() }

// Run receives the other nodes' messages until ctx ends, resubscribing
// with backoff after a failure. Its caller owns it.
func (b *Broker) Run(ctx context.Context) {
	wait := 100 * time.Millisecond
	const maxWait = 5 * time.Second
	for ctx.Err() == nil {
		if b.receive(ctx) {
			wait = 100 * time.Millisecond // it worked for a while: retry soon
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxWait)
	}
}

// receive runs one subscription until it fails; it reports whether the
// subscription was established.
func (b *Broker) receive(ctx context.Context) bool {
	ps := b.n.rdb.Subscribe(ctx)
	defer ps.Close()
	defer b.ready.Store(false)
	// A read without deadline does not watch ctx: closing the
	// subscription is what ends it at shutdown.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	sctx, cancel := b.n.opContext(ctx)
	err := ps.Subscribe(sctx, b.ch)
	if err == nil {
		_, err = ps.ReceiveTimeout(sctx, b.n.cfg.OpTimeout) // the confirmation
	}
	cancel()
	if err != nil {
		_ = b.n.observe("subscribe", err)
		return false
	}
	b.ready.Store(true)
	if !b.first.Swap(true) {
		close(b.subscribed)
	}
	for {
		// No read deadline: a quiet cluster sends nothing; Node.Run's
		// pings find an outage, and a closed connection ends this read.
		msg, err := ps.ReceiveTimeout(ctx, 0)
		if err != nil {
			if ctx.Err() == nil {
				_ = b.n.observe("receive", err)
			}
			return true
		}
		if m, ok := msg.(*redis.Message); ok {
			b.dispatch([]byte(m.Payload))
		}
	}
}

// dispatch hands one bus payload to the handler, skipping this node's own
// and anything it cannot decode (a newer node's format, or garbage).
func (b *Broker) dispatch(p []byte) {
	hb := b.h.Load()
	if hb == nil {
		return
	}
	origin, kind, r, ok := decodeHeader(p)
	if !ok || origin == b.n.id {
		return
	}
	switch kind {
	case kindMessage:
		if m, ok := decodeMessage(r); ok {
			hb.h.HandleMessage(m)
		}
	case kindCommand:
		if c, ok := decodeCommand(r); ok {
			hb.h.HandleCommand(c)
		}
	}
}

// The bus format: version, kind, origin node id, then length-prefixed
// fields. Binary so that a frame crosses as is, with no second encode.
const (
	busVersion  = 1
	kindMessage = 1
	kindCommand = 2
)

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHeader(origin string, kind byte, size int) []byte {
	b := make([]byte, 0, 3+len(origin)+size)
	b = append(b, busVersion, kind)
	return appendField(b, origin)
}

func encodeMessage(origin string, m server.Message) []byte {
	b := appendHeader(origin, kindMessage, len(m.App)+len(m.Channel)+len(m.User)+len(m.Except)+len(m.Frame)+20)
	b = appendField(b, m.App)
	b = appendField(b, m.Channel)
	b = appendField(b, m.User)
	b = appendField(b, m.Except)
	b = binary.AppendUvarint(b, uint64(len(m.Frame)))
	return append(b, m.Frame...)
}

func encodeCommand(origin string, c server.Command) []byte {
	b := appendHeader(origin, kindCommand, len(c.App)+len(c.User)+8)
	b = append(b, byte(c.Kind))
	b = appendField(b, c.App)
	return appendField(b, c.User)
}

// reader walks a payload; any short or oversize field sets bad.
type reader struct {
	p   []byte
	bad bool
}

func (r *reader) bytes() []byte {
	n, w := binary.Uvarint(r.p)
	if w <= 0 || n > uint64(len(r.p)-w) {
		r.bad = true
		r.p = nil
		return nil
	}
	out := r.p[w : w+int(n)]
	r.p = r.p[w+int(n):]
	return out
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) byte() byte {
	if len(r.p) == 0 {
		r.bad = true
		return 0
	}
	c := r.p[0]
	r.p = r.p[1:]
	return c
}

func decodeHeader(p []byte) (origin string, kind byte, r *reader, ok bool) {
	r = &reader{p: p}
	if r.byte() != busVersion {
		return "", 0, nil, false
	}
	kind = r.byte()
	origin = r.str()
	return origin, kind, r, !r.bad
}

func decodeMessage(r *reader) (server.Message, bool) {
	m := server.Message{App: r.str(), Channel: r.str(), User: r.str(), Except: r.str()}
	m.Frame = r.bytes()
	return m, !r.bad && len(r.p) == 0 && m.App != ""
}

func decodeCommand(r *reader) (server.Command, bool) {
	c := server.Command{Kind: server.CommandKind(r.byte()), App: r.str(), User: r.str()}
	return c, !r.bad && len(r.p) == 0 && c.App != ""
}

func encodeCache(e server.CacheEntry) []byte {
	b := make([]byte, 0, len(e.Event)+len(e.Data)+len(e.Frame)+12)
	b = appendField(b, e.Event)
	b = appendField(b, e.Data)
	b = binary.AppendUvarint(b, uint64(len(e.Frame)))
	return append(b, e.Frame...)
}

func decodeCache(p []byte) (server.CacheEntry, bool) {
	r := &reader{p: p}
	e := server.CacheEntry{Event: r.str(), Data: r.str()}
	e.Frame = r.bytes()
	return e, !r.bad && len(r.p) == 0
}
