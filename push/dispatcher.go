package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sockudo/sockudo/internal/backoff"
	"github.com/sockudo/sockudo/storage"
)

// Message is a publish rendered for every provider at one time (the Render
// methods); a nil payload (nil FCM message) means the publish skips that
// provider. Senders share it across goroutines and must not modify it.
type Message struct {
	APNs APNsRendering
	FCM  json.RawMessage
	Web  WebRendering
}

// Sender sends m to device d with credential c and returns the provider's
// answer. push/providers.Send implements it for the clients its Builder
// makes; push cannot, since the provider packages import push.
type Sender func(ctx context.Context, c *LiveCredential, d *storage.Device, m *Message) Result

// Events receives what the pipeline reports (main: push webhooks). Calls
// come from the dispatcher's goroutines and must not block.
type Events interface {
	PublishFinished(p storage.PushPublish)
	DeviceInvalidated(app string, d storage.Device, reason string)
	CredentialUnhealthy(app string, provider CredentialProvider, version uint64, reason string)
}

type nopEvents struct{}

func (nopEvents) PublishFinished(storage.PushPublish)                            {}
func (nopEvents) DeviceInvalidated(string, storage.Device, string)               {}
func (nopEvents) CredentialUnhealthy(string, CredentialProvider, uint64, string) {}

// DispatchConfig tunes the delivery workers. Zero fields mean the defaults.
type DispatchConfig struct {
	// InFlight is the most deliveries claimed and not yet recorded as
	// done: the bound on what a crash can send twice, and on the send
	// goroutines. Default 256.
	InFlight int
	// PerCredential is the most concurrent sends through one credential
	// version (one provider connection pool). Default 64.
	PerCredential int
	// MaxAttempts is how many sends a delivery gets before it becomes a
	// dead letter. Default 8.
	MaxAttempts int
	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts (a provider's Retry-After wins when longer). Defaults 2s
	// and 10m.
	RetryInitial, RetryMax time.Duration
	// Lease is how long a claimed delivery is kept from other claims.
	// Default storage.DefaultPushLease.
	Lease time.Duration
	// SendTimeout bounds one provider request. Default 30s.
	SendTimeout time.Duration
	// MaxDeadLetters is how many dead deliveries an app keeps. Default
	// storage.DefaultMaxDeadLetters.
	MaxDeadLetters int
	// Idle is the longest the dispatcher sleeps when nothing is due (it
	// wakes earlier for new publishes and for the next due delivery).
	// Default 1s.
	Idle time.Duration
	// Retention is how long finished publishes (with their deliveries
	// and idempotency keys) are kept; at least storage.IdempotencyWindow.
	// Default 7 days.
	Retention time.Duration
}

func (c DispatchConfig) withDefaults() DispatchConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.InFlight, 256)
	def(&c.PerCredential, 64)
	def(&c.MaxAttempts, 8)
	def(&c.MaxDeadLetters, 0)
	defD(&c.RetryInitial, 2*time.Second)
	defD(&c.RetryMax, 10*time.Minute)
	defD(&c.Lease, storage.DefaultPushLease)
	defD(&c.SendTimeout, 30*time.Second)
	defD(&c.Idle, time.Second)
	defD(&c.Retention, 7*24*time.Hour)
	c.Retention = max(c.Retention, storage.IdempotencyWindow)
	return c
}

// Delivery reasons of our own making, beside the providers' reason codes.
const (
	ReasonDeviceDeleted     = "device_deleted"
	ReasonNoCredential      = "no_credential"
	ReasonCredentialRevoked = "credential_revoked"
	ReasonNoPayload         = "no_payload"
)

