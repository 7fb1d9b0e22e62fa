package push

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/storage"
)

// PublishConfig bounds publishes per app; an app's AppPushLimits override
// each where set. Zero means unlimited.
type PublishConfig struct {
	// MaxRecipients is the most devices one publish may reach
	// (PUSH_MAX_RECIPIENTS_PER_PUBLISH).
	MaxRecipients int
	// PerSecond limits publishes per app per second (PUSH_PUBLISH_RPS),
	// through Limits.Publishes.
	PerSecond int
	// PerDay limits notifications (deliveries) per app per UTC day
	// (PUSH_DAILY_NOTIFICATIONS), through Limits.Notifications.
	PerDay int64
}

// NotificationQuota counts notifications against a persisted daily quota
// (ratelimit.Window).
type NotificationQuota interface {
	AllowN(key string, n, limit int64) ratelimit.Decision
}

// publishRoutes are the publish API routes (spec §4.4).
func (s *Service) publishRoutes() []SignedRoute {
	return []SignedRoute{
		{"POST /apps/{app_id}/push/publishes", s.publishHandler("")},
		{"POST /apps/{app_id}/push/publishes/{kind}", s.publishHandler("{kind}")},
		{"GET /apps/{app_id}/push/publishes", s.signed(s.listPublishes)},
		{"GET /apps/{app_id}/push/publishes/{publish_id}", s.signed(s.getPublish)},
		{"DELETE /apps/{app_id}/push/publishes/{publish_id}", s.signed(s.cancelPublish)},
		{"GET /apps/{app_id}/push/publishes/{publish_id}/deliveries", s.signed(s.publishDeliveries)},
		{"GET /apps/{app_id}/push/dead_letters", s.signed(s.deadLetters)},
		{"POST /apps/{app_id}/push/dead_letters/replay", s.signed(s.replayDeadLetters)},
		{"GET /apps/{app_id}/push/limits", s.signed(s.publishLimits)},
	}
}

// publishHandler is POST /publishes (kind "") and /publishes/{kind}.
func (s *Service) publishHandler(kind string) func(http.ResponseWriter, *http.Request, string, []byte) {
	return func(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
		k := kind
		if k != "" {
			k = r.PathValue("kind")
		}
		status, v, e := s.publish(w, r, appID, k, body)
		reply(w, status, v, e)
	}
}

// publish accepts a publish: validates it, resolves its devices, checks
// the app's limits, and persists it with one delivery per device before
// answering 202; the dispatcher sends it.
func (s *Service) publish(w http.ResponseWriter, r *http.Request, appID, kind string, body []byte) (int, any, *apiError) {
	if len(body) > MaxPublishBody {
		return 0, nil, errorf(413, "body_too_large", "a publish is at most %d bytes", MaxPublishBody)
	}
	if kind != "" && !validKind(kind) {
		return 0, nil, errorf(404, "not_found", "no such publish route: use /publishes/{interests|users|devices|channels}")
	}
	now := s.now()
	p, e := ParsePublish(body, kind, now)
	if e != nil {
		return 0, nil, e
	}
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		if len(h) > MaxIdempotencyKey || !utf8.ValidString(h) {
			return 0, nil, errorf(400, "invalid_idempotency_key", "Idempotency-Key must be 1-%d bytes", MaxIdempotencyKey)
		}
		if p.IdempotencyKey != "" && p.IdempotencyKey != h {
			return 0, nil, errorf(400, "invalid_idempotency_key", "the Idempotency-Key header and idempotency_key differ")
		}
		p.IdempotencyKey = h
	}
	actor := "key:" + r.URL.Query().Get("auth_key")
	switch {
	case r.Context().Value(adminRequest{}) != nil:
		actor = "operator:admin"
	case r.Context().Value(beamsRequest{}) != nil:
		actor = "beams_key"
	}
	req := publishRequest{app: appID, actor: actor, ip: s.clientIP(r), pub: p}
	if !p.DryRun && p.IdempotencyKey != "" {
		// A retry is answered before the limits: it sends nothing, so it
		// costs no budget.
		old, found, err := s.db.PushPublishByIdempotencyKey(appID, p.IdempotencyKey, now)
		if err != nil {
			s.log.Error("push: reading an idempotency key failed", "app_id", appID, "err", err)
			return 0, nil, errorf(500, "internal_error", "reading the publish failed")
		}
		if found {
			return http.StatusAccepted, acceptAnswer(old), nil
		}
	}
	if !p.DryRun {
		d := s.allowPublish(appID)
		if !d.Allowed {
			setRateLimit(w, d)
			return s.refuse(req, "publishes_per_second", errorf(429, "rate_limited",
				"more than %d publishes per second for this app", d.Limit), d)
		}
		setRateLimit(w, d)
	}
	devices, e := s.resolve(appID, p, s.maxRecipients(appID))
	if e != nil {
		if e.status == 400 && e.code == "too_many_recipients" {
			return s.refuse(req, "recipients_per_publish", e, ratelimit.Decision{})
		}
		return 0, nil, e
	}
	if p.DryRun {
		a, e := p.RenderDryRun(len(devices), now)
		if e != nil {
			return 0, nil, e
		}
		return http.StatusOK, a, nil
	}
	req.devices = devices
	pub, e := s.enqueue(w, req)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusAccepted, acceptAnswer(pub), nil
}

