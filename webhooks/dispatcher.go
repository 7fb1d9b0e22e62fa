package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockudo/sockudo/internal/netguard"
	"github.com/sockudo/sockudo/storage"
)

// appState is one app as the dispatcher sees it.
type appState struct {
	id, key string
	// secret signs the app's webhooks; never logged.
	secret  string
	targets []*target
	// wants is the set of events the gate must see: those some target
	// takes, plus those that cancel or clean up after them.
	wants eventMask
	// tracks is channel_vacated and/or member_removed when a target takes
	// them: occupancy is then recorded, so a crash still reports them.
	tracks eventMask
}

// snapshot is the configuration the dispatcher works with, replaced as a
// whole by Reload and read without locks.
type snapshot struct {
	apps    map[string]*appState  // apps with at least one target
	targets map[[2]string]*target // by app id and URL
}

// Dispatcher delivers an app's webhooks: it gates and filters the events
// the server reports (Emit), writes them to the durable queue in storage,
// and runs one delivery loop per target. Create it with New, start it with
// Start, stop it with Close. Its methods are safe for concurrent use.
type Dispatcher struct {
	cfg    Config
	db     *storage.DB
	log    *slog.Logger
	warn   *warner
	client *http.Client
	clock  clock
	jitter func() float64

	state atomic.Pointer[snapshot]

	observer atomic.Pointer[deliveryObserver] // SetObserver; nil when none

	loopsMu sync.Mutex // serialises Reload and Start; guards queues, runCtx and each queue's stop/done
	// queues holds the queue of every configured target.
	queues map[[2]string]*queue
	// runCtx is the context of the delivery loops; nil before Start.
	runCtx context.Context

	mu sync.Mutex // guards closed, buf and the gate state below
	// closed refuses Emit after Close began.
	closed bool
	// buf holds events not yet committed to storage.
	buf []pendingEntry
	// occ holds occupancy changes not yet committed (see appState.tracks).
	occ       []storage.OccupancyChange
	vacated   map[chanKey]*timed
	removed   map[memberKey]*timed
	cacheMiss map[chanKey]*timed
	counts    map[chanKey]*countState
	due       timedHeap
	dueSeq    uint64

	persistNow  chan struct{} // cap 1: buf has entries
	gateWake    chan struct{} // cap 1: a new earliest decision
	stopPersist chan struct{} // closed by Close
	persistDone chan struct{} // closed when the persister has exited

	started   atomic.Bool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	sem       chan struct{} // request slots
	closeOnce sync.Once
	closeErr  error

	queued, commits, sent, failed, retried, deadLettered, dropped, queueFull, coalesced atomic.Uint64
}

// New returns a Dispatcher for the apps stored in db, validating cfg and
// every app's webhook targets. It starts no goroutine: events emitted before
// Start wait in memory. log receives warnings (rate limited) and errors.
func New(cfg Config, db *storage.DB, log *slog.Logger) (*Dispatcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		cfg: cfg, db: db, log: log,
		client: netguard.NewHTTPClient(netguard.Config{Timeout: cfg.Timeout, AllowPrivate: cfg.AllowPrivateTargets,
			Refused: ErrForbiddenAddress}),
		clock:       realClock{},
		jitter:      rand.Float64,
		queues:      map[[2]string]*queue{},
		vacated:     map[chanKey]*timed{},
		removed:     map[memberKey]*timed{},
		cacheMiss:   map[chanKey]*timed{},
		counts:      map[chanKey]*countState{},
		persistNow:  make(chan struct{}, 1),
		gateWake:    make(chan struct{}, 1),
		stopPersist: make(chan struct{}),
		persistDone: make(chan struct{}),
		sem:         make(chan struct{}, cfg.MaxConcurrency),
	}
	d.warn = newWarner(log, d.clock)
	if err := d.Reload(); err != nil {
		return nil, err
	}
	return d, nil
}

