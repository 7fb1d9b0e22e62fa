package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sockudo/sockudo/storage"
)

// Limits on a target's settings.
const (
	maxBatchSize     = 1000
	maxBatchDuration = 60_000 // ms
	maxPatternLen    = 1000
	maxURLLen        = 2048
)

// reservedHeaders may not be set by a target's custom headers: the first
// three carry the webhook's identity and signature (§5.1), the rest belong to
// the transport.
var reservedHeaders = []string{"Content-Type", "X-Pusher-Key", "X-Pusher-Signature", "Content-Length", "Host",
	"Transfer-Encoding", "Connection", "Te", "Trailer", "Upgrade", "Keep-Alive", "Proxy-Connection",
	"Content-Encoding"}

// target is one webhook target of one app as configured: its compiled
// settings, immutable, replaced as a whole when the app changes (Reload).
type target struct {
	// q is the target's queue; nil for a target compiled only to validate.
	q      *queue
	app    string
	url    string
	logURL string // url without userinfo, query and fragment, for logs

	types   eventMask // events sent; never 0
	prefix  string
	suffix  string
	pattern *regexp.Regexp // nil: no pattern
	header  http.Header    // custom headers, canonical names

	batchSize int
	batchWait time.Duration
}

// matches reports whether an event goes to t.
func (t *target) matches(name, channel string) bool {
	b := bit(name)
	if t.types&b == 0 {
		return false
	}
	// The channel filters select channels; a push event has none, and a
	// target gets push events only by listing them in event_types, so that
	// choice stands whatever the filters say (otherwise any filter would
	// silently block every push event).
	if b&pushEvents != 0 {
		return true
	}
	if !strings.HasPrefix(channel, t.prefix) || !strings.HasSuffix(channel, t.suffix) {
		return false
	}
	return t.pattern == nil || t.pattern.MatchString(channel)
}

// queue is one target's durable queue as the dispatcher tracks it, and the
// state of its delivery loop. It outlives reloads that keep the target (by
// app and URL), so a changed header or filter does not reset the backoff.
type queue struct {
	app, url string
	// wake has room for one signal: entries were queued.
	wake chan struct{}
	// depth is the number of entries in the durable queue.
	depth atomic.Int64
	// failures and retryAt (unix ms, 0 = none) mirror the delivery loop's
	// schedule for Queues; only the loop writes them.
	failures atomic.Int64
	retryAt  atomic.Int64
	// limiter paces requests while the target recovers from failures.
	limiter *rate.Limiter
	// stop and done control the delivery loop; nil before it starts.
	// Guarded by Dispatcher.loopsMu.
	stop context.CancelFunc
	done chan struct{}

	// claimMu orders the delivery loop's read of the head against the
	// persister's coalescing: an entry up to claimed may be on the wire,
	// so annulling it would leave the receiver with a channel_occupied and
	// no channel_vacated. Held around a read of the head (the loop) or one
	// persist round (the persister), which takes the claimMu of every queue
	// of its batch in targetKey order; the loop holds only its own. Taken
	// before any bbolt transaction.
	claimMu sync.Mutex
	claimed uint64 // guarded by claimMu: the last entry id the loop read
	// churn maps a channel to its queued channel_occupied and
	// subscription_count entries that a later event may annul or
	// supersede. Only the persister touches it; cleared when it outgrows
	// the queue's bound.
	churn map[string]churnIDs
}

// churnIDs are a channel's queued entries that may still be coalesced.
type churnIDs struct{ occupied, count uint64 }

func newQueue(app, url string, recoveryRate float64) *queue {
	return &queue{app: app, url: url, wake: make(chan struct{}, 1),
		limiter: rate.NewLimiter(rate.Limit(recoveryRate), 1), churn: map[string]churnIDs{}}
}

// claimLocked records that the delivery loop read the head up to id.
// q.claimMu must be held.
func (q *queue) claimLocked(id uint64) { q.claimed = max(q.claimed, id) }

