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

// Defaults for the zero values of Config.
const (
	DefaultBatchDuration   = 50 * time.Millisecond
	DefaultBatchSize       = 100
	DefaultTimeout         = 10 * time.Second
	DefaultRetryMax        = 5 * time.Minute
	DefaultInitialBackoff  = time.Second
	DefaultMaxBackoff      = 60 * time.Second
	DefaultRecoveryRate    = 20 // requests per second
	DefaultGracePeriod     = 3 * time.Second
	DefaultCacheMissWindow = 5 * time.Second
	DefaultCountThrottle   = 5 * time.Second
	DefaultCountThreshold  = 100
	DefaultMaxConcurrency  = 64
	DefaultMaxBuffered     = 100_000
	DefaultCommitInterval  = 10 * time.Millisecond
)

// Config tunes a Dispatcher. The zero value of every field means its
// default (the Default* constants); tests build it literally.
type Config struct {
	// Batching is the default batching of targets that do not override it.
	Batching Batching
	// Timeout bounds one request, connecting included. Zero means 10 s.
	Timeout time.Duration
	// RetryMax is how long after an event was queued the dispatcher keeps
	// retrying it; then it becomes a dead letter. Zero means 5 minutes.
	RetryMax time.Duration
	// MaxAttempts dead-letters an event after this many failed attempts.
	// Zero means no limit besides RetryMax.
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the exponential backoff between
	// attempts of a failing target. Zero means 1 s and 60 s.
	InitialBackoff, MaxBackoff time.Duration
	// RecoveryRate is how many requests per second a target that failed
	// gets until its backlog is sent, so a recovering receiver is not
	// flooded. Zero means 20.
	RecoveryRate float64
	// GracePeriod delays channel_vacated and member_removed; they are
	// dropped if the channel (member) comes back meanwhile. Zero means 3 s;
	// negative means no delay.
	GracePeriod time.Duration
	// CacheMissWindow is how long one channel's cache_miss suppresses the
	// next. Zero means 5 s.
	CacheMissWindow time.Duration
	// CountThrottle and CountThreshold throttle subscription_count: above
	// CountThreshold subscribers a channel's count is sent at most once per
	// CountThrottle. Zero means 5 s and 100 (Pusher's rule).
	CountThrottle  time.Duration
	CountThreshold int
	// AllowPrivateTargets lets webhooks reach loopback, private, link-local
	// and metadata addresses. False (the safe default) refuses them at
	// connect time, after DNS resolution.
	AllowPrivateTargets bool
	// MaxConcurrency bounds requests in flight across all targets; each
	// target has at most one. Zero means 64.
	MaxConcurrency int
	// MaxDeadLetters is how many dead letters each app keeps, oldest dropped
	// first. Zero means storage.DefaultMaxDeadLetters.
	MaxDeadLetters int
	// MaxBuffered bounds events waiting for the write-behind commit; beyond
	// it Emit drops events (counted in Stats.Dropped). Zero means 100000.
	MaxBuffered int
	// CommitInterval is the write-behind: at most one commit (one fsync)
	// starts per interval, and the events emitted meanwhile share it. It is
	// the durability window: an event is on disk at most about this long
	// plus one commit after Emit. Zero means 10 ms.
	CommitInterval time.Duration
}

// Batching collects a target's events into one request.
type Batching struct {
	// Disabled sends one event per request. The zero value batches.
	Disabled bool
	// Duration is how long the first event of a batch waits for others.
	// Zero means 50 ms.
	Duration time.Duration
	// Size is the most events one request carries (at most 1000). Zero
	// means 100.
	Size int
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Batching.Duration, DefaultBatchDuration)
	def(&c.Timeout, DefaultTimeout)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.InitialBackoff, DefaultInitialBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.GracePeriod, DefaultGracePeriod)
	def(&c.CacheMissWindow, DefaultCacheMissWindow)
	def(&c.CountThrottle, DefaultCountThrottle)
	def(&c.CommitInterval, DefaultCommitInterval)
	if c.Batching.Size == 0 {
		c.Batching.Size = DefaultBatchSize
	}
	if c.RecoveryRate == 0 {
		c.RecoveryRate = DefaultRecoveryRate
	}
	if c.CountThreshold == 0 {
		c.CountThreshold = DefaultCountThreshold
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.MaxDeadLetters == 0 {
		c.MaxDeadLetters = storage.DefaultMaxDeadLetters
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = DefaultMaxBuffered
	}
	return c
}

