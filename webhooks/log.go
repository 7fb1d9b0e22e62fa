package webhooks

import (
	"log/slog"
	"sync"
	"time"
)

// warnEvery is how often one kind of warning may be logged.
const warnEvery = 30 * time.Second

// warner logs a warning at most once per warnEvery per key, reporting how
// many were suppressed in between: a receiver that is down for an hour must
// not write a line per attempt. Nothing logged carries a secret or a
// signature; URLs are logged without userinfo and query.
type warner struct {
	log   *slog.Logger
	clock clock

	mu sync.Mutex // guards last and suppressed
	// last is when each key was last logged.
	last map[string]time.Time
	// suppressed counts the warnings of each key not logged since.
	suppressed map[string]int
}

func newWarner(log *slog.Logger, c clock) *warner {
	return &warner{log: log, clock: c, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// warn logs msg with args unless key was logged less than warnEvery ago.
func (w *warner) warn(key, msg string, args ...any) {
	now := w.clock.Now()
	w.mu.Lock()
	if last, ok := w.last[key]; ok && now.Sub(last) < warnEvery {
		w.suppressed[key]++
		w.mu.Unlock()
		return
	}
	n := w.suppressed[key]
	w.last[key] = now
	delete(w.suppressed, key)
	w.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	w.log.Warn(msg, args...)
}