// publishRequest is a publish on its way to storage.
type publishRequest struct {
	app, actor, ip string
	pub            Publish
	devices        []recipient
}

// acceptAnswer is the 202 body (spec §4.4), with Beams' publishId alias.
func acceptAnswer(p storage.PushPublish) map[string]any {
	a := map[string]any{"publish_id": p.ID, "publishId": p.ID, "state": p.State, "expected_recipients": p.Counters.Planned}
	if !p.SendAt.IsZero() {
		a["send_at"] = p.SendAt.Unix()
	}
	return a
}

func validKind(k string) bool {
	switch RecipientKind(k) {
	case ToInterests, ToUsers, ToDevices, ToChannels:
		return true
	}
	return false
}

// enqueue checks the daily quota and persists the publish with its
// deliveries; a duplicate idempotency key answers the publish it named.
func (s *Service) enqueue(w http.ResponseWriter, req publishRequest) (storage.PushPublish, *apiError) {
	if n := len(req.devices); n > 0 {
		d := s.allowNotifications(req.app, n)
		if !d.Allowed {
			if w != nil {
				setRateLimit(w, d)
			}
			_, _, e := s.refuse(req, "notifications_per_day", errorf(429, "rate_limited",
				"this publish's %d notifications exceed the app's daily quota of %d (%d left)", n, d.Limit, d.Remaining), d)
			return storage.PushPublish{}, e
		}
	}
	body, err := json.Marshal(req.pub)
	if err != nil {
		return storage.PushPublish{}, errorf(500, "internal_error", "encoding the publish failed")
	}
	dels := make([]storage.PushDelivery, len(req.devices))
	for i, d := range req.devices {
		dels[i] = storage.PushDelivery{DeviceID: d.id, Platform: d.platform}
	}
	p, err := s.db.CreatePushPublish(storage.PushPublish{App: req.app, CreatedAt: s.now(), SendAt: req.pub.SendAt,
		ExpireAt: req.pub.ExpireAt, IdempotencyKey: req.pub.IdempotencyKey, Body: body}, dels)
	if errors.Is(err, storage.ErrDuplicate) {
		return p, nil
	}
	if err != nil {
		s.log.Error("push: storing a publish failed", "app_id", req.app, "err", err)
		return storage.PushPublish{}, errorf(500, "internal_error", "storing the publish failed")
	}
	s.m.accept(req.pub.Kind)
	action := AuditPublishCreate
	if p.State == storage.PublishScheduled {
		action = AuditPublishSchedule
	}
	details := map[string]any{"kind": req.pub.Kind, "names": len(req.pub.Names), "planned": p.Counters.Planned}
	if !p.SendAt.IsZero() {
		details["send_at"] = p.SendAt.Unix()
	}
	s.record(auditRecord{app: req.app, actor: req.actor, ip: req.ip, action: action, target: "publish:" + p.ID,
		outcome: p.State, details: details})
	if s.disp != nil {
		s.disp.poke()
	}
	return p, nil
}

