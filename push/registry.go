package push

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockudo/sockudo/storage"
)

var (
	// ErrNoCredential is returned when an app has no active credential
	// for a provider (none was put, or every version was revoked).
	ErrNoCredential = errors.New("push: no active credential for this provider")
	// ErrCredentialRevoked is returned for a version that was revoked.
	ErrCredentialRevoked = errors.New("push: credential version revoked")
)

// LiveCredential is one credential version with its provider client,
// ready to send. Its fields never change after the registry hands it out;
// it is safe for concurrent use. A holder may finish the send it started
// after a revoke; it should check Revoked before starting another (a
// retry, say).
type LiveCredential struct {
	App      string
	Provider CredentialProvider
	Version  uint64
	// Client is what the ClientBuilder made: *apns.Client, *fcm.Client or
	// *webpush.Sender with push/providers.
	Client any
	// Topic is the APNs credential's default topic (bundle id); "" when
	// the devices carry their own.
	Topic string
	// Environment is the APNs credential's "production", "sandbox" or
	// "both".
	Environment string

	revoked atomic.Bool
}

// Revoked reports whether the version was revoked after it was handed out.
func (c *LiveCredential) Revoked() bool { return c.revoked.Load() }

// KeyID is the Web Push key id devices remember ("v3"): the version.
func (c *LiveCredential) KeyID() string { return VAPIDKeyID(c.Version) }

// retire marks c revoked and closes its client's idle connections; sends
// in flight finish on theirs.
func (c *LiveCredential) retire() {
	c.revoked.Store(true)
	if cl, ok := c.Client.(interface{ Close() }); ok {
		cl.Close()
	}
}

// dispose lets go of a client built twice by racing lookups; no sender
// holds it.
func (c *LiveCredential) dispose() {
	if cl, ok := c.Client.(interface{ Close() }); ok {
		cl.Close()
	}
}

// VAPIDKeyID is the key id of Web Push credential version v: "v" and the
// version, what GET .../push/client/web-vapid-public-key answers as
// key_id and web devices remember.
func VAPIDKeyID(v uint64) string { return fmt.Sprintf("v%d", v) }

// ParseVAPIDKeyID reads a key id made by VAPIDKeyID.
func ParseVAPIDKeyID(id string) (uint64, bool) {
	var v uint64
	if n, err := fmt.Sscanf(id, "v%d", &v); err != nil || n != 1 || v == 0 || VAPIDKeyID(v) != id {
		return 0, false
	}
	return v, true
}

// registryShards spreads apps over locks, so lookups of different apps do
// not contend (house style 2.3: no global mutex on a hot path).
const registryShards = 32

// useRecordEvery is the least time between two use records of a version
// in storage, so the send path writes at most once a minute per version
// (sooner when its error changes).
const useRecordEvery = time.Minute

// CredentialRegistry holds the live provider clients of every app, built
// from storage on first use. A new version replaces the current client at
// once (Changed) and a revoked one is dropped at once (Revoked): lookups
// that start after either call see the change. Older Web Push versions
// stay resolvable by version, so browsers subscribed with an older VAPID
// key keep receiving. It is safe for concurrent use.
type CredentialRegistry struct {
	db    *storage.DB
	seal  *sealer // nil without an encryption key
	build ClientBuilder
	now   func() time.Time
	seed  maphash.Seed
	shard [registryShards]registryShard

	usedMu sync.Mutex
	used   map[usedKey]usedMark // guarded by usedMu
}

type registryShard struct {
	mu sync.RWMutex
	m  map[registryKey]*registryEntry // guarded by mu
}

type registryKey struct {
	app      string
	provider CredentialProvider
}

// registryEntry is what is known of one app's provider. gen moves on
// every change, so a lookup that loaded from storage before a change does
// not install what it read (identity-checked, house style 2.3).
type registryEntry struct {
	gen uint64
	// current is the newest active version; nil with currentKnown means
	// there is none.
	current      *LiveCredential
	currentKnown bool
	// versions holds the other versions looked up by number (Web Push).
	versions map[uint64]*LiveCredential
	// revoked are versions known revoked, so that sends to devices still
	// on one do not read storage each time.
	revoked map[uint64]bool
}

type usedKey struct {
	registryKey
	version uint64
}

type usedMark struct {
	at      time.Time
	problem string
}

func newCredentialRegistry(db *storage.DB, seal *sealer, build ClientBuilder, now func() time.Time) *CredentialRegistry {
	r := &CredentialRegistry{db: db, seal: seal, build: build, now: now, seed: maphash.MakeSeed(), used: map[usedKey]usedMark{}}
	for i := range r.shard {
		r.shard[i].m = map[registryKey]*registryEntry{}
	}
	return r
}

func (r *CredentialRegistry) shardOf(app string) *registryShard {
	return &r.shard[maphash.String(r.seed, app)%registryShards]
}