func (c Config) validate() error {
	var ps []error
	if c.Batching.Size < 1 || c.Batching.Size > maxBatchSize {
		ps = append(ps, fmt.Errorf("batching size must be 1-%d, got %d", maxBatchSize, c.Batching.Size))
	}
	if c.Batching.Duration < 0 || c.Batching.Duration > maxBatchDuration*time.Millisecond {
		ps = append(ps, fmt.Errorf("batching duration must be 0-%d ms, got %s", maxBatchDuration, c.Batching.Duration))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", c.Timeout}, {"retry max", c.RetryMax}, {"initial backoff", c.InitialBackoff},
		{"max backoff", c.MaxBackoff}, {"cache miss window", c.CacheMissWindow}, {"count throttle", c.CountThrottle},
		{"commit interval", c.CommitInterval}} {
		if d.v <= 0 {
			ps = append(ps, fmt.Errorf("%s must be positive, got %s", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"max attempts", c.MaxAttempts}, {"count threshold", c.CountThreshold}, {"max concurrency", c.MaxConcurrency},
		{"max dead letters", c.MaxDeadLetters}, {"max buffered", c.MaxBuffered}} {
		if n.v < 0 {
			ps = append(ps, fmt.Errorf("%s must not be negative, got %d", n.name, n.v))
		}
	}
	if c.RecoveryRate < 0 {
		ps = append(ps, fmt.Errorf("recovery rate must not be negative, got %g", c.RecoveryRate))
	}
	return errors.Join(ps...)
}

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

// pendingEntry is an event for one target waiting for the write-behind.
type pendingEntry struct {
	t       *target
	event   []byte // shared by the event's targets; read-only
	created time.Time
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

	queued, commits, sent, failed, retried, deadLettered, dropped atomic.Uint64
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
	apps, err := d.db.Apps()
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

// Emit reports a lifecycle event. It never blocks on I/O: the event is
// gated and filtered, then buffered for the write-behind commit, which makes
// it durable within about one commit (see the package doc). Events of apps
// without a target taking them cost one map lookup.
func (d *Dispatcher) Emit(e Event) {
	as := d.state.Load().apps[e.App]
	if as == nil || as.wants&bit(e.Name) == 0 {
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

// trackLocked records the raw channel and member transitions of apps that
// want channel_vacated or member_removed. d.mu must be held.
func (d *Dispatcher) trackLocked(as *appState, e Event) {
	var c storage.OccupancyChange
	switch {
	case as.tracks&bit(ChannelVacated) != 0 && (e.Name == ChannelOccupied || e.Name == ChannelVacated):
		c = storage.OccupancyChange{App: e.App, Channel: e.Channel, Open: e.Name == ChannelOccupied}
	case as.tracks&bit(MemberRemoved) != 0 && (e.Name == MemberAdded || e.Name == MemberRemoved):
		c = storage.OccupancyChange{App: e.App, Channel: e.Channel, UserID: e.UserID, Open: e.Name == MemberAdded}
	default:
		return
	}
	d.occ = append(d.occ, c)
	d.kickPersist()
}

// reportOrphans decides channel_vacated and member_removed for what the
// previous process left occupied: it ended without reporting them (a
// crash). They go through the gate, so clients reconnecting within the
// grace period cancel them as they would a page reload.
func (d *Dispatcher) reportOrphans() error {
	orphans, err := d.db.TakeOccupancy()
	if err != nil {
		return err
	}
	if len(orphans) == 0 {
		return nil
	}
	snap := d.state.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	for _, o := range orphans {
		as := snap.apps[o.App]
		if as == nil {
			continue
		}
		e := Event{App: o.App, Name: ChannelVacated, Channel: o.Channel}
		if o.UserID != "" {
			e.Name, e.UserID = MemberRemoved, o.UserID
		}
		if as.tracks&bit(e.Name) == 0 {
			continue
		}
		d.gateLocked(as, e, now)
	}
	d.log.Info("reporting channels and members left by an unclean stop", "records", len(orphans))
	return nil
}

// decideLocked sends e to every target of its app that takes it: the
// event is encoded once and buffered for each. The targets are those
// configured now: a decision that waited out a grace period follows a
// Reload made meanwhile. d.mu must be held.
func (d *Dispatcher) decideLocked(as *appState, e Event, now time.Time) {
	if as = d.state.Load().apps[as.id]; as == nil {
		return
	}
	var raw []byte
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
		d.buf = append(d.buf, pendingEntry{t: t, event: raw, created: now})
	}
	if raw != nil {
		select {
		case d.persistNow <- struct{}{}:
		default:
		}
	}
}

// persistRetry is the pause after a failed commit before trying again.
const persistRetry = 500 * time.Millisecond

// runPersister commits buffered events to storage, one transaction per
// round and at most one round per CommitInterval: the events emitted
// meanwhile share the commit, so a burst costs one fsync per interval, not
// one per event. It exits after a final commit once Close closes
// stopPersist. It runs on the real clock: it is about the disk, not about
// the schedules tests fake.
func (d *Dispatcher) runPersister() {
	defer close(d.persistDone)
	tm := time.NewTimer(time.Hour)
	tm.Stop()
	defer tm.Stop()
	var lastCommit time.Time
	for {
		stopping := false
		select {
		case <-d.persistNow:
		case <-d.stopPersist:
			stopping = true
		}
		if wait := time.Until(lastCommit.Add(d.cfg.CommitInterval)); wait > 0 && !stopping {
			tm.Reset(wait)
			select {
			case <-tm.C:
			case <-d.stopPersist:
				stopping = true
			}
		}
		lastCommit = time.Now()
		if err := d.persist(); err != nil {
			if stopping {
				d.mu.Lock()
				lost := len(d.buf)
				d.buf = nil
				d.mu.Unlock()
				d.dropped.Add(uint64(lost))
				d.log.Error("webhook events lost: the final write to the database failed", "events", lost, "err", err)
				return
			}
			d.warn.warn("persist", "cannot write webhook events to the database; retrying", "err", err)
			tm.Reset(persistRetry)
			select {
			case <-tm.C:
			case <-d.stopPersist:
			}
			d.kickPersist()
			continue
		}
		if stopping {
			return
		}
	}
}

func (d *Dispatcher) kickPersist() {
	select {
	case d.persistNow <- struct{}{}:
	default:
	}
}

// persist commits everything buffered. On failure the events go back to
// the front of the buffer.
func (d *Dispatcher) persist() error {
	d.mu.Lock()
	batch, occ := d.buf, d.occ
	d.buf, d.occ = nil, nil
	d.mu.Unlock()
	if err := d.db.ApplyOccupancy(occ); err != nil {
		d.mu.Lock()
		d.buf = append(batch, d.buf...)
		d.occ = append(occ, d.occ...)
		d.mu.Unlock()
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	now := d.clock.Now()
	entries := make([]storage.WebhookEntry, len(batch))
	for i, p := range batch {
		entries[i] = storage.WebhookEntry{App: p.t.q.app, URL: p.t.q.url, Event: p.event, CreatedAt: p.created,
			EnqueuedAt: now}
	}
	if err := d.db.EnqueueWebhooks(entries); err != nil {
		d.mu.Lock()
		d.buf = append(batch, d.buf...)
		d.mu.Unlock()
		return err
	}
	d.queued.Add(uint64(len(batch)))
	d.commits.Add(1)
	var last *queue
	for _, p := range batch {
		p.t.q.depth.Add(1)
		if p.t.q != last {
			p.t.q.notify()
			last = p.t.q
		}
	}
	return nil
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

// Stats are the dispatcher's counters since New, for metrics.
type Stats struct {
	// Queued counts events committed to the durable queue, one per target.
	Queued uint64
	// Commits counts the write-behind's transactions (one fsync each).
	Commits uint64
	// Sent counts events delivered: their request got a 2xx.
	Sent uint64
	// Failed counts failed requests: network errors and other statuses.
	Failed uint64
	// Retried counts events scheduled for another attempt.
	Retried uint64
	// DeadLettered counts events given up on.
	DeadLettered uint64
	// Dropped counts events lost before reaching the queue: the buffer was
	// full, the dispatcher was closed, or the final commit failed.
	Dropped uint64
	// QueueDepth is the number of events in the durable queue.
	QueueDepth int64
	// Buffered is the number of events waiting for the write-behind commit.
	Buffered int
}

// Stats returns the current counters.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	buffered := len(d.buf)
	d.mu.Unlock()
	return Stats{
		Queued: d.queued.Load(), Commits: d.commits.Load(), Sent: d.sent.Load(), Failed: d.failed.Load(), Retried: d.retried.Load(),
		DeadLettered: d.deadLettered.Load(), Dropped: d.dropped.Load(), QueueDepth: d.queueDepth(),
		Buffered: buffered,
	}
}

func (d *Dispatcher) queueDepth() int64 {
	var n int64
	for _, t := range d.state.Load().targets {
		n += t.q.depth.Load()
	}
	return n
}

// TargetStatus describes one target's queue.
type TargetStatus struct {
	URL string `json:"url"`
	// Pending is the number of events in the durable queue.
	Pending int64 `json:"pending"`
	// Failures counts the consecutive failed requests.
	Failures int64 `json:"failures"`
	// NextAttempt is when the next request may go, zero if now.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Queues returns the status of app's targets, in configuration order.
func (d *Dispatcher) Queues(app string) []TargetStatus {
	out := []TargetStatus{}
	as := d.state.Load().apps[app]
	if as == nil {
		return out
	}
	for _, t := range as.targets {
		s := TargetStatus{URL: t.url, Pending: t.q.depth.Load(), Failures: t.q.failures.Load()}
		if ms := t.q.retryAt.Load(); ms != 0 {
			s.NextAttempt = time.UnixMilli(ms).UTC()
		}
		out = append(out, s)
	}
	return out
}

// DeadLetters returns up to limit of app's dead letters, oldest first
// (non-positive limit means all).
func (d *Dispatcher) DeadLetters(app string, limit int) ([]storage.DeadLetter, error) {
	return d.db.DeadLetters(app, limit)
}

// Replay moves app's dead letters (those in ids, or all when ids is empty)
// back into the queue for another round of attempts, and returns how many
// were replayed and how many were skipped because their target is no
// longer configured.
func (d *Dispatcher) Replay(app string, ids []uint64) (replayed, skipped int, err error) {
	snap := d.state.Load()
	keep := func(app, url string) bool { return snap.targets[[2]string{app, url}] != nil }
	queues, skipped, err := d.db.ReplayDeadLetters(app, ids, d.clock.Now(), keep)
	if err != nil {
		return 0, 0, err
	}
	for _, q := range queues {
		t := snap.targets[[2]string{q.App, q.URL}]
		t.q.depth.Add(int64(q.Len))
		t.q.notify()
		replayed += q.Len
	}
	return replayed, skipped, nil
}
