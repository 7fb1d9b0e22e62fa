package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The push audit trail (shared/spec/push-api.md §4.7) lives in two
// buckets, created on first use:
//
//	push_audit         app \0 id (8 bytes) -> JSON of [PushAuditEntry]
//	push_audit_chains  app -> JSON of pushAuditChain (head and anchor)
//
// Each app's entries form one hash chain: an entry's PrevHash is the Hash
// of the app's previous entry and its Hash covers every other field (see
// pushAuditHash). The chain record keeps the head (the newest id and hash),
// so a truncated tail is seen too, and the anchor (the id and hash of the
// last entry purged by retention), so the oldest entry still stored has
// something to link to.
//
// Tamper-evident, not tamper-proof: the hashes are keyless, so whoever can
// rewrite the file can rewrite a whole chain consistently. What they cannot
// do is change, drop, reorder or move an entry between apps without
// rewriting everything after it, which a head hash kept elsewhere (a
// verify run's output, an external log) then exposes.
var (
	bucketPushAudit       = []byte("push_audit")
	bucketPushAuditChains = []byte("push_audit_chains")
)

// Push audit listing bounds.
const (
	// DefaultPushAuditLimit is the page size of a zero PushAuditFilter.Limit.
	DefaultPushAuditLimit = 100
	// MaxPushAuditLimit is the largest page.
	MaxPushAuditLimit = 1000
)

// PushAuditEntry is one entry of an app's push audit trail.
type PushAuditEntry struct {
	// ID numbers the app's entries from 1; set by AppendPushAudit.
	ID uint64 `json:"id"`
	// Time is when it happened, kept to the millisecond in UTC; zero means
	// when appended.
	Time time.Time `json:"ts"`
	App  string    `json:"app_id"`
	// Actor is who: "key:<auth_key>", "device:<id>", "system",
	// "provider:apns|fcm|web", "operator:cli".
	Actor string `json:"actor"`
	// Action is what: credential.put, credential.validate,
	// credential.revoke, publish.create, publish.schedule, publish.cancel,
	// publish.expire, publish.finish, device.invalidated, limit.exceeded.
	Action string `json:"action"`
	// Target is what it was done to: "publish:pub_…", "device:<id>",
	// "credential:apns/v2".
	Target    string `json:"target,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	RemoteIP  string `json:"remote_ip,omitempty"`
	// Outcome is "ok", "refused", …
	Outcome string `json:"outcome,omitempty"`
	// Details is a JSON object; never secrets or raw tokens (token_hash
	// only).
	Details json.RawMessage `json:"details,omitempty"`
	// PrevHash is the Hash of the app's previous entry, "" for its first.
	PrevHash string `json:"prev_hash"`
	// Hash is the hex sha256 of the entry's canonical encoding (every
	// field but Hash; see pushAuditHash).
	Hash string `json:"hash"`
}

// PushAuditFilter selects entries of one app; zero fields match
// everything. Since and Until bound Time (Since inclusive, Until
// exclusive). Cursor is the next value of the previous page ("" starts at
// the oldest). Limit 0 means DefaultPushAuditLimit, and it is at most
// MaxPushAuditLimit.
type PushAuditFilter struct {
	Since, Until          time.Time
	Action, Actor, Target string
	Cursor                string
	Limit                 int
}

// PushAuditReport is the outcome of verifying one app's chain. FirstBad is
// the id of the first entry that is changed, missing or out of place; 0
// when OK.
type PushAuditReport struct {
	App      string `json:"app_id"`
	Entries  int    `json:"entries"`
	OK       bool   `json:"ok"`
	FirstBad uint64 `json:"first_bad_id,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// pushAuditChain is an app's chain record.
type pushAuditChain struct {
	// LastID and LastHash are the newest entry's (the anchor's after a
	// purge of everything).
	LastID   uint64 `json:"last_id"`
	LastHash string `json:"last_hash"`
	// AnchorID and AnchorHash are the last purged entry's; zero before any
	// purge.
	AnchorID   uint64 `json:"anchor_id,omitempty"`
	AnchorHash string `json:"anchor_hash,omitempty"`
}

// pushAuditDomain starts every hashed encoding, so the hash of an entry
// can never be mistaken for a hash of anything else we store.
const pushAuditDomain = "sockudo push audit v1\x00"

// pushAuditHash returns the hex sha256 of e's canonical encoding: the
// domain string, then ID and Time (Unix milliseconds) as 8 big-endian bytes
// each, then App, Actor, Action, Target, RequestID, RemoteIP, Outcome,
// Details and PrevHash in that order, each as an 8-byte big-endian length
// followed by its bytes. Length prefixes keep field boundaries unambiguous
// ("ab","c" and "a","bc" differ), and PrevHash, App and ID inside the hash
// make an entry's place part of what it says: moved, renumbered or
// re-linked, it no longer matches. Details are hashed as stored (compact
// JSON, see normalizeDetails).
func pushAuditHash(e *PushAuditEntry) string {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte(pushAuditDomain))
	binary.BigEndian.PutUint64(n[:], e.ID)
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.Time.UnixMilli()))
	h.Write(n[:])
	for _, f := range [][]byte{[]byte(e.App), []byte(e.Actor), []byte(e.Action), []byte(e.Target),
		[]byte(e.RequestID), []byte(e.RemoteIP), []byte(e.Outcome), e.Details, []byte(e.PrevHash)} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// normalizeDetails returns d as json.Marshal will store it (compact, HTML
