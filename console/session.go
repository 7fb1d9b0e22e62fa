package console

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// session is one logged-in browser. Fields are fixed at login.
type session struct {
	id       string
	csrf     string
	operator bool   // logged in with the operator token: every app
	app      string // the app of a key+secret login
	expires  time.Time
	// done is closed when the session ends (logout, expiry, eviction),
	// which ends its event streams.
	done chan struct{}
}

// allows reports whether s may see app.
func (s *session) allows(app string) bool { return s.operator || s.app == app }

// who names the session's principal for the audit log.
func (s *session) who() string {
	if s.operator {
		return "operator"
	}
	return "app"
}

// sessions is the server-side session map, capped at max entries.
type sessions struct {
	mu  sync.Mutex // guards m
	m   map[string]*session
	max int
	ttl time.Duration
}

func newSessions(max int, ttl time.Duration) *sessions {
	return &sessions{m: make(map[string]*session), max: max, ttl: ttl}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session. At the cap, expired sessions go first, then
// the one closest to expiry.
func (ss *sessions) create(operator bool, app string, now time.Time) *session {
	s := &session{id: randomToken(), csrf: randomToken(), operator: operator, app: app, expires: now.Add(ss.ttl),
		done: make(chan struct{})}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= ss.max {
		var oldest *session
		for id, o := range ss.m {
			if !now.Before(o.expires) {
				ss.endLocked(id)
				continue
			}
			if oldest == nil || o.expires.Before(oldest.expires) {
				oldest = o
			}
		}
		if len(ss.m) >= ss.max && oldest != nil {
			ss.endLocked(oldest.id)
		}
	}
	ss.m[s.id] = s
	return s
}

// get returns the live session with id, nil if there is none or it expired.
func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		ss.endLocked(id)
		return nil
	}
	return s
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	ss.endLocked(id)
	ss.mu.Unlock()
}

// endLocked removes session id and closes its done. Lock: ss.mu.
func (ss *sessions) endLocked(id string) {
	if s := ss.m[id]; s != nil {
		delete(ss.m, id)
		close(s.done)
	}
}

func (ss *sessions) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}