// Current returns the newest active version of app's credential for p, or
// ErrNoCredential, ErrCredentialKeyMissing, or an error opening it.
func (r *CredentialRegistry) Current(app string, p CredentialProvider) (*LiveCredential, error) {
	return r.lookup(app, p, 0)
}

// Version returns version v of app's credential for p, for Web Push
// devices subscribed with an older key; ErrCredentialRevoked when it was
// revoked, ErrNoCredential when it does not exist.
func (r *CredentialRegistry) Version(app string, p CredentialProvider, v uint64) (*LiveCredential, error) {
	if v == 0 {
		return nil, ErrNoCredential
	}
	return r.lookup(app, p, v)
}

// lookup finds version v (0: the current one), loading it on a miss.
func (r *CredentialRegistry) lookup(app string, p CredentialProvider, v uint64) (*LiveCredential, error) {
	k := registryKey{app, p}
	sh := r.shardOf(app)
	for attempt := 0; ; attempt++ {
		sh.mu.RLock()
		e := sh.m[k]
		var gen uint64
		if e != nil {
			gen = e.gen
			if c, err, ok := e.cached(v); ok {
				sh.mu.RUnlock()
				return c, err
			}
		}
		sh.mu.RUnlock()

		// Storage and key parsing run outside the lock.
		c, err := r.load(app, p, v)
		if err != nil && !errors.Is(err, ErrNoCredential) && !errors.Is(err, ErrCredentialRevoked) {
			return nil, err
		}

		sh.mu.Lock()
		e = sh.m[k]
		if e == nil {
			e = &registryEntry{}
			sh.m[k] = e
		}
		if e.gen != gen {
			// A change landed while we read: what we read may be stale.
			sh.mu.Unlock()
			if c != nil {
				c.dispose()
			}
			if attempt < 8 {
				continue
			}
			// Under a storm of changes, answer from storage uncached.
			return r.load(app, p, v)
		}
		if cached, cerr, ok := e.cached(v); ok { // another lookup filled it
			sh.mu.Unlock()
			if c != nil {
				c.dispose()
			}
			return cached, cerr
		}
		if c != nil {
			// One object per version, so a revoke marks every holder.
			if known, ok := e.versions[c.Version]; ok {
				c.dispose()
				c = known
			}
		}
		switch {
		case v == 0:
			e.current, e.currentKnown = c, true
		case c != nil:
			if e.versions == nil {
				e.versions = map[uint64]*LiveCredential{}
			}
			e.versions[v] = c
		case errors.Is(err, ErrCredentialRevoked):
			if e.revoked == nil {
				e.revoked = map[uint64]bool{}
			}
			e.revoked[v] = true
		}
		sh.mu.Unlock()
		if c == nil {
			if err == nil {
				err = ErrNoCredential
			}
			return nil, err
		}
		return c, nil
	}
}

// cached returns what e knows of version v (0: current); ok is false on
// a miss. Lock the shard.
func (e *registryEntry) cached(v uint64) (c *LiveCredential, err error, ok bool) {
	if v == 0 {
		if !e.currentKnown {
			return nil, nil, false
		}
		if e.current == nil {
			return nil, ErrNoCredential, true
		}
		return e.current, nil, true
	}
	if e.current != nil && e.current.Version == v {
		return e.current, nil, true
	}
	if c, ok := e.versions[v]; ok {
		return c, nil, true
	}
	if e.revoked[v] {
		return nil, ErrCredentialRevoked, true
	}
	return nil, nil, false
}

// load reads, opens and builds version v (0: the current one).
func (r *CredentialRegistry) load(app string, p CredentialProvider, v uint64) (*LiveCredential, error) {
	var (
		rec storage.PushCredential
		err error
	)
	if v == 0 {
		rec, err = r.db.CurrentPushCredential(app, string(p))
	} else {
		rec, err = r.db.PushCredential(app, string(p), v)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, err
	}
	if rec.Status == storage.PushCredentialRevoked {
		return nil, ErrCredentialRevoked
	}
	if r.seal == nil {
		return nil, ErrCredentialKeyMissing
	}
	plain, err := r.seal.open(app, p, rec.Version, rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("push: %s credential v%d of %s: %w", p, rec.Version, app, err)
	}
	return buildLive(rec, plain, r.build)
}

// buildLive opens a stored plaintext and builds its client.
func buildLive(rec storage.PushCredential, plain []byte, build ClientBuilder) (*LiveCredential, error) {
	p := CredentialProvider(rec.Provider)
	oc, err := openCredential(rec.App, p, rec.Version, plain)
	if err != nil {
		return nil, err
	}
	lc := &LiveCredential{App: rec.App, Provider: p, Version: rec.Version}
	if oc.APNs != nil {
		lc.Topic, lc.Environment = oc.APNs.Topic, oc.APNs.Environment
	}
	if build == nil {
		return nil, errors.New("push: no provider client builder configured")
	}
	if lc.Client, err = build(oc); err != nil {
		return nil, err
	}
	return lc, nil
}