// characters escaped), so the bytes hashed at append are the bytes read
// back at verify. It must be a JSON object, or empty.
func normalizeDetails(d json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(d)) == 0 {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(d, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: details must be a JSON object", ErrInvalid)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// pushAuditKey is app \0 id.
func pushAuditKey(app string, id uint64) []byte {
	return append(join(app, ""), seqKey(id)...)
}

func getChain(chains *bolt.Bucket, app string) (pushAuditChain, bool, error) {
	var c pushAuditChain
	v := chains.Get([]byte(app))
	if v == nil {
		return c, false, nil
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, true, fmt.Errorf("chain of %s: %w", app, err)
	}
	return c, true, nil
}

func putChain(chains *bolt.Bucket, app string, c pushAuditChain) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return chains.Put([]byte(app), v)
}

// AppendPushAudit appends entries, in one transaction, each to its app's
// chain: it numbers them, stamps a zero Time with now, keeps times to the
// millisecond, links and hashes them, and returns them as stored. App,
// Actor and Action are required, and Details must be a JSON object;
// otherwise nothing is stored and the error wraps ErrInvalid.
func (db *DB) AppendPushAudit(entries []PushAuditEntry) ([]PushAuditEntry, error) {
	if len(entries) == 0 {
		return []PushAuditEntry{}, nil
	}
	now := time.Now()
	in := make([]PushAuditEntry, len(entries))
	for i, e := range entries {
		if e.App == "" || e.Actor == "" || e.Action == "" {
			return nil, fmt.Errorf("storage: append push audit: %w: app, actor and action are required", ErrInvalid)
		}
		d, err := normalizeDetails(e.Details)
		if err != nil {
			return nil, fmt.Errorf("storage: append push audit: %w", err)
		}
		e.Details = d
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = ms(e.Time)
		in[i] = e
	}
	var out []PushAuditEntry
	err := db.update(func(tx *bolt.Tx) error {
		out = out[:0]
		b, err := tx.CreateBucketIfNotExists(bucketPushAudit)
		if err != nil {
			return err
		}
		chains, err := tx.CreateBucketIfNotExists(bucketPushAuditChains)
		if err != nil {
			return err
		}
		// Chains touched by this batch, written once at the end.
		heads := map[string]pushAuditChain{}
		for _, e := range in {
			c, ok := heads[e.App]
			if !ok {
				if c, _, err = getChain(chains, e.App); err != nil {
					return err
				}
			}
			e.ID, e.PrevHash = c.LastID+1, c.LastHash
			e.Hash = pushAuditHash(&e)
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(pushAuditKey(e.App, e.ID), v); err != nil {
				return err
			}
			c.LastID, c.LastHash = e.ID, e.Hash
			heads[e.App] = c
			out = append(out, e)
		}
		for app, c := range heads {
			if err := putChain(chains, app, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: append push audit: %w", err)
	}
	return out, nil
}

// PushAudit lists app's entries matching f, oldest first, and the cursor of
// the next page ("" after the last). A malformed cursor is ErrInvalid.
func (db *DB) PushAudit(app string, f PushAuditFilter) (entries []PushAuditEntry, next string, err error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultPushAuditLimit
	}
	limit = min(limit, MaxPushAuditLimit)
	var after uint64
	if f.Cursor != "" {
		// The cursor is the last listed id; opaque to callers, so its form
		// may change.
		if after, err = strconv.ParseUint(f.Cursor, 36, 64); err != nil {
			return nil, "", fmt.Errorf("storage: list push audit of %s: %w: bad cursor", app, ErrInvalid)
		}
	}
	entries = []PushAuditEntry{}
	err = db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPushAudit)
		if b == nil {
			return nil
		}
		prefix := join(app, "")
		c := b.Cursor()
		for k, v := c.Seek(pushAuditKey(app, after+1)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e PushAuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			if !f.match(&e) {
				continue
			}
			if len(entries) == limit {
				// One more match exists: the page is not the last.
				next = strconv.FormatUint(entries[len(entries)-1].ID, 36)
				return nil
			}
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("storage: list push audit of %s: %w", app, err)
	}
	return entries, next, nil
}

func (f *PushAuditFilter) match(e *PushAuditEntry) bool {
	return (f.Since.IsZero() || !e.Time.Before(f.Since)) && (f.Until.IsZero() || e.Time.Before(f.Until)) &&
		(f.Action == "" || e.Action == f.Action) && (f.Actor == "" || e.Actor == f.Actor) &&
		(f.Target == "" || e.Target == f.Target)
}

// VerifyPushAudit checks app's chain, or with app "" the chain of every app
// that has entries or a chain record (in app order), from its anchor (or
// its first entry) to its recorded head: every entry's hash, id and app
// against its key, and every link. A broken chain is a report with OK
// false, not an error; errors are the database's.
func (db *DB) VerifyPushAudit(app string) ([]PushAuditReport, error) {
	var out []PushAuditReport
	err := db.view(func(tx *bolt.Tx) error {
		out = out[:0]
		b, chains := tx.Bucket(bucketPushAudit), tx.Bucket(bucketPushAuditChains)
		apps := []string{app}
		if app == "" {
			apps = pushAuditApps(b, chains)
		}
		for _, a := range apps {
			out = append(out, verifyChain(b, chains, a))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: verify push audit: %w", err)
	}
	return out, nil
}

// pushAuditApps returns the apps with entries or a chain record, sorted: an
// app whose chain record was deleted still gets verified.
func pushAuditApps(b, chains *bolt.Bucket) []string {
	seen := map[string]bool{}
	var apps []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			apps = append(apps, a)
		}
	}
	if chains != nil {
		_ = chains.ForEach(func(k, _ []byte) error { add(string(k)); return nil })
	}
	if b != nil {
		c := b.Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				k, _ = c.Next() // not ours; verifyChain never sees it
				continue
			}
			add(string(k[:i]))
			// Skip the rest of this app: its keys are app \0 ..., and
			// \x01 sorts right after \0.
			k, _ = c.Seek(append(bytes.Clone(k[:i]), 1))
		}
	}
	slices.Sort(apps)
	return apps
}