// dispatcher delivers the claimed deliveries of every app. One goroutine
// (run) claims and starts a goroutine per delivery, bounded by slots;
// another (complete) records results in batches and reports finished
// publishes. Both are owned by Service.Run.
type dispatcher struct {
	s    *Service
	cfg  DispatchConfig
	send Sender
	ev   Events
	m    *Metrics

	// wake is signalled (without blocking) when a publish is accepted or
	// replayed, so that it does not wait for the idle timer.
	wake chan struct{}

	mu sync.Mutex
	// sems are the per credential version send semaphores; guarded by mu.
	sems map[credKey]chan struct{}
	// guards are the spike guards of each publish and credential version,
	// with the devices they hold; guarded by mu (each guard has its own
	// lock for Observe).
	guards map[guardKey]*guardState
	// unhealthy is the last problem reported per credential version, so
	// that a webhook goes out once per change; guarded by mu.
	unhealthy map[credKey]string
}

type credKey struct {
	app      string
	provider CredentialProvider
	version  uint64
}

type guardKey struct {
	app, publish string
	cred         credKey
}

type guardState struct {
	g    InvalidationGuard
	held []heldDevice // guarded by dispatcher.mu
}

type heldDevice struct {
	dev    storage.Device
	result Result
}

func newDispatcher(s *Service, cfg DispatchConfig, send Sender, ev Events, m *Metrics) *dispatcher {
	if ev == nil {
		ev = nopEvents{}
	}
	return &dispatcher{s: s, cfg: cfg.withDefaults(), send: send, ev: ev, m: m, wake: make(chan struct{}, 1),
		sems: map[credKey]chan struct{}{}, guards: map[guardKey]*guardState{}, unhealthy: map[credKey]string{}}
}

// poke wakes the claim loop.
func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run delivers until ctx is done, then waits for the sends in flight and
// records their results. Leases of a previous process are released first:
// a SIGKILLed process resumes at once, sending again at most what it had
// in flight.
func (d *dispatcher) run(ctx context.Context) {
	if n, err := d.s.db.ReleasePushLeases(d.s.now()); err != nil {
		d.s.log.Error("push: releasing delivery leases failed", "err", err)
	} else if n > 0 {
		d.s.log.Info("push: resuming deliveries left in flight", "deliveries", n)
	}
	results := make(chan storage.PushResult, d.cfg.InFlight)
	slots := make(chan struct{}, d.cfg.InFlight)
	completed := make(chan struct{})
	go func() {
		defer close(completed)
		d.complete(results, slots)
	}()
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		d.sweepEvery(ctx, time.Hour)
	}()
	defer func() { <-swept }()
	// Sends outlive ctx by up to SendTimeout: a notification half sent at
	// shutdown is finished and recorded rather than sent again later.
	sendCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := 1
	fill:
		for n < d.cfg.InFlight {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		claimed, err := d.s.db.ClaimPushDeliveries(d.s.now(), n, d.cfg.Lease)
		if err != nil {
			d.s.log.Error("push: claiming deliveries failed", "err", err)
		}
		for range n - len(claimed) {
			<-slots
		}
		if len(claimed) == 0 {
			d.idle(ctx)
			continue
		}
		d.start(sendCtx, claimed, results, &wg)
	}
	wg.Wait()
	close(results)
	<-completed
}

// sweepEvery purges finished publishes older than Retention, at start and
// then every interval, until ctx is done.
func (d *dispatcher) sweepEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d.sweep()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep deletes each app's finished publishes older than Retention, in
// transactions of at most 1000 so that deliveries are not held up.
func (d *dispatcher) sweep() {
	ids, err := d.s.db.AppIDs()
	if err != nil {
		d.s.log.Error("push: listing apps for the publish sweep failed", "err", err)
		return
	}
	before := d.s.now().Add(-d.cfg.Retention)
	for _, id := range ids {
		for {
			n, err := d.s.db.PurgePushPublishes(id, before, 1000)
			if err != nil {
				d.s.log.Error("push: purging old publishes failed", "app_id", id, "err", err)
				break
			}
			if n < 1000 {
				break
			}
		}
	}
}

