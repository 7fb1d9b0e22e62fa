package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The push publish pipeline lives in six buckets, created on first use:
//
//	push_publishes       app \0 publish          -> JSON of [PushPublish]
//	push_publish_states  app \0 state \0 publish -> empty (list by state)
//	push_publish_idem    app \0 idempotency key  -> created ms (8 bytes) + publish id
//	push_publish_sched   send_at ms (8) + app \0 publish -> empty (scheduled ones)
//	push_publish_nums    num (8)                 -> app \0 publish
//	push_deliveries      num (8) + seq (8)       -> JSON of a delivery
//	push_delivery_due    ms (8) + delivery key   -> empty
//	push_delivery_dead   app \0 dead id (8)      -> delivery key
//	                     app                     -> count (8) of the app's dead letters
//	push_publish_done    num (8)                 -> empty (finished, not yet reported)
//
// A publish's num (from push_publish_nums' sequence) stands for it in the
// delivery keys, which are 16 bytes however long the app and publish ids.
// A pending delivery has a due entry at its next attempt and an inflight one
// at its lease expiry, so a claim is one scan of push_delivery_due from the
// start up to now: a delivery whose worker died (crash, SIGKILL) shows up
// again once its lease has expired. Delivery keys of one publish are
// sequential, and publish ids start with their creation time, so a large
// fan-out is written in key order.
var (
	bucketPushPublishes  = []byte("push_publishes")
	bucketPushPubStates  = []byte("push_publish_states")
	bucketPushPubIdem    = []byte("push_publish_idem")
	bucketPushPubSched   = []byte("push_publish_sched")
	bucketPushPubNums    = []byte("push_publish_nums")
	bucketPushDeliveries = []byte("push_deliveries")
	bucketPushDue        = []byte("push_delivery_due")
	bucketPushDead       = []byte("push_delivery_dead")
	bucketPushPubDone    = []byte("push_publish_done")
)

// Errors of the push publish methods, beside [ErrNotFound] and [ErrInvalid].
var (
	// ErrDuplicate is returned by [DB.CreatePushPublish] with the existing
	// publish when the app used the idempotency key within
	// [IdempotencyWindow].
	ErrDuplicate = errors.New("idempotency key already used")
	// ErrConflict is returned by [DB.CancelPushPublish] when the publish
	// is dispatching (and partial was not asked) or finished.
	ErrConflict = errors.New("publish cannot be cancelled in its state")
)

// IdempotencyWindow is how long an idempotency key names its publish.
const IdempotencyWindow = 24 * time.Hour

// Publish states (shared/spec/push-api.md §4.4).
const (
	PublishScheduled          = "scheduled"
	PublishQueued             = "queued"
	PublishDispatching        = "dispatching"
	PublishSucceeded          = "succeeded"
	PublishPartiallySucceeded = "partially_succeeded"
	PublishFailed             = "failed"
	PublishCancelled          = "cancelled"
	PublishPartiallyCancelled = "partially_cancelled"
	PublishExpired            = "expired"
	PublishRateLimited        = "rate_limited"
)

// Delivery states.
const (
	DeliveryPending  = "pending"
	DeliveryInflight = "inflight"
	DeliveryDone     = "done"
	DeliveryFailed   = "failed"
	DeliveryDead     = "dead"
)

// Delivery outcomes, reported through [DB.CompletePushDeliveries].
const (
	// OutcomeSent: the provider accepted the notification (done).
	OutcomeSent = "sent"
	// OutcomeInvalid: the provider reported the device gone (failed,
	// counted as invalidated).
	OutcomeInvalid = "invalid"
	// OutcomeFailed: a permanent failure not worth replaying (failed).
	OutcomeFailed = "failed"
	// OutcomeRetry: try again at RetryAt (pending).
	OutcomeRetry = "retry"
	// OutcomeDead: given up after retries (dead, kept as a dead letter and
	// replayable).
	OutcomeDead = "dead"
)

// DefaultPushLease is the lease of ClaimPushDeliveries when the caller
// passes a non-positive one.
const DefaultPushLease = time.Minute

// ReasonExpired counts, in ErrorsByReason, the deliveries still open when
// their publish's ExpireAt came.
const ReasonExpired = "expired"

// maxDeliveryError bounds the error text stored with a delivery.
const maxDeliveryError = 256