// refuse records a publish refused by a limit (state rate_limited, so it
// shows in the list and the audit trail) and answers e.
func (s *Service) refuse(req publishRequest, limit string, e *apiError, d ratelimit.Decision) (int, any, *apiError) {
	s.m.refuse(limit)
	if d.RetryAfter > 0 {
		e.retryAfter = int((max(d.RetryAfter, time.Second) + time.Second - 1) / time.Second)
	}
	body, _ := json.Marshal(req.pub)
	p, err := s.db.CreatePushPublish(storage.PushPublish{App: req.app, CreatedAt: s.now(), State: storage.PublishRateLimited,
		Body: body}, nil)
	target := ""
	if err != nil {
		s.log.Error("push: recording a refused publish failed", "app_id", req.app, "err", err)
	} else {
		target = "publish:" + p.ID
	}
	s.record(auditRecord{app: req.app, actor: req.actor, ip: req.ip, action: AuditLimitExceeded, target: target,
		outcome: "refused", details: map[string]any{"limit": limit}})
	return 0, nil, e
}

// setRateLimit writes the RateLimit headers of a decision with a limit.
func setRateLimit(w http.ResponseWriter, d ratelimit.Decision) {
	if d.Limit <= 0 {
		return
	}
	secs := func(t time.Duration) string { return strconv.FormatInt(int64((t+time.Second-1)/time.Second), 10) }
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", secs(d.Reset))
}

func (s *Service) allowPublish(app string) ratelimit.Decision {
	l := s.cfg.Limits.Publishes
	if q, ok := l.(quotaLimiter); ok {
		if n := s.apps.AppPushLimits(app).PublishesPerSecond; n > 0 {
			return q.AllowQuota(app, ratelimit.Quota{Limit: n, Window: time.Second})
		}
	}
	return l.Allow(app)
}

func (s *Service) allowNotifications(app string, n int) ratelimit.Decision {
	if s.cfg.Limits.Notifications == nil {
		return ratelimit.Decision{Allowed: true}
	}
	limit := s.cfg.Publish.PerDay
	if v := s.apps.AppPushLimits(app).NotificationsPerDay; v > 0 {
		limit = int64(v)
	}
	return s.cfg.Limits.Notifications.AllowN("push_notifications:"+app, int64(n), limit)
}

func (s *Service) maxRecipients(app string) int {
	if v := s.apps.AppPushLimits(app).MaxRecipientsPerPublish; v > 0 {
		return v
	}
	return s.cfg.Publish.MaxRecipients
}

// PublishView is a publish as the API shows it (spec §4.4 status shape).
type PublishView struct {
	ID          string               `json:"publish_id"`
	State       string               `json:"state"`
	CreatedAt   int64                `json:"created_at"`
	SendAt      *int64               `json:"send_at"`
	ExpireAt    *int64               `json:"expire_at,omitempty"`
	StartedAt   *int64               `json:"started_at"`
	FinishedAt  *int64               `json:"finished_at"`
	CancelledAt *int64               `json:"cancelled_at"`
	CancelledBy string               `json:"cancelled_by,omitempty"`
	Recipient   map[string]any       `json:"recipient,omitempty"`
	Counters    storage.PushCounters `json:"counters"`
	// ErrorsByReason repeats Counters.ErrorsByReason at the top, where
	// the spec's status shape has it.
	ErrorsByReason map[string]int `json:"errors_by_reason"`
}

// ViewPublish is the API's view of a stored publish: unix seconds, and
// the recipient kind and count (never the names: they can be user ids).
func ViewPublish(p storage.PushPublish) PublishView {
	ts := func(t time.Time) *int64 {
		if t.IsZero() {
			return nil
		}
		v := t.Unix()
		return &v
	}
	v := PublishView{ID: p.ID, State: p.State, CreatedAt: p.CreatedAt.Unix(), SendAt: ts(p.SendAt), ExpireAt: ts(p.ExpireAt),
		StartedAt: ts(p.StartedAt), FinishedAt: ts(p.FinishedAt), CancelledAt: ts(p.CancelledAt), CancelledBy: p.CancelledBy,
		Counters: p.Counters, ErrorsByReason: p.Counters.ErrorsByReason}
	if v.ErrorsByReason == nil {
		v.ErrorsByReason = map[string]int{}
	}
	var pub Publish
	if json.Unmarshal(p.Body, &pub) == nil && pub.Kind != "" {
		v.Recipient = map[string]any{"kind": pub.Kind, "count": len(pub.Names)}
	}
	return v
}