// Reload reads the apps from storage again and applies their webhook
// targets: new targets start delivering, removed ones stop and their queued
// events become dead letters, changed ones take effect for the next request
// (a target is identified by app and URL; its backoff survives). A rotated
// secret signs the next request. If a stored target is invalid, Reload
// changes nothing and returns the error. Call it after apps change while the
// server runs (the admin socket does).
func (d *Dispatcher) Reload() error {
	d.loopsMu.Lock()
	defer d.loopsMu.Unlock()
	// Only apps with webhooks have state here; the others are not decoded.
	apps, err := d.db.AppsWithWebhooks()
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	snap := &snapshot{apps: map[string]*appState{}, targets: map[[2]string]*target{}}
	for _, a := range apps {
		as := &appState{id: a.ID, key: a.Key, secret: a.Secret}
		for i, w := range a.Webhooks {
			t, err := compileTarget(a.ID, w, d.cfg.Batching)
			if err != nil {
				return fmt.Errorf("webhooks: app %s: webhooks[%d].%w", a.ID, i, err)
			}
			k := [2]string{a.ID, w.URL}
			if snap.targets[k] != nil {
				return fmt.Errorf("webhooks: app %s: webhooks[%d].url: used twice", a.ID, i)
			}
			snap.targets[k] = t
			as.targets = append(as.targets, t)
			as.wants |= t.types
		}
		if len(as.targets) == 0 {
			continue
		}
		as.tracks = as.wants & (bit(ChannelVacated) | bit(MemberRemoved))
		// Events that cancel or clean up after wanted ones.
		if as.wants&bit(ChannelVacated) != 0 {
			as.wants |= bit(ChannelOccupied)
		}
		if as.wants&bit(MemberRemoved) != 0 {
			as.wants |= bit(MemberAdded)
		}
		if as.wants&(bit(SubscriptionCount)|bit(CacheMiss)) != 0 {
			as.wants |= bit(ChannelVacated)
		}
		snap.apps[a.ID] = as
	}

	var added, removed []*queue
	for k, t := range snap.targets {
		q := d.queues[k]
		if q == nil {
			q = newQueue(k[0], k[1], d.cfg.RecoveryRate)
			d.queues[k] = q
			added = append(added, q)
		}
		t.q = q
	}
	for k, q := range d.queues {
		if snap.targets[k] == nil {
			delete(d.queues, k)
			removed = append(removed, q)
		}
	}
	d.state.Store(snap)

	if d.runCtx == nil {
		return nil // not started: Start sweeps and starts everything
	}
	for _, q := range removed {
		q.stop()
		<-q.done
		d.dropQueueLocked(q.app, q.url)
	}
	for _, q := range added {
		d.startQueueLocked(q)
	}
	return nil
}

// dropQueueLocked moves every entry queued for a target that is no longer
// configured to the dead letters (they can be replayed if it comes back).
// d.loopsMu must be held.
func (d *Dispatcher) dropQueueLocked(app, url string) {
	now := d.clock.Now()
	total := 0
	for {
		moved, err := d.db.ExpireWebhooks(app, url, now.AddDate(100, 0, 0), "target no longer configured", now,
			d.cfg.MaxDeadLetters, 0)
		if err != nil {
			d.log.Error("cannot move the entries of a removed webhook target to the dead letters", "app_id", app,
				"err", err)
			return
		}
		d.deadLettered.Add(uint64(moved))
		total += moved
		if moved == 0 {
			break
		}
	}
	if total > 0 {
		d.log.Warn("webhook entries of a removed target moved to the dead letters", "app_id", app, "entries", total)
	}
}

// startQueueLocked starts q's delivery loop. d.loopsMu must be held and
// d.runCtx set.
func (d *Dispatcher) startQueueLocked(q *queue) {
	ctx, stop := context.WithCancel(d.runCtx)
	q.stop, q.done = stop, make(chan struct{})
	d.goTracked(func() {
		defer close(q.done)
		d.runQueue(ctx, q)
	})
}

// Start resumes the queue left by a previous run and starts the persister,
// the gate and one delivery loop per target. Entries queued for a target
// that is no longer configured become dead letters. ctx ending stops the
// delivery loops like Close does, but only Close writes the last events.
// Start may be called once.
func (d *Dispatcher) Start(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("webhooks: Start called twice")
	}
	d.loopsMu.Lock()
	defer d.loopsMu.Unlock()
	stored, err := d.db.WebhookQueues()
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	for _, sq := range stored {
		if q := d.queues[[2]string{sq.App, sq.URL}]; q != nil {
			q.depth.Store(int64(sq.Len))
			continue
		}
		d.dropQueueLocked(sq.App, sq.URL)
	}

	ctx, d.cancel = context.WithCancel(ctx)
	d.runCtx = ctx
	go d.runPersister()
	d.goTracked(func() { d.runGate(ctx) })
	if err := d.reportOrphans(); err != nil {
		d.log.Error("webhooks: cannot read the occupancy left by the last run", "err", err)
	}
	for _, q := range d.queues {
		d.startQueueLocked(q)
	}
	if n := len(d.queues); n > 0 {
		d.log.Info("webhooks started", "targets", n, "queued", d.queueDepth())
	}
	return nil
}