// PushPublish is one accepted publish. Body is the request as received
// (opaque JSON: package push renders it). Times are kept to the millisecond.
type PushPublish struct {
	ID    string `json:"publish_id"`
	App   string `json:"app_id"`
	State string `json:"state"`

	CreatedAt   time.Time `json:"created_at"`
	SendAt      time.Time `json:"send_at,omitzero"`
	ExpireAt    time.Time `json:"expire_at,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
	CancelledBy string    `json:"cancelled_by,omitempty"`

	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Body           json.RawMessage `json:"body,omitempty"`

	Counters PushCounters `json:"counters"`
	// Open is the number of deliveries pending or inflight; the publish
	// finishes when it reaches zero. Kept by the methods here.
	Open int `json:"open"`

	// num stands for the publish in its delivery keys (stored through
	// pubRecord).
	num uint64
	// reported: the publish went into push_publish_done when it finished,
	// so that it is reported once (FinishedPushPublishes).
	reported bool
}

// pubRecord is how a publish is stored: with its num.
type pubRecord struct {
	PushPublish
	Num      uint64 `json:"num"`
	Reported bool   `json:"reported,omitempty"`
}

// PushCounters count a publish's deliveries.
type PushCounters struct {
	Planned     int `json:"planned"`
	Sent        int `json:"sent"`
	Failed      int `json:"failed"`
	Invalidated int `json:"invalidated"`
	Retried     int `json:"retried"`
	Cancelled   int `json:"cancelled,omitempty"`
	// PerProvider is keyed by platform (apns, fcm, web).
	PerProvider    map[string]ProviderCounters `json:"per_provider,omitempty"`
	ErrorsByReason map[string]int              `json:"errors_by_reason,omitempty"`
}

// ProviderCounters count one provider's share of a publish.
type ProviderCounters struct {
	Planned     int `json:"planned"`
	Sent        int `json:"sent"`
	Failed      int `json:"failed"`
	Invalidated int `json:"invalidated"`
	Retried     int `json:"retried"`
}

// Finished reports whether the state is final.
func (p *PushPublish) Finished() bool {
	switch p.State {
	case PublishScheduled, PublishQueued, PublishDispatching:
		return false
	case PublishPartiallyCancelled:
		return p.Open == 0
	}
	return true
}

// PushDelivery is one device's share of a publish. Publish and Seq (with
// App) identify it; Seq is assigned by CreatePushPublish from 1.
type PushDelivery struct {
	App      string `json:"app_id"`
	Publish  string `json:"publish_id"`
	Seq      uint64 `json:"seq"`
	DeviceID string `json:"device_id"`
	Platform string `json:"platform"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// NextAttempt is when a pending delivery is due.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LeaseUntil is when an inflight delivery may be claimed again.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	// DeadID is the dead-letter id of a dead delivery, what
	// ReplayPushDeliveries takes.
	DeadID uint64 `json:"dead_id,omitempty"`
}

// deliveryRecord is how a delivery is stored: short names and millisecond
// times keep a 10,000-device fan-out small. App, publish and seq are the key.
type deliveryRecord struct {
	D string `json:"d"`
	P string `json:"p"`
	S string `json:"s"`
	A int    `json:"a,omitempty"`
	N int64  `json:"n,omitempty"`
	L int64  `json:"l,omitempty"`
	E string `json:"e,omitempty"`
	X uint64 `json:"x,omitempty"`
}

// PushResult is a worker's outcome for one claimed delivery.
type PushResult struct {
	App, Publish string
	Seq          uint64
	// Outcome is one of the Outcome constants.
	Outcome string
	// Reason counts the failure in ErrorsByReason ("Unregistered", ...).
	Reason string
	// Error is the detail kept with the delivery.
	Error string
	// RetryAt is when OutcomeRetry tries again (Retry-After or backoff).
	RetryAt time.Time
	// Attempt, when not zero, is the claimed delivery's Attempts: the
	// result is skipped if the delivery was claimed again since (its lease
	// expired and another worker holds it now).
	Attempt int
}

// NewPushPublishID returns "pub_", the creation time in milliseconds as 12
// hex digits (so ids, and delivery keys, sort by creation) and 16 random
// hex digits.
func NewPushPublishID(now time.Time) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("pub_%012x%s", uint64(now.UnixMilli())&0xffffffffffff, hex.EncodeToString(b[:])), nil
}

// pubBuckets are the buckets of the publish pipeline within one tx.
type pubBuckets struct {
	pubs, states, idem, sched, nums, dels, due, dead, done *bolt.Bucket
}

func openPubBuckets(tx *bolt.Tx) (*pubBuckets, error) {
	var bs pubBuckets
	for _, x := range []struct {
		b    **bolt.Bucket
		name []byte
	}{{&bs.pubs, bucketPushPublishes}, {&bs.states, bucketPushPubStates}, {&bs.idem, bucketPushPubIdem},
		{&bs.sched, bucketPushPubSched}, {&bs.nums, bucketPushPubNums}, {&bs.dels, bucketPushDeliveries}, {&bs.due, bucketPushDue},
		{&bs.dead, bucketPushDead}, {&bs.done, bucketPushPubDone}} {
		if !tx.Writable() {
			*x.b = tx.Bucket(x.name)
			if *x.b == nil {
				return nil, ErrNotFound
			}
			continue
		}
		b, err := tx.CreateBucketIfNotExists(x.name)
		if err != nil {
			return nil, err
		}
		*x.b = b
	}
	return &bs, nil
}

func msKey(t time.Time) []byte {
	var k [8]byte
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	binary.BigEndian.PutUint64(k[:], uint64(ms))
	return k[:]
}

func prefixed(prefix, rest []byte) []byte {
	k := make([]byte, 0, len(prefix)+len(rest))
	return append(append(k, prefix...), rest...)
}