// idle sleeps until the next delivery is due, a publish arrives, Idle
// passes or ctx is done.
func (d *dispatcher) idle(ctx context.Context) {
	wait := d.cfg.Idle
	if at, ok, err := d.s.db.NextPushDue(); err == nil && ok {
		wait = min(wait, max(at.Sub(d.s.now()), 5*time.Millisecond))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-d.wake:
	case <-t.C:
	}
}

// complete records results in batches (one transaction per batch, not per
// delivery), frees their slots once recorded, and reports the publishes
// that finished. It returns when results is closed and drained.
func (d *dispatcher) complete(results <-chan storage.PushResult, slots chan struct{}) {
	const batch = 256
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var pending []storage.PushResult
	flush := func() {
		if len(pending) > 0 {
			d.record(pending)
			for range pending {
				<-slots
			}
			pending = pending[:0]
		}
		d.report()
	}
	for {
		select {
		case r, ok := <-results:
			if !ok {
				flush()
				return
			}
			pending = append(pending, r)
			if len(pending) >= batch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// record stores results; a storage failure is logged and the deliveries
// stay inflight until their lease expires, then go out again (at least
// once, never lost).
func (d *dispatcher) record(results []storage.PushResult) {
	if _, err := d.s.db.CompletePushDeliveries(results, d.s.now(), d.cfg.MaxDeadLetters); err != nil {
		d.s.log.Error("push: recording delivery results failed", "results", len(results), "err", err)
	}
}

// report hands finished publishes to Events and the audit trail, and
// settles the devices their spike guards held.
func (d *dispatcher) report() {
	for {
		done, err := d.s.db.FinishedPushPublishes(100)
		if err != nil {
			d.s.log.Error("push: reading finished publishes failed", "err", err)
			return
		}
		for _, p := range done {
			d.settle(p.App, p.ID)
			d.ev.PublishFinished(p)
			d.m.finished(p.State)
			d.s.record(auditRecord{app: p.App, actor: "system", action: AuditPublishFinish, target: "publish:" + p.ID,
				outcome: p.State, details: map[string]any{"counters": p.Counters}})
		}
		if len(done) < 100 {
			return
		}
	}
}

// dispatchOnce claims what is due now, sends it, waits for the answers and
// records them: one step of run, for tests that drive a fake clock.
func (d *dispatcher) dispatchOnce(ctx context.Context, limit int) (int, error) {
	claimed, err := d.s.db.ClaimPushDeliveries(d.s.now(), limit, d.cfg.Lease)
	if err != nil {
		return 0, err
	}
	results := make(chan storage.PushResult, len(claimed))
	var wg sync.WaitGroup
	d.start(ctx, claimed, results, &wg)
	wg.Wait()
	close(results)
	var all []storage.PushResult
	for r := range results {
		all = append(all, r)
	}
	if len(all) > 0 {
		if _, err := d.s.db.CompletePushDeliveries(all, d.s.now(), d.cfg.MaxDeadLetters); err != nil {
			return 0, err
		}
	}
	d.report()
	return len(claimed), nil
}

// job is one claimed delivery with what sending it needs.
type job struct {
	dl  storage.PushDelivery
	dev *storage.Device // nil: deleted since the publish was accepted
	msg *Message        // nil: the publish cannot be rendered any more
	why string          // the reason when msg is nil
}

// start renders each publish of claimed once, reads their devices in one
// transaction per publish, and starts one goroutine per delivery, each
// sending its result on results.
func (d *dispatcher) start(ctx context.Context, claimed []storage.PushDelivery, results chan<- storage.PushResult, wg *sync.WaitGroup) {
	now := d.s.now()
	type group struct {
		app, publish string
		idx          []int
	}
	var order []*group
	groups := map[string]*group{}
	for i, dl := range claimed {
		k := dl.App + "\x00" + dl.Publish
		g := groups[k]
		if g == nil {
			g = &group{app: dl.App, publish: dl.Publish}
			groups[k] = g
			order = append(order, g)
		}
		g.idx = append(g.idx, i)
	}
	for _, g := range order {
		msg, why := d.render(g.app, g.publish, now)
		ids := make([]string, len(g.idx))
		for j, i := range g.idx {
			ids[j] = claimed[i].DeviceID
		}
		devs, err := d.s.db.Devices(g.app, ids)
		if err != nil {
			// Leave them inflight: the lease brings them back.
			d.s.log.Error("push: reading devices failed", "app_id", g.app, "err", err)
			continue
		}
		for _, i := range g.idx {
			j := job{dl: claimed[i], msg: msg, why: why}
			if dev, ok := devs[j.dl.DeviceID]; ok {
				j.dev = &dev
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- d.deliver(ctx, j)
			}()
		}
	}
}

// render renders a stored publish for sending at now.
func (d *dispatcher) render(app, id string, now time.Time) (*Message, string) {
	p, err := d.s.db.PushPublish(app, id)
	if err != nil {
		return nil, "publish_unreadable"
	}
	pub, err := storedPublish(p.Body)
	if err != nil {
		return nil, "publish_unreadable"
	}
	var m Message
	var e *apiError
	if m.APNs, e = pub.RenderAPNs(now); e != nil {
		return nil, e.code
	}
	if m.FCM, e = pub.RenderFCM(now); e != nil {
		return nil, e.code
	}
	if m.Web, e = pub.RenderWeb(now); e != nil {
		return nil, e.code
	}
	return &m, ""
}

// storedPublish decodes a publish stored by enqueue. An absent provider
// block was stored as null, which decodes to the bytes "null": make it
// absent again, or the block would replace the notification's mapping.
func storedPublish(body []byte) (Publish, error) {
	var p Publish
	if err := json.Unmarshal(body, &p); err != nil {
		return Publish{}, err
	}
	for _, b := range []*json.RawMessage{&p.APNs, &p.FCM, &p.Web} {
		if !present(*b) {
			*b = nil
		}
	}
	return p, nil
}

// providerOf is the credential provider of a device platform.
func providerOf(platform string) CredentialProvider {
	switch platform {
	case storage.PlatformAPNs:
		return ProviderAPNs
	case storage.PlatformFCM:
		return ProviderFCM
	case storage.PlatformWeb:
		return ProviderWebPush
	}
	return ""
}

// platformOf is the device platform (and metric label) of a provider.
func platformOf(p CredentialProvider) string {
	if p == ProviderWebPush {
		return storage.PlatformWeb
	}
	return string(p)
}

// deliver sends one delivery and turns the answer into its result.
func (d *dispatcher) deliver(ctx context.Context, j job) storage.PushResult {
	dl := j.dl
	res := storage.PushResult{App: dl.App, Publish: dl.Publish, Seq: dl.Seq, Attempt: dl.Attempts}
	fail := func(reason string) storage.PushResult {
		res.Outcome, res.Reason, res.Error = storage.OutcomeFailed, reason, reason
		d.m.failed(dl.Platform, reason)
		return res
	}
	switch {
	case j.msg == nil:
		return fail(j.why)
	case j.dev == nil:
		return fail(ReasonDeviceDeleted)
	case !j.msg.has(dl.Platform):
		return fail(ReasonNoPayload)
	}
	lc, err := d.credential(dl.App, j.dev)
	switch {
	case errors.Is(err, ErrNoCredential):
		return fail(ReasonNoCredential)
	case errors.Is(err, ErrCredentialRevoked):
		return fail(ReasonCredentialRevoked)
	case err != nil:
		// Storage or sealing trouble: ours, not the device's. Try later.
		d.s.log.Error("push: loading a credential failed", "app_id", dl.App, "platform", dl.Platform, "err", err)
		return d.retry(res, dl, Result{Outcome: ProviderTransient, Reason: "credential_unavailable"})
	case lc.Client == nil:
		return fail(ReasonNoCredential)
	}
	ck := credKey{dl.App, lc.Provider, lc.Version}
	sem := d.sem(ck)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return d.retry(res, dl, Result{Outcome: ProviderTransient, Reason: "shutting down"})
	}
	sctx, cancel := context.WithTimeout(ctx, d.cfg.SendTimeout)
	start := time.Now()
	r := d.send(sctx, lc, j.dev, j.msg)
	cancel()
	<-sem
	d.m.sent(dl.Platform, r.Outcome, time.Since(start))

	problem := ""
	if r.Outcome == CredentialProblem {
		problem = r.Reason
		if problem == "" {
			problem = "refused"
		}
	}
	if err := d.s.creds.reg.ReportUse(lc, problem); err != nil {
		d.s.log.Warn("push: recording credential use failed", "app_id", dl.App, "err", err)
	}
	d.credentialHealth(ck, problem)

	switch r.Outcome {
	case Delivered:
		res.Outcome = storage.OutcomeSent
		return res
	case DeviceGone:
		d.gone(ck, dl, j.dev, r)
		res.Outcome, res.Reason, res.Error = storage.OutcomeInvalid, reasonOf(r), reasonOf(r)
		return res
	case DeviceRetryLater, ProviderTransient, ProviderQuota:
		return d.retry(res, dl, r)
	}
	// DeviceFailing, CredentialProblem, CallerError: no retry would help.
	return fail(reasonOf(r))
}

func reasonOf(r Result) string {
	if r.Reason != "" {
		return r.Reason
	}
	return r.Outcome.String()
}

// retry schedules another attempt after the backoff or the provider's
// Retry-After, whichever is longer, or gives up after MaxAttempts.
func (d *dispatcher) retry(res storage.PushResult, dl storage.PushDelivery, r Result) storage.PushResult {
	reason := reasonOf(r)
	res.Reason, res.Error = reason, reason
	if dl.Attempts >= d.cfg.MaxAttempts {
		res.Outcome = storage.OutcomeDead
		d.m.failed(dl.Platform, "dead")
		return res
	}
	wait := backoff.Exponential(dl.Attempts, d.cfg.RetryInitial, d.cfg.RetryMax, rand.Float64)
	if r.RetryAfter > wait {
		wait = r.RetryAfter
	}
	res.Outcome, res.RetryAt = storage.OutcomeRetry, d.s.now().Add(wait)
	d.m.retried(dl.Platform)
	return res
}

// has reports whether the message has a payload for platform.
func (m *Message) has(platform string) bool {
	switch platform {
	case storage.PlatformAPNs:
		return m.APNs.Payload != nil
	case storage.PlatformFCM:
		return m.FCM != nil
	case storage.PlatformWeb:
		return m.Web.Payload != nil
	}
	return false
}

// credential is the credential that sends to dev: a web device subscribed
// with an older VAPID key needs that key's version.
func (d *dispatcher) credential(app string, dev *storage.Device) (*LiveCredential, error) {
	reg := d.s.creds.reg
	p := providerOf(dev.Platform)
	if p == ProviderWebPush && dev.VAPIDKeyVersion > 0 {
		return reg.Version(app, p, uint64(dev.VAPIDKeyVersion))
	}
	return reg.Current(app, p)
}

func (d *dispatcher) sem(k credKey) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sems[k]
	if s == nil {
		s = make(chan struct{}, d.cfg.PerCredential)
		d.sems[k] = s
	}
	return s
}

// credentialHealth reports a credential that starts or stops failing:
// once per change, not per send.
func (d *dispatcher) credentialHealth(k credKey, problem string) {
	d.mu.Lock()
	last, seen := d.unhealthy[k]
	if seen && last == problem || !seen && problem == "" {
		d.mu.Unlock()
		return
	}
	d.unhealthy[k] = problem
	d.mu.Unlock()
	if problem == "" {
		return
	}
	d.m.credentialError(platformOf(k.provider))
	d.s.log.Warn("push credential unhealthy", "app_id", k.app, "provider", k.provider, "version", k.version, "reason", problem)
	d.ev.CredentialUnhealthy(k.app, k.provider, k.version, problem)
	d.s.record(auditRecord{app: k.app, actor: "provider:" + string(k.provider), action: AuditCredentialUnhealthy,
		target: fmt.Sprintf("credential:%s/v%d", k.provider, k.version), outcome: "refused", details: map[string]any{"reason": problem}})
}

// gone applies the spike guard to a device the provider reported gone.
func (d *dispatcher) gone(ck credKey, dl storage.PushDelivery, dev *storage.Device, r Result) {
	gk := guardKey{dl.App, dl.Publish, ck}
	d.mu.Lock()
	gs := d.guards[gk]
	if gs == nil {
		gs = &guardState{}
		d.guards[gk] = gs
	}
	d.mu.Unlock()
	v, alert := gs.g.Observe(r.Outcome)
	if alert {
		results, goneN, _ := gs.g.Stats()
		reason := fmt.Sprintf("invalidation spike: %d of %d devices reported gone; removals paused", goneN, results)
		d.s.log.Warn("push: invalidation spike guard tripped", "app_id", dl.App, "publish_id", dl.Publish,
			"provider", ck.provider, "results", results, "gone", goneN)
		d.ev.CredentialUnhealthy(ck.app, ck.provider, ck.version, reason)
		d.s.record(auditRecord{app: dl.App, actor: "system", action: AuditLimitExceeded, target: "publish:" + dl.Publish,
			outcome: "paused", details: map[string]any{"guard": "invalidation_spike", "results": results, "gone": goneN}})
	}
	switch v {
	case Invalidate:
		d.invalidate(dl.App, *dev, r)
		d.release(gk, gs)
	case Hold:
		d.mu.Lock()
		gs.held = append(gs.held, heldDevice{*dev, r})
		d.mu.Unlock()
	}
}

// release invalidates the devices a guard held once it answers Invalidate.
func (d *dispatcher) release(gk guardKey, gs *guardState) {
	d.mu.Lock()
	held := gs.held
	gs.held = nil
	d.mu.Unlock()
	for _, h := range held {
		d.invalidate(gk.app, h.dev, h.result)
	}
}

// settle decides on the devices still held for a finished publish: a
// publish that ended below the guard's sample is judged by its size.
func (d *dispatcher) settle(app, publish string) {
	d.mu.Lock()
	var mine []guardKey
	for k := range d.guards {
		if k.app == app && k.publish == publish {
			mine = append(mine, k)
		}
	}
	d.mu.Unlock()
	for _, k := range mine {
		d.mu.Lock()
		gs := d.guards[k]
		delete(d.guards, k)
		d.mu.Unlock()
		if gs.g.Settle(true) == Invalidate {
			d.release(k, gs)
		}
	}
}

// invalidate removes a device the provider reported gone and tells Events.
func (d *dispatcher) invalidate(app string, dev storage.Device, r Result) {
	ok, err := d.s.InvalidateDevice(app, dev.Platform, dev.Token, r)
	if err != nil {
		d.s.log.Error("push: removing an invalid device failed", "app_id", app, "device_id", dev.ID, "err", err)
		return
	}
	if !ok {
		return
	}
	d.m.invalidated(dev.Platform)
	d.ev.DeviceInvalidated(app, dev, reasonOf(r))
	d.s.record(auditRecord{app: app, actor: "provider:" + dev.Platform, action: AuditDeviceInvalidated, target: "device:" + dev.ID,
		outcome: "removed", details: map[string]any{"reason": reasonOf(r), "platform": dev.Platform, "token_hash": dev.TokenHash}})
}