func (s *Service) getPublish(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	p, err := s.db.PushPublish(appID, r.PathValue("publish_id"))
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, ViewPublish(p), nil
}

// publishStates are the states a list may filter on.
var publishStates = map[string]bool{storage.PublishScheduled: true, storage.PublishQueued: true, storage.PublishDispatching: true,
	storage.PublishSucceeded: true, storage.PublishPartiallySucceeded: true, storage.PublishFailed: true,
	storage.PublishCancelled: true, storage.PublishPartiallyCancelled: true, storage.PublishExpired: true,
	storage.PublishRateLimited: true}

// listPublishes is GET /publishes?state=&since=&until=&cursor=&limit=:
// creation order; since and until (unix seconds) bound the creation time.
func (s *Service) listPublishes(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && !publishStates[state] {
		return 0, nil, errorf(400, "invalid_state", "unknown state %q", state)
	}
	limit, e := intParam(q.Get("limit"), 100, 1, 1000)
	if e != nil {
		return 0, nil, e
	}
	since, e1 := timeParam(q.Get("since"))
	until, e2 := timeParam(q.Get("until"))
	if e1 != nil || e2 != nil {
		return 0, nil, errorf(400, "invalid_time", "since and until are unix seconds")
	}
	cursor := q.Get("cursor")
	if cursor == "" && !since.IsZero() {
		// Ids start with their creation time: the id of since's first
		// millisecond, less one, starts the page there.
		cursor = sinceCursor(since)
	}
	page, next, err := s.db.PushPublishes(appID, state, cursor, limit)
	if err != nil {
		return 0, nil, storageError(err)
	}
	items := make([]PublishView, 0, len(page))
	for _, p := range page {
		if !until.IsZero() && !p.CreatedAt.Before(until) {
			next = ""
			break
		}
		items = append(items, ViewPublish(p))
	}
	var nc any
	if next != "" {
		nc = next
	}
	return http.StatusOK, map[string]any{"items": items, "next_cursor": nc}, nil
}

// sinceCursor is a cursor just before every publish id created at or
// after t ("pub_" and 12 hex digits of milliseconds).
func sinceCursor(t time.Time) string {
	ms := t.UnixMilli() - 1
	if ms < 0 {
		return ""
	}
	return "pub_" + leftPad(strconv.FormatInt(ms, 16), 12) + "ffffffffffffffff"
}

func leftPad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

func intParam(v string, def, lo, hi int) (int, *apiError) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errorf(400, "invalid_limit", "limit must be %d-%d", lo, hi)
	}
	return n, nil
}

func timeParam(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, errors.New("bad time")
	}
	return time.Unix(n, 0), nil
}

// cancelPublish is DELETE /publishes/{id}[?partial=true].
func (s *Service) cancelPublish(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	id := r.PathValue("publish_id")
	partial := r.URL.Query().Get("partial") == "true"
	actor := "key:" + r.URL.Query().Get("auth_key")
	if r.Context().Value(adminRequest{}) != nil {
		actor = "operator:admin"
	}
	p, err := s.db.CancelPushPublish(appID, id, partial, actor, s.now())
	switch {
	case errors.Is(err, storage.ErrConflict) && p.State == storage.PublishDispatching:
		return 0, nil, errorf(409, "already_dispatching", "the publish is being sent; DELETE with ?partial=true stops what is not sent yet")
	case errors.Is(err, storage.ErrConflict):
		return 0, nil, errorf(409, "already_finished", "the publish is %s", p.State)
	case err != nil:
		return 0, nil, storageError(err)
	}
	s.record(auditRecord{app: appID, actor: actor, ip: s.clientIP(r), action: AuditPublishCancel, target: "publish:" + p.ID,
		outcome: p.State, details: map[string]any{"cancelled": p.Counters.Cancelled, "partial": partial}})
	return http.StatusOK, ViewPublish(p), nil
}