func deliveryKey(num, seq uint64) []byte {
	var k [16]byte
	binary.BigEndian.PutUint64(k[:8], num)
	binary.BigEndian.PutUint64(k[8:], seq)
	return k[:]
}

func ms(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

func (bs *pubBuckets) getPub(app, id string) (*PushPublish, error) {
	v := bs.pubs.Get(join(app, id))
	if v == nil {
		return nil, ErrNotFound
	}
	var r pubRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode publish %s: %w", id, err)
	}
	r.PushPublish.num, r.PushPublish.reported = r.Num, r.Reported
	return &r.PushPublish, nil
}

// putPub writes p and moves its state index entry from oldState. A publish
// that has just finished is filed in push_publish_done, once.
func (bs *pubBuckets) putPub(p *PushPublish, oldState string) error {
	if p.Finished() && !p.FinishedAt.IsZero() && !p.reported {
		if err := bs.done.Put(seqKey(p.num), nil); err != nil {
			return err
		}
		p.reported = true
	}
	v, err := json.Marshal(pubRecord{PushPublish: *p, Num: p.num, Reported: p.reported})
	if err != nil {
		return fmt.Errorf("encode publish: %w", err)
	}
	if err := bs.pubs.Put(join(p.App, p.ID), v); err != nil {
		return err
	}
	if oldState != p.State {
		if oldState != "" {
			if err := bs.states.Delete(join(p.App, oldState, p.ID)); err != nil {
				return err
			}
		}
		if err := bs.states.Put(join(p.App, p.State, p.ID), nil); err != nil {
			return err
		}
	}
	if oldState == PublishScheduled && p.State != PublishScheduled {
		return bs.sched.Delete(prefixed(msKey(p.SendAt), join(p.App, p.ID)))
	}
	return nil
}

// getDelivery reads the delivery with key k, naming its app and publish.
func (bs *pubBuckets) getDelivery(k []byte) (*PushDelivery, error) {
	v := bs.dels.Get(k)
	if v == nil || len(k) != 16 {
		return nil, ErrNotFound
	}
	d, err := decodeDelivery(v)
	if err != nil {
		return nil, err
	}
	owner := bs.nums.Get(k[:8])
	i := bytes.IndexByte(owner, 0)
	if i < 0 {
		return nil, ErrNotFound // an orphan: skip it rather than wedge the queue
	}
	d.App, d.Publish, d.Seq = string(owner[:i]), string(owner[i+1:]), binary.BigEndian.Uint64(k[8:])
	return d, nil
}

func decodeDelivery(v []byte) (*PushDelivery, error) {
	var r deliveryRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	return &PushDelivery{DeviceID: r.D, Platform: r.P, State: r.S, Attempts: r.A, NextAttempt: fromUnixMs(r.N),
		LeaseUntil: fromUnixMs(r.L), LastError: r.E, DeadID: r.X}, nil
}

func (bs *pubBuckets) putDelivery(k []byte, d *PushDelivery) error {
	v, err := json.Marshal(deliveryRecord{D: d.DeviceID, P: d.Platform, S: d.State, A: d.Attempts,
		N: unixMs(d.NextAttempt), L: unixMs(d.LeaseUntil), E: d.LastError, X: d.DeadID})
	if err != nil {
		return fmt.Errorf("encode delivery: %w", err)
	}
	return bs.dels.Put(k, v)
}

// dueAt is the time at which d's due entry is filed, or false when it has
// none (finished deliveries).
func dueAt(d *PushDelivery) (time.Time, bool) {
	switch d.State {
	case DeliveryPending:
		return d.NextAttempt, true
	case DeliveryInflight:
		return d.LeaseUntil, true
	}
	return time.Time{}, false
}

func (bs *pubBuckets) unfile(k []byte, d *PushDelivery) error {
	if t, ok := dueAt(d); ok {
		return bs.due.Delete(prefixed(msKey(t), k))
	}
	return nil
}

func (bs *pubBuckets) file(k []byte, d *PushDelivery) error {
	if t, ok := dueAt(d); ok {
		return bs.due.Put(prefixed(msKey(t), k), nil)
	}
	return nil
}