// verifyChain checks one app's chain (b and chains may be nil: nothing
// stored yet).
func verifyChain(b, chains *bolt.Bucket, app string) PushAuditReport {
	r := PushAuditReport{App: app, OK: true}
	var (
		c       pushAuditChain
		hasHead bool
	)
	if chains != nil {
		var err error
		if c, hasHead, err = getChain(chains, app); err != nil {
			// Reported, not returned: a damaged record is a finding.
			r.OK, r.Problem = false, "the chain record is unreadable"
		}
	}
	bad := func(id uint64, format string, args ...any) {
		if r.OK {
			r.OK, r.FirstBad, r.Problem = false, id, fmt.Sprintf(format, args...)
		}
	}
	lastID, lastHash := c.AnchorID, c.AnchorHash
	if b != nil {
		prefix := join(app, "")
		cur := b.Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			r.Entries++
			if !r.OK {
				continue // only counting now
			}
			e, badID, problem := checkLink(app, k[len(prefix):], v, lastID, lastHash)
			if problem != "" {
				bad(badID, "%s", problem)
				continue
			}
			lastID, lastHash = e.ID, e.Hash
		}
	}
	switch {
	case !r.OK:
	case !hasHead && lastID > 0:
		bad(1, "the chain record is missing")
	case lastID < c.LastID:
		bad(lastID+1, "entries %d to %d are missing (the newest are gone)", lastID+1, c.LastID)
	case lastID > c.LastID:
		bad(c.LastID+1, "entries after %d are not in the chain record", c.LastID)
	case lastHash != c.LastHash:
		bad(lastID, "entry %d is not the recorded head", lastID)
	}
	return r
}