// DeliveryView is one delivery as the API shows it.
type DeliveryView struct {
	Seq       uint64 `json:"seq"`
	DeviceID  string `json:"device_id"`
	Platform  string `json:"platform"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	DeadID    uint64 `json:"dead_id,omitempty"`
	Publish   string `json:"publish_id,omitempty"`
}

func viewDeliveries(ds []storage.PushDelivery, withPublish bool) []DeliveryView {
	out := make([]DeliveryView, len(ds))
	for i, d := range ds {
		out[i] = DeliveryView{Seq: d.Seq, DeviceID: d.DeviceID, Platform: d.Platform, State: d.State, Attempts: d.Attempts,
			LastError: d.LastError, DeadID: d.DeadID}
		if withPublish {
			out[i].Publish = d.Publish
		}
	}
	return out
}

// maxDeliveryList bounds GET .../deliveries.
const maxDeliveryList = 10_000

func (s *Service) publishDeliveries(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	id := r.PathValue("publish_id")
	if _, err := s.db.PushPublish(appID, id); err != nil {
		return 0, nil, storageError(err)
	}
	ds, err := s.db.PushDeliveries(appID, id)
	if err != nil {
		return 0, nil, storageError(err)
	}
	truncated := len(ds) > maxDeliveryList
	if truncated {
		ds = ds[:maxDeliveryList]
	}
	return http.StatusOK, map[string]any{"deliveries": viewDeliveries(ds, false), "truncated": truncated}, nil
}

func (s *Service) deadLetters(r *http.Request, appID string, _ []byte) (int, any, *apiError) {
	limit, e := intParam(r.URL.Query().Get("limit"), 1000, 1, maxDeliveryList)
	if e != nil {
		return 0, nil, e
	}
	ds, err := s.db.PushDeadLetters(appID, limit)
	if err != nil {
		return 0, nil, storageError(err)
	}
	return http.StatusOK, map[string]any{"dead_letters": viewDeliveries(ds, true)}, nil
}

// replayDeadLetters is POST /dead_letters/replay {"ids":[dead ids]} or {}.
func (s *Service) replayDeadLetters(r *http.Request, appID string, body []byte) (int, any, *apiError) {
	var req struct {
		IDs []uint64 `json:"ids"`
	}
	if e := decodeBody(body, &req, true); e != nil {
		return 0, nil, e
	}
	n, err := s.db.ReplayPushDeliveries(appID, req.IDs, s.now())
	if err != nil {
		return 0, nil, storageError(err)
	}
	actor := "key:" + r.URL.Query().Get("auth_key")
	if r.Context().Value(adminRequest{}) != nil {
		actor = "operator:admin"
	}
	s.record(auditRecord{app: appID, actor: actor, ip: s.clientIP(r), action: AuditPublishReplay, outcome: "ok",
		details: map[string]any{"replayed": n}})
	if s.disp != nil && n > 0 {
		s.disp.poke()
	}
	return http.StatusOK, map[string]int{"replayed": n}, nil
}

// publishLimits is GET /limits: the app's publish limits and its usage.
func (s *Service) publishLimits(_ *http.Request, appID string, _ []byte) (int, any, *apiError) {
	lim := s.apps.AppPushLimits(appID)
	perSec := s.cfg.Publish.PerSecond
	if lim.PublishesPerSecond > 0 {
		perSec = lim.PublishesPerSecond
	}
	perDay := s.cfg.Publish.PerDay
	if lim.NotificationsPerDay > 0 {
		perDay = int64(lim.NotificationsPerDay)
	}
	usage := map[string]any{}
	if s.cfg.Limits.Notifications != nil && perDay > 0 {
		d := s.cfg.Limits.Notifications.AllowN("push_notifications:"+appID, 0, perDay)
		usage["notifications_today"] = perDay - int64(d.Remaining)
		usage["day_resets_in"] = int64(d.Reset / time.Second)
	}
	return http.StatusOK, map[string]any{
		"limits": map[string]any{"publishes_per_second": perSec, "notifications_per_day": perDay,
			"max_recipients_per_publish": s.maxRecipients(appID)},
		"usage": usage,
	}, nil
}