// CreatePushPublish stores p and its deliveries in one transaction and
// returns the stored publish: a new id unless p.ID is set, state scheduled
// when p.SendAt is after p.CreatedAt (zero means now) and queued otherwise,
// counters planned, and every delivery pending, due at SendAt (or
// CreatedAt). Only DeviceID and Platform of the deliveries are used; the
// slice is not modified. When p.IdempotencyKey was used by the app within
// IdempotencyWindow, nothing is stored and the existing publish is
// returned with ErrDuplicate. A publish passed in state PublishRateLimited
// is the record of a refusal: stored finished, without deliveries, and
// without claiming its idempotency key.
func (db *DB) CreatePushPublish(p PushPublish, deliveries []PushDelivery) (PushPublish, error) {
	if !validKeyPart(p.App) || p.IdempotencyKey != "" && !validKeyPart(p.IdempotencyKey) {
		return PushPublish{}, fmt.Errorf("storage: create push publish: %w", ErrInvalid)
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now()
	}
	p.CreatedAt, p.SendAt, p.ExpireAt = ms(p.CreatedAt), ms(p.SendAt), ms(p.ExpireAt)
	if p.ID == "" {
		id, err := NewPushPublishID(p.CreatedAt)
		if err != nil {
			return PushPublish{}, fmt.Errorf("storage: create push publish: %w", err)
		}
		p.ID = id
	}
	if !validKeyPart(p.ID) {
		return PushPublish{}, fmt.Errorf("storage: create push publish: %w", ErrInvalid)
	}
	refused := p.State == PublishRateLimited
	if refused {
		if len(deliveries) > 0 {
			return PushPublish{}, fmt.Errorf("storage: create push publish: a refused publish has no deliveries: %w", ErrInvalid)
		}
		// The key stays free: the caller may send the same publish again
		// once the limit allows it.
		p.IdempotencyKey = ""
	}
	p.State = PublishQueued
	due := p.CreatedAt
	if p.SendAt.After(p.CreatedAt) {
		p.State, due = PublishScheduled, p.SendAt
	}
	p.StartedAt, p.FinishedAt, p.CancelledAt, p.CancelledBy = time.Time{}, time.Time{}, time.Time{}, ""
	p.Counters = PushCounters{Planned: len(deliveries)}
	p.Open = len(deliveries)
	for _, d := range deliveries {
		if !validKeyPart(d.DeviceID) || d.Platform == "" {
			return PushPublish{}, fmt.Errorf("storage: create push publish: delivery: %w", ErrInvalid)
		}
		pc := p.Counters.PerProvider[d.Platform]
		pc.Planned++
		if p.Counters.PerProvider == nil {
			p.Counters.PerProvider = map[string]ProviderCounters{}
		}
		p.Counters.PerProvider[d.Platform] = pc
	}
	if len(deliveries) == 0 {
		p.State, p.FinishedAt = PublishSucceeded, p.CreatedAt
	}
	if refused {
		p.State = PublishRateLimited
	}

	var out PushPublish
	var dup bool
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		if p.IdempotencyKey != "" {
			ik := join(p.App, p.IdempotencyKey)
			if v := bs.idem.Get(ik); len(v) > 8 {
				at := time.UnixMilli(int64(binary.BigEndian.Uint64(v[:8])))
				if p.CreatedAt.Before(at.Add(IdempotencyWindow)) {
					old, err := bs.getPub(p.App, string(v[8:]))
					if err == nil {
						out, dup = *old, true
						return nil
					}
					if !errors.Is(err, ErrNotFound) {
						return err
					}
				}
			}
			if err := bs.idem.Put(ik, append(msKey(p.CreatedAt), p.ID...)); err != nil {
				return err
			}
		}
		if bs.pubs.Get(join(p.App, p.ID)) != nil {
			return ErrExists
		}
		if p.num, err = bs.nums.NextSequence(); err != nil {
			return err
		}
		if err := bs.nums.Put(seqKey(p.num), join(p.App, p.ID)); err != nil {
			return err
		}
		if err := bs.putPub(&p, ""); err != nil {
			return err
		}
		if p.State == PublishScheduled {
			if err := bs.sched.Put(prefixed(msKey(p.SendAt), join(p.App, p.ID)), nil); err != nil {
				return err
			}
		}
		// Keys ascend in both buckets: let bbolt fill its pages.
		bs.dels.FillPercent, bs.due.FillPercent = 0.9, 0.9
		prefix := seqKey(p.num)
		dueKey := prefixed(msKey(due), prefix)
		for i, d := range deliveries {
			rec := PushDelivery{DeviceID: d.DeviceID, Platform: d.Platform, State: DeliveryPending, NextAttempt: due}
			k := append(prefix[:len(prefix):len(prefix)], seqKey(uint64(i+1))...)
			if err := bs.putDelivery(k, &rec); err != nil {
				return err
			}
			dk := append(dueKey[:len(dueKey):len(dueKey)], seqKey(uint64(i+1))...)
			if err := bs.due.Put(dk, nil); err != nil {
				return err
			}
		}
		out = p
		return nil
	})
	if err != nil {
		return PushPublish{}, fmt.Errorf("storage: create push publish: %w", err)
	}
	if dup {
		return out, fmt.Errorf("storage: create push publish: key %q names %s: %w", p.IdempotencyKey, out.ID, ErrDuplicate)
	}
	return out, nil
}

// PushPublishByIdempotencyKey returns the publish that key names for app,
// if the key was used within IdempotencyWindow before now: a retry is
// answered with it before it costs the app any rate-limit budget.
func (db *DB) PushPublishByIdempotencyKey(app, key string, now time.Time) (PushPublish, bool, error) {
	var out PushPublish
	found := false
	if !validKeyPart(app) || !validKeyPart(key) {
		return out, false, nil
	}
	err := db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if errors.Is(err, ErrNotFound) {
			return nil // no publish yet
		}
		if err != nil {
			return err
		}
		v := bs.idem.Get(join(app, key))
		if len(v) <= 8 || !now.Before(time.UnixMilli(int64(binary.BigEndian.Uint64(v[:8]))).Add(IdempotencyWindow)) {
			return nil
		}
		p, err := bs.getPub(app, string(v[8:]))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out, found = *p, true
		return nil
	})
	if err != nil {
		return PushPublish{}, false, fmt.Errorf("storage: push publish by idempotency key: %w", err)
	}
	return out, found, nil
}