// goTracked runs fn in a goroutine that Close waits for.
func (d *Dispatcher) goTracked(fn func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		fn()
	}()
}

// Emit reports a lifecycle or push event. It never blocks on I/O: the
// event is gated (push events are not) and filtered, then buffered for the
// write-behind commit, which makes it durable within about one commit (see
// the package doc). Events of apps without a target taking them cost one
// map lookup. Emit does not keep e.Fields after it returns.
func (d *Dispatcher) Emit(e Event) {
	as := d.state.Load().apps[e.App]
	b := bit(e.Name)
	if as == nil || as.wants&b == 0 {
		return
	}
	if b&pushEvents != 0 {
		d.emitPush(as, e)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.dropped.Add(1)
		return
	}
	d.trackLocked(as, e)
	d.gateLocked(as, e, d.clock.Now())
}

// emitPush buffers push event e for the targets that take it. It skips
// the gate, whose rules are all about channels, and encodes e before taking
// d.mu: Fields are the caller's values, of any size, and may fail to
// encode, which drops the event with a warning (the caller cannot be
// answered: Emit never fails).
func (d *Dispatcher) emitPush(as *appState, e Event) {
	raw, err := e.encodePush()
	if err != nil {
		d.dropped.Add(1)
		d.warn.warn("encode "+e.Name, "push webhook event dropped: its fields do not encode as JSON",
			"app_id", e.App, "event", e.Name, "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.dropped.Add(1)
		return
	}
	d.bufferLocked(as, e, raw, d.clock.Now())
}

// decideLocked sends realtime e to every target of its app that takes it:
// the event is encoded once and buffered for each. d.mu must be held.
func (d *Dispatcher) decideLocked(as *appState, e Event, now time.Time) {
	d.bufferLocked(as, e, nil, now)
}

// bufferLocked buffers e for every target of its app that takes it; raw is
// e encoded, or nil to encode it (once) when a first target takes it. The
// targets are those configured now: a decision that waited out a grace
// period follows a Reload made meanwhile. d.mu must be held.
func (d *Dispatcher) bufferLocked(as *appState, e Event, raw []byte, now time.Time) {
	if as = d.state.Load().apps[as.id]; as == nil {
		return
	}
	buffered := false
	for _, t := range as.targets {
		if !t.matches(e.Name, e.Channel) {
			continue
		}
		if len(d.buf) >= d.cfg.MaxBuffered {
			d.dropped.Add(1)
			d.warn.warn("buffer-full", "webhook event dropped: the write-behind buffer is full (is the disk slow?)",
				"app_id", as.id, "buffered", len(d.buf))
			continue
		}
		if raw == nil {
			raw = e.encode()
		}
		d.buf = append(d.buf, pendingEntry{t: t, event: raw, created: now, name: e.Name, channel: e.Channel})
		buffered = true
	}
	if buffered {
		select {
		case d.persistNow <- struct{}{}:
		default:
		}
	}
}

// Close stops the dispatcher: events still in their grace period or
// throttle window are decided now (the server has shut down, nothing will
// cancel them), everything buffered is committed, and the delivery loops
// stop (a request in flight is abandoned; its entries stay queued and are
// sent after the next start). It waits for the final commit, and for the
// delivery loops until ctx ends.
// Close is idempotent; call it after the server stopped emitting and before
// closing the database.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		// Decide what waits in the gate, in time order. Firing a count
		// window may open another (empty) one, hence the loop.
		now := d.clock.Now()
		for len(d.due) > 0 {
			d.fireDueLocked(now.AddDate(1, 0, 0), now)
		}
		d.mu.Unlock()

		if !d.started.Load() {
			if err := d.persist(); err != nil {
				d.closeErr = fmt.Errorf("webhooks: final write: %w", err)
			}
			return
		}
		close(d.stopPersist)
		d.cancel()
		// The final commit is a local write: it is waited for whatever ctx
		// says, since the database closes next.
		<-d.persistDone
		done := make(chan struct{})
		go func() {
			d.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			d.closeErr = fmt.Errorf("webhooks: close: %w", ctx.Err())
		}
		d.client.CloseIdleConnections()
	})
	return d.closeErr
}