// checkLink checks the entry stored under id (the key after app's prefix)
// as v, following the entry lastID whose hash is lastHash (the anchor, or
// zero and "" at the start). It returns the entry, or the id of the first
// bad entry and what is wrong.
func checkLink(app string, id []byte, v []byte, lastID uint64, lastHash string) (e PushAuditEntry, badID uint64, problem string) {
	if len(id) != 8 {
		return e, lastID + 1, "a stored key is malformed"
	}
	n := binary.BigEndian.Uint64(id)
	switch {
	case n <= lastID:
		return e, n, fmt.Sprintf("entry %d is at or before the retention anchor (%d)", n, lastID)
	case n > lastID+1:
		return e, lastID + 1, fmt.Sprintf("entry %d is missing (the next stored is %d)", lastID+1, n)
	case json.Unmarshal(v, &e) != nil:
		return e, n, fmt.Sprintf("entry %d is unreadable", n)
	case e.ID != n:
		return e, n, fmt.Sprintf("entry %d says it is entry %d", n, e.ID)
	case e.App != app:
		return e, n, fmt.Sprintf("entry %d says it belongs to app %q", n, e.App)
	case pushAuditHash(&e) != e.Hash:
		return e, n, fmt.Sprintf("entry %d does not match its hash (changed)", n)
	case e.PrevHash != lastHash:
		return e, n, fmt.Sprintf("entry %d does not link to the entry before it", n)
	}
	return e, 0, ""
}

// PurgePushAudit deletes the entries of app (of every app when app is "")
// older than before, oldest first, stopping at the first entry that is not
// older, so what stays is a contiguous chain; the last deleted entry's id
// and hash become the chain's anchor, from which VerifyPushAudit starts. It
// also stops at the first entry that does not verify: retention never
// erases the evidence of tampering. It returns how many entries it deleted.
func (db *DB) PurgePushAudit(app string, before time.Time) (int, error) {
	var n int
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		b, chains := tx.Bucket(bucketPushAudit), tx.Bucket(bucketPushAuditChains)
		if b == nil || chains == nil {
			return nil
		}
		apps := []string{app}
		if app == "" {
			apps = pushAuditApps(b, chains)
		}
		for _, a := range apps {
			d, err := purgeChain(b, chains, a, before)
			if err != nil {
				return err
			}
			n += d
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: purge push audit of %q: %w", app, err)
	}
	return n, nil
}

func purgeChain(b, chains *bolt.Bucket, app string, before time.Time) (int, error) {
	c, ok, err := getChain(chains, app)
	if err != nil || !ok {
		// Without a chain record there is nothing to anchor to: leave the
		// entries for verify to report.
		return 0, err
	}
	prefix := join(app, "")
	var (
		gone       [][]byte
		anchorID   uint64
		anchorHash string
	)
	anchorID, anchorHash = c.AnchorID, c.AnchorHash
	cur := b.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		e, _, problem := checkLink(app, k[len(prefix):], v, anchorID, anchorHash)
		if problem != "" || !e.Time.Before(before) {
			break
		}
		gone = append(gone, bytes.Clone(k))
		anchorID, anchorHash = e.ID, e.Hash
	}
	if len(gone) == 0 {
		return 0, nil
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	// Every purged entry verified, so the anchor is as trustworthy as the
	// chain it replaces.
	c.AnchorID, c.AnchorHash = anchorID, anchorHash
	return len(gone), putChain(chains, app, c)
}