// PushPublish returns one publish.
func (db *DB) PushPublish(app, id string) (PushPublish, error) {
	var out PushPublish
	err := db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		p, err := bs.getPub(app, id)
		if err != nil {
			return err
		}
		out = *p
		return nil
	})
	if err != nil {
		return PushPublish{}, fmt.Errorf("storage: get push publish %s: %w", id, err)
	}
	return out, nil
}

// PushPublishes lists the app's publishes in id order (creation order),
// those in state only unless state is "", after the id cursor (""
// starts at the first), at most limit (non-positive means 100). next is
// the cursor of the following page, "" after the last.
func (db *DB) PushPublishes(app, state, cursor string, limit int) (out []PushPublish, next string, err error) {
	if limit <= 0 {
		limit = 100
	}
	out = []PushPublish{}
	err = db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var c *bolt.Cursor
		var prefix []byte
		if state == "" {
			c, prefix = bs.pubs.Cursor(), join(app, "")
		} else {
			c, prefix = bs.states.Cursor(), join(app, state, "")
		}
		start := prefix
		if cursor != "" {
			start = append(prefixed(prefix, []byte(cursor)), 0)
		}
		for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			p, err := bs.getPub(app, string(k[len(prefix):]))
			if err != nil {
				return err
			}
			out = append(out, *p)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("storage: list push publishes of %s: %w", app, err)
	}
	return out, next, nil
}