// notify wakes the delivery loop without blocking.
func (q *queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// compileTarget checks w and builds its target for app; batching is the
// server default that w.Batching overrides.
func compileTarget(app string, w storage.Webhook, batching Batching) (*target, error) {
	var problems []error
	bad := func(field, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	t := &target{app: app, url: w.URL}

	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		bad("url", "is required")
	case len(w.URL) > maxURLLen:
		bad("url", "is longer than %d bytes", maxURLLen)
	case err != nil:
		bad("url", "is not a URL (%v)", errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		bad("url", "must be http or https, got %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		bad("url", "has no host")
	case strings.ContainsAny(w.URL, "\x00 \t\r\n"):
		bad("url", "contains white space or control characters")
	default:
		t.logURL = redactURL(u)
	}

	for _, name := range w.EventTypes {
		b := bit(name)
		if b == 0 {
			bad("event_types", "unknown event %q (want one of %s)", name, strings.Join(eventTypeNames(), ", "))
		}
		t.types |= b
	}
	if len(w.EventTypes) == 0 {
		t.types = defaultEvents
	}

	if f := w.Filter; f != nil {
		t.prefix, t.suffix = f.ChannelPrefix, f.ChannelSuffix
		if p := f.ChannelPattern; p != "" {
			if len(p) > maxPatternLen {
				bad("filter.channel_pattern", "is longer than %d bytes", maxPatternLen)
			} else if re, err := regexp.Compile(p); err != nil {
				bad("filter.channel_pattern", "is not a regular expression: %v", err)
			} else {
				t.pattern = re
			}
		}
	}

	if len(w.Headers) > 0 {
		t.header = http.Header{}
	}
	for name, value := range w.Headers {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !validHeaderName(name):
			bad("headers", "%q is not a valid header name", name)
		case isReserved(canon):
			bad("headers", "%s is set by sockudo and may not be overridden", canon)
		case strings.ContainsAny(value, "\x00\r\n"):
			bad("headers", "the value of %s contains a line break or NUL", canon)
		default:
			t.header[canon] = []string{value}
		}
	}

	enabled, wait, size := !batching.Disabled, batching.Duration, batching.Size
	if b := w.Batching; b != nil {
		if b.Enabled != nil {
			enabled = *b.Enabled
		}
		if b.Duration < 0 || b.Duration > maxBatchDuration {
			bad("batching.duration", "must be 0-%d ms, got %d", maxBatchDuration, b.Duration)
		} else if b.Duration > 0 {
			wait = time.Duration(b.Duration) * time.Millisecond
		}
		if b.Size < 0 || b.Size > maxBatchSize {
			bad("batching.size", "must be 0-%d, got %d", maxBatchSize, b.Size)
		} else if b.Size > 0 {
			size = b.Size
		}
	}
	// §5.1: without batching, one event per request.
	t.batchSize, t.batchWait = 1, 0
	if enabled {
		t.batchSize, t.batchWait = size, wait
	}
	return t, errors.Join(problems...)
}

// ParseTargets reads a JSON array of webhook targets, as in
// SOCKUDO_DEFAULT_APP_WEBHOOKS and "apps create --webhooks", and validates
// it. Empty means none. Unknown fields are errors, so a typo such as
// "event_type" is not silently ignored. Errors never quote header values.
func ParseTargets(s string) ([]storage.Webhook, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	var hooks []storage.Webhook
	if err := dec.Decode(&hooks); err != nil {
		return nil, fmt.Errorf("must be a JSON array of webhooks: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("must be one JSON array of webhooks, found more after it")
	}
	if err := Validate(hooks); err != nil {
		return nil, err
	}
	return hooks, nil
}

// Validate checks an app's webhook targets: http(s) URLs, each used once,
// known event types, a compilable channel pattern, headers that override
// nothing sockudo sets, and batching within limits. The error names each
// problem by its index, as in "webhooks[1].url: …".
func Validate(ws []storage.Webhook) error {
	var problems []error
	seen := map[string]int{}
	for i, w := range ws {
		if _, err := compileTarget("", w, Batching{}); err != nil {
			for _, e := range unjoin(err) {
				problems = append(problems, fmt.Errorf("webhooks[%d].%w", i, e))
			}
		}
		if j, dup := seen[w.URL]; dup && w.URL != "" {
			problems = append(problems, fmt.Errorf("webhooks[%d].url: same URL as webhooks[%d]", i, j))
		}
		seen[w.URL] = i
	}
	return errors.Join(problems...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Configured returns a function reporting whether url is a webhook target
// of app among apps; replaying dead letters uses it to skip targets that
// were removed.
func Configured(apps []storage.App) func(app, url string) bool {
	set := map[[2]string]bool{}
	for _, a := range apps {
		for _, w := range a.Webhooks {
			set[[2]string{a.ID, w.URL}] = true
		}
	}
	return func(app, url string) bool { return set[[2]string{app, url}] }
}

func isReserved(canon string) bool {
	for _, r := range reservedHeaders {
		if r == canon {
			return true
		}
	}
	return false
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("!#$%&'*+-.^_`|~", r)
		if !ok {
			return false
		}
	}
	return true
}

// redactURL drops what may carry credentials (userinfo, query, fragment).
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}