// Changed tells the registry that app has a new current version for p:
// the next lookup loads it. The previous current version stays
// resolvable by number while it is not revoked (Web Push devices
// subscribed with it; APNs and FCM sends that started with it).
func (r *CredentialRegistry) Changed(app string, p CredentialProvider) {
	r.change(app, p, nil)
}

// installed tells the registry that lc was just stored as a new version:
// it becomes current at once unless a newer version already is, so the
// senders that look up next share it rather than each building one.
func (r *CredentialRegistry) installed(lc *LiveCredential) {
	k := registryKey{lc.App, lc.Provider}
	sh := r.shardOf(lc.App)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[k]
	if e == nil {
		e = &registryEntry{}
		sh.m[k] = e
	}
	e.gen++ // a lookup that read storage before this must not install
	if e.versions == nil {
		e.versions = map[uint64]*LiveCredential{}
	}
	cur := e.current
	switch {
	case cur != nil && cur.Version > lc.Version:
		// A concurrent put won: lc is only a resolvable version.
		e.versions[lc.Version] = lc
	case cur != nil || e.currentKnown:
		if cur != nil {
			e.versions[cur.Version] = cur
		}
		e.current, e.currentKnown = lc, true
	default:
		// Nothing known: whether a concurrent put stored a newer version
		// is for the next lookup to read. It will find lc by its version.
		e.versions[lc.Version] = lc
	}
}

// Revoked drops versions of app's credential for p at once: lookups that
// start after this call no longer return them, and holders see Revoked.
func (r *CredentialRegistry) Revoked(app string, p CredentialProvider, versions []uint64) {
	r.change(app, p, versions)
}

func (r *CredentialRegistry) change(app string, p CredentialProvider, revoked []uint64) {
	k := registryKey{app, p}
	sh := r.shardOf(app)
	var retired []*LiveCredential
	sh.mu.Lock()
	e := sh.m[k]
	if e == nil {
		e = &registryEntry{}
		sh.m[k] = e
	}
	e.gen++
	if e.current != nil {
		if e.versions == nil {
			e.versions = map[uint64]*LiveCredential{}
		}
		e.versions[e.current.Version] = e.current
	}
	e.current, e.currentKnown = nil, false
	for _, v := range revoked {
		if c, ok := e.versions[v]; ok {
			retired = append(retired, c)
			delete(e.versions, v)
		}
		if e.revoked == nil {
			e.revoked = map[uint64]bool{}
		}
		e.revoked[v] = true
	}
	sh.mu.Unlock()
	for _, c := range retired {
		c.retire()
	}
}

// Forget drops everything cached of app, for when the app is deleted (an
// app created later with the same id must not find its clients).
// Lookups that start after this call read storage again.
func (r *CredentialRegistry) Forget(app string) {
	sh := r.shardOf(app)
	var retired []*LiveCredential
	sh.mu.Lock()
	for k, e := range sh.m {
		if k.app != app {
			continue
		}
		if e.current != nil {
			retired = append(retired, e.current)
		}
		for _, c := range e.versions {
			if c != e.current {
				retired = append(retired, c)
			}
		}
		// Keep the entry, with a new generation, so a lookup that read
		// storage before Forget does not install what it read.
		sh.m[k] = &registryEntry{gen: e.gen + 1}
	}
	sh.mu.Unlock()
	for _, c := range retired {
		c.retire()
	}
}

// Prune forgets every app for which gone returns true (see Forget). gone
// runs without locks held.
func (r *CredentialRegistry) Prune(gone func(app string) bool) {
	seen := map[string]bool{}
	for i := range r.shard {
		sh := &r.shard[i]
		sh.mu.RLock()
		for k := range sh.m {
			seen[k.app] = true
		}
		sh.mu.RUnlock()
	}
	for app := range seen {
		if gone(app) {
			r.Forget(app)
		}
	}
}

// ReportUse records that c sent, with problem the credential's own
// failure ("" for success; a device's failure is not the credential's).
// It writes to storage at most every useRecordEvery per version, and at
// once when the problem changes, so it can be called per send.
func (r *CredentialRegistry) ReportUse(c *LiveCredential, problem string) error {
	now := r.now()
	k := usedKey{registryKey{c.App, c.Provider}, c.Version}
	r.usedMu.Lock()
	last, seen := r.used[k]
	if seen && last.problem == problem && now.Sub(last.at) < useRecordEvery {
		r.usedMu.Unlock()
		return nil
	}
	r.used[k] = usedMark{at: now, problem: problem}
	r.usedMu.Unlock()
	return r.db.RecordPushCredentialUse(c.App, string(c.Provider), c.Version, now, problem)
}