// DuePushPublishes returns up to limit scheduled publishes (non-positive
// means 100) whose SendAt is at or before now, earliest first.
func (db *DB) DuePushPublishes(now time.Time, limit int) ([]PushPublish, error) {
	if limit <= 0 {
		limit = 100
	}
	out := []PushPublish{}
	end := msKey(now)
	err := db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		c := bs.sched.Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit && bytes.Compare(k[:8], end) <= 0; k, _ = c.Next() {
			parts := bytes.SplitN(k[8:], []byte{0}, 2)
			if len(parts) != 2 {
				return fmt.Errorf("malformed schedule key %q", k)
			}
			p, err := bs.getPub(string(parts[0]), string(parts[1]))
			if err != nil {
				return err
			}
			out = append(out, *p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: due push publishes: %w", err)
	}
	return out, nil
}

// ClaimPushDeliveries moves up to limit deliveries that are due at now
// (pending ones whose next attempt came, and inflight ones whose lease
// expired: their worker died) to inflight until now+lease, counts an
// attempt on each and returns them, in due order. Their publishes become
// dispatching. A delivery claimed again after its lease expired may have
// been sent already: delivery is at least once, and the duplicates are
// bounded by what was in flight. A non-positive lease means
// DefaultPushLease.
func (db *DB) ClaimPushDeliveries(now time.Time, limit int, lease time.Duration) ([]PushDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		lease = DefaultPushLease
	}
	now = ms(now)
	end := msKey(now)
	// Nothing due (the idle dispatcher asks every second): a read
	// transaction instead of a commit with its fdatasync. Keys start with
	// the due time, so the first key decides.
	if has, err := db.hasKeys(bucketPushDue, end); err != nil || !has {
		if err != nil {
			return nil, fmt.Errorf("storage: claim push deliveries: %w", err)
		}
		return nil, nil
	}
	var out []PushDelivery
	err := db.update(func(tx *bolt.Tx) error {
		out = nil
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		var keys [][]byte
		c := bs.due.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < limit && bytes.Compare(k[:8], end) <= 0; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		pubs := map[string]*PushPublish{}
		olds := map[string]string{}
		for _, dk := range keys {
			if err := bs.due.Delete(dk); err != nil {
				return err
			}
			k := dk[8:]
			d, err := bs.getDelivery(k)
			if errors.Is(err, ErrNotFound) {
				continue // a stale index entry
			}
			if err != nil {
				return err
			}
			pk := d.App + "\x00" + d.Publish
			p := pubs[pk]
			if p == nil {
				if p, err = bs.getPub(d.App, d.Publish); err != nil {
					return err
				}
				pubs[pk], olds[pk] = p, p.State
			}
			if p.State == PublishScheduled || p.State == PublishQueued {
				p.State, p.StartedAt = PublishDispatching, now
			}
			if !p.ExpireAt.IsZero() && !now.Before(p.ExpireAt) {
				// Too late to send: fail it rather than hand it out.
				d.State, d.NextAttempt, d.LeaseUntil, d.LastError = DeliveryFailed, time.Time{}, time.Time{}, ReasonExpired
				p.Counters.Failed++
				pc := p.Counters.PerProvider[d.Platform]
				pc.Failed++
				if p.Counters.PerProvider == nil {
					p.Counters.PerProvider = map[string]ProviderCounters{}
				}
				p.Counters.PerProvider[d.Platform] = pc
				if p.Counters.ErrorsByReason == nil {
					p.Counters.ErrorsByReason = map[string]int{}
				}
				p.Counters.ErrorsByReason[ReasonExpired]++
				p.Open--
				if err := bs.putDelivery(k, d); err != nil {
					return err
				}
				continue
			}
			d.State, d.LeaseUntil, d.NextAttempt = DeliveryInflight, now.Add(lease), time.Time{}
			d.Attempts++
			if err := bs.putDelivery(k, d); err != nil {
				return err
			}
			if err := bs.file(k, d); err != nil {
				return err
			}
			out = append(out, *d)
		}
		for pk, p := range pubs {
			finish(p, now)
			if err := bs.putPub(p, olds[pk]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: claim push deliveries: %w", err)
	}
	return out, nil
}

// CompletePushDeliveries records the outcomes of claimed deliveries and
// updates their publishes' counters, and states once no delivery is open,
// in one transaction. A result for a delivery that is not inflight (a late
// worker whose lease expired and whose delivery finished elsewhere, or a
// cancelled one), or that was claimed again since (see
// PushResult.Attempt), is skipped. OutcomeDead files a dead letter of the app,
// which keeps at most maxDead (non-positive means DefaultMaxDeadLetters;
// the oldest are dropped from the list, the delivery stays dead). It
// returns how many results were applied.
func (db *DB) CompletePushDeliveries(results []PushResult, now time.Time, maxDead int) (int, error) {
	if len(results) == 0 {
		return 0, nil
	}
	now = ms(now)
	var n int
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		pubs := map[string]*PushPublish{}
		olds := map[string]string{}
		var deadApps []string
		for _, r := range results {
			pk := r.App + "\x00" + r.Publish
			p := pubs[pk]
			if p == nil {
				var err error
				p, err = bs.getPub(r.App, r.Publish)
				if errors.Is(err, ErrNotFound) {
					continue // purged
				}
				if err != nil {
					return err
				}
				pubs[pk], olds[pk] = p, p.State
			}
			k := deliveryKey(p.num, r.Seq)
			d, err := bs.getDelivery(k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if d.State != DeliveryInflight || r.Attempt != 0 && r.Attempt != d.Attempts {
				continue
			}
			if err := bs.unfile(k, d); err != nil {
				return err
			}
			d.LeaseUntil = time.Time{}
			if r.Error != "" {
				d.LastError = truncate(r.Error, maxDeliveryError)
			}
			c := &p.Counters
			pc := c.PerProvider[d.Platform]
			switch r.Outcome {
			case OutcomeSent:
				d.State = DeliveryDone
				c.Sent++
				pc.Sent++
			case OutcomeInvalid:
				d.State = DeliveryFailed
				c.Invalidated++
				pc.Invalidated++
			case OutcomeFailed:
				d.State = DeliveryFailed
				c.Failed++
				pc.Failed++
			case OutcomeDead:
				d.State = DeliveryDead
				c.Failed++
				pc.Failed++
				id, err := bs.dead.NextSequence()
				if err != nil {
					return err
				}
				d.DeadID = id
				if err := bs.dead.Put(append(join(r.App, ""), seqKey(id)...), k); err != nil {
					return err
				}
				if err := bs.addDead(r.App, 1); err != nil {
					return err
				}
				if !containsString(deadApps, r.App) {
					deadApps = append(deadApps, r.App)
				}
			case OutcomeRetry:
				d.State, d.NextAttempt = DeliveryPending, ms(r.RetryAt)
				if d.NextAttempt.Before(now) {
					d.NextAttempt = now
				}
				c.Retried++
				pc.Retried++
			default:
				return fmt.Errorf("%w: outcome %q", ErrInvalid, r.Outcome)
			}
			if r.Outcome != OutcomeSent && r.Outcome != OutcomeRetry && r.Reason != "" {
				if c.ErrorsByReason == nil {
					c.ErrorsByReason = map[string]int{}
				}
				c.ErrorsByReason[r.Reason]++
			}
			if c.PerProvider == nil {
				c.PerProvider = map[string]ProviderCounters{}
			}
			c.PerProvider[d.Platform] = pc
			if r.Outcome != OutcomeRetry {
				p.Open--
			}
			if err := bs.putDelivery(k, d); err != nil {
				return err
			}
			if err := bs.file(k, d); err != nil {
				return err
			}
			n++
		}
		for pk, p := range pubs {
			finish(p, now)
			if err := bs.putPub(p, olds[pk]); err != nil {
				return err
			}
		}
		for _, app := range deadApps {
			if err := bs.trimDead(app, maxDead); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: complete push deliveries: %w", err)
	}
	return n, nil
}

// finish sets the final state of p once no delivery is open.
func finish(p *PushPublish, now time.Time) {
	if p.Open > 0 || !p.FinishedAt.IsZero() {
		return
	}
	c := p.Counters
	switch p.State {
	case PublishDispatching, PublishQueued, PublishScheduled:
		switch {
		case c.Sent == 0 && c.ErrorsByReason[ReasonExpired] > 0:
			p.State = PublishExpired
		case c.Sent == c.Planned:
			p.State = PublishSucceeded
		case c.Sent == 0:
			p.State = PublishFailed
		default:
			p.State = PublishPartiallySucceeded
		}
	case PublishPartiallyCancelled, PublishCancelled:
	default:
		return
	}
	p.FinishedAt = now
}

// trimDead drops the oldest dead letters of app beyond keep. The count
// kept beside them makes this O(dropped), not a read of every dead letter
// per dead delivery.
func (bs *pubBuckets) trimDead(app string, keep int) error {
	if keep <= 0 {
		keep = DefaultMaxDeadLetters
	}
	excess := bs.deadCount(app) - keep
	if excess <= 0 {
		return nil
	}
	prefix := join(app, "")
	c := bs.dead.Cursor()
	var drop [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(drop) < excess; k, _ = c.Next() {
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		if err := bs.dead.Delete(k); err != nil {
			return err
		}
	}
	return bs.addDead(app, -len(drop))
}

// deadCount is how many dead letters app has listed.
func (bs *pubBuckets) deadCount(app string) int {
	v := bs.dead.Get([]byte(app))
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

// addDead changes app's dead-letter count by delta.
func (bs *pubBuckets) addDead(app string, delta int) error {
	n := max(bs.deadCount(app)+delta, 0)
	if n == 0 {
		return bs.dead.Delete([]byte(app))
	}
	return bs.dead.Put([]byte(app), seqKey(uint64(n)))
}

// CancelPushPublish cancels a publish for the actor by. A scheduled or
// queued publish becomes cancelled and its deliveries are dropped. A
// dispatching one is refused with ErrConflict unless partial, which drops
// its pending deliveries (inflight ones still complete) and makes it
// partially_cancelled. A finished publish is refused with ErrConflict.
func (db *DB) CancelPushPublish(app, id string, partial bool, by string, now time.Time) (PushPublish, error) {
	now = ms(now)
	var out PushPublish
	err := db.update(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		p, err := bs.getPub(app, id)
		if err != nil {
			return err
		}
		old := p.State
		switch {
		case old == PublishScheduled || old == PublishQueued:
			p.State = PublishCancelled
		case old == PublishDispatching && partial:
			p.State = PublishPartiallyCancelled
		default:
			out = *p
			return ErrConflict
		}
		prefix := seqKey(p.num)
		var drop [][]byte
		c := bs.dels.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			d, err := decodeDelivery(v)
			if err != nil {
				return err
			}
			if d.State == DeliveryPending || p.State == PublishCancelled {
				if err := bs.unfile(k, d); err != nil {
					return err
				}
				drop = append(drop, bytes.Clone(k))
			}
		}
		for _, k := range drop {
			if err := bs.dels.Delete(k); err != nil {
				return err
			}
		}
		p.Counters.Cancelled += len(drop)
		p.Open -= len(drop)
		p.CancelledAt, p.CancelledBy = now, by
		if p.State == PublishCancelled {
			p.FinishedAt = now
		} else {
			finish(p, now)
		}
		out = *p
		return bs.putPub(p, old)
	})
	if err != nil {
		return out, fmt.Errorf("storage: cancel push publish %s: %w", id, err)
	}
	return out, nil
}

// PushDeadLetters returns up to limit (non-positive means all) of the
// app's dead deliveries, oldest first.
func (db *DB) PushDeadLetters(app string, limit int) ([]PushDelivery, error) {
	out := []PushDelivery{}
	err := db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		prefix := join(app, "")
		c := bs.dead.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			d, err := bs.getDelivery(v)
			if err != nil {
				return err
			}
			out = append(out, *d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: push dead letters of %s: %w", app, err)
	}
	return out, nil
}

// ReplayPushDeliveries makes the app's dead letters with the given dead
// ids (all of them when ids is empty) pending again, due at now, with no
// attempts; their publishes count them as open again (and failed no more)
// and go back to dispatching. It returns how many were replayed.
func (db *DB) ReplayPushDeliveries(app string, ids []uint64, now time.Time) (int, error) {
	now = ms(now)
	var n int
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		prefix := join(app, "")
		var deadKeys [][]byte
		if len(ids) == 0 {
			deadKeys = prefixKeys(bs.dead, prefix)
		} else {
			for _, id := range ids {
				deadKeys = append(deadKeys, append(bytes.Clone(prefix), seqKey(id)...))
			}
		}
		pubs := map[string]*PushPublish{}
		olds := map[string]string{}
		for _, dk := range deadKeys {
			v := bs.dead.Get(dk)
			if v == nil {
				continue
			}
			k := bytes.Clone(v)
			if err := bs.dead.Delete(dk); err != nil {
				return err
			}
			if err := bs.addDead(app, -1); err != nil {
				return err
			}
			d, err := bs.getDelivery(k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if d.State != DeliveryDead {
				continue
			}
			pk := d.App + "\x00" + d.Publish
			p := pubs[pk]
			if p == nil {
				if p, err = bs.getPub(d.App, d.Publish); err != nil {
					return err
				}
				pubs[pk], olds[pk] = p, p.State
			}
			d.State, d.NextAttempt, d.Attempts, d.DeadID = DeliveryPending, now, 0, 0
			if err := bs.putDelivery(k, d); err != nil {
				return err
			}
			if err := bs.file(k, d); err != nil {
				return err
			}
			pc := p.Counters.PerProvider[d.Platform]
			pc.Failed--
			p.Counters.PerProvider[d.Platform] = pc
			p.Counters.Failed--
			p.Open++
			n++
		}
		for pk, p := range pubs {
			if p.State != PublishPartiallyCancelled && p.State != PublishCancelled {
				p.State = PublishDispatching
			}
			p.FinishedAt, p.reported = time.Time{}, false
			if err := bs.putPub(p, olds[pk]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: replay push deliveries of %s: %w", app, err)
	}
	return n, nil
}

// PurgePushPublishes deletes up to limit (non-positive means 1000) of the
// app's finished publishes that finished before before, with their
// deliveries, dead letters and idempotency key, oldest created first, and
// returns how many it deleted. Keep before at least IdempotencyWindow ago
// so that keys keep naming their publishes for the whole window.
func (db *DB) PurgePushPublishes(app string, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	// The sweep asks for every app at start and every hour, and most have
	// nothing to purge: find out in a read transaction, because a write
	// transaction commits (with an fdatasync) even when it changes nothing.
	var found bool
	err := db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if errors.Is(err, ErrNotFound) {
			return nil // no publish was ever stored
		}
		if err != nil {
			return err
		}
		gone, err := bs.purgeable(app, before, 1)
		found = len(gone) > 0
		return err
	})
	if err != nil || !found {
		if err != nil {
			return 0, fmt.Errorf("storage: purge push publishes of %s: %w", app, err)
		}
		return 0, nil
	}
	var n int
	err = db.update(func(tx *bolt.Tx) error {
		n = 0
		bs, err := openPubBuckets(tx)
		if err != nil {
			return err
		}
		gone, err := bs.purgeable(app, before, limit)
		if err != nil {
			return err
		}
		for _, p := range gone {
			if err := bs.deletePub(p); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: purge push publishes of %s: %w", app, err)
	}
	return n, nil
}

// purgeable returns up to limit of app's publishes that finished before
// before.
func (bs *pubBuckets) purgeable(app string, before time.Time, limit int) ([]*PushPublish, error) {
	var gone []*PushPublish
	prefix := join(app, "")
	c := bs.pubs.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(gone) < limit; k, _ = c.Next() {
		p, err := bs.getPub(app, string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		if p.Finished() && !p.FinishedAt.IsZero() && p.FinishedAt.Before(before) {
			gone = append(gone, p)
		}
	}
	return gone, nil
}

// deletePub deletes p, its index entries and its deliveries.
func (bs *pubBuckets) deletePub(p *PushPublish) error {
	prefix := seqKey(p.num)
	var keys [][]byte
	c := bs.dels.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		d, err := decodeDelivery(v)
		if err != nil {
			return err
		}
		if err := bs.unfile(k, d); err != nil {
			return err
		}
		if dk := append(join(p.App, ""), seqKey(d.DeadID)...); d.DeadID != 0 && bs.dead.Get(dk) != nil {
			if err := bs.dead.Delete(dk); err != nil {
				return err
			}
			if err := bs.addDead(p.App, -1); err != nil {
				return err
			}
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := bs.dels.Delete(k); err != nil {
			return err
		}
	}
	if p.IdempotencyKey != "" {
		ik := join(p.App, p.IdempotencyKey)
		if v := bs.idem.Get(ik); len(v) > 8 && string(v[8:]) == p.ID {
			if err := bs.idem.Delete(ik); err != nil {
				return err
			}
		}
	}
	if p.State == PublishScheduled {
		if err := bs.sched.Delete(prefixed(msKey(p.SendAt), join(p.App, p.ID))); err != nil {
			return err
		}
	}
	if err := bs.states.Delete(join(p.App, p.State, p.ID)); err != nil {
		return err
	}
	if err := bs.nums.Delete(seqKey(p.num)); err != nil {
		return err
	}
	if err := bs.done.Delete(seqKey(p.num)); err != nil {
		return err
	}
	return bs.pubs.Delete(join(p.App, p.ID))
}

// PushDeliveries returns the deliveries of a publish in seq order.
func (db *DB) PushDeliveries(app, id string) ([]PushDelivery, error) {
	out := []PushDelivery{}
	err := db.view(func(tx *bolt.Tx) error {
		bs, err := openPubBuckets(tx)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := bs.getPub(app, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		prefix := seqKey(p.num)
		c := bs.dels.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			d, err := bs.getDelivery(k)
			if err != nil {
				return err
			}
			out = append(out, *d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: push deliveries of %s: %w", id, err)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// prefixKeys returns copies of b's keys that start with prefix, in order:
// safe to delete by while iterating, and after the transaction.
func prefixKeys(b *bolt.Bucket, prefix []byte) [][]byte {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}
