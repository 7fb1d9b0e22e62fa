package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/sockudo/sockudo/internal/backoff"
	"github.com/sockudo/sockudo/storage"
)

// ErrForbiddenAddress is the error of a request whose target resolved to an
// address that webhooks may not reach (loopback, private, link-local,
// metadata…, see [netguard.Allowed]) while Config.AllowPrivateTargets is
// false. Such a delivery is not retried: the entries become dead letters. It
// matches [netguard.ErrForbidden] too.
var ErrForbiddenAddress = errors.New("webhooks: target address not allowed")

// userAgent identifies sockudo's webhook requests.
const userAgent = "sockudo-webhooks"

// maxDrain is how much of a response body is read so that the connection
// can be reused; the rest is dropped with the connection.
const maxDrain = 64 << 10

// runQueue is q's delivery loop: it sends the head of q's durable queue,
// batch by batch, one request at a time, with the target's current settings,
// until ctx ends or the target is removed. Entries are deleted only after a
// 2xx. The backoff state lives here, in memory: after a restart the first
// attempt is immediate.
func (d *Dispatcher) runQueue(ctx context.Context, q *queue) {
	tm := d.clock.NewTimer()
	defer tm.Stop()
	var (
		failures   int       // consecutive failed requests
		retryAt    time.Time // no request before
		recovering bool      // failed since the backlog was last sent; requests are paced
	)
	setSchedule := func(f int, at time.Time) {
		failures, retryAt = f, at
		q.failures.Store(int64(f))
		if at.IsZero() {
			q.retryAt.Store(0)
		} else {
			q.retryAt.Store(at.UnixMilli())
		}
	}
	for ctx.Err() == nil {
		t := d.state.Load().targets[[2]string{q.app, q.url}]
		if t == nil || t.q != q {
			return // removed by Reload
		}
		now := d.clock.Now()
		if wait := retryAt.Sub(now); wait > 0 {
			if !d.wait(ctx, tm, wait, nil) {
				return
			}
			continue
		}
		// The head is read under claimMu, so the persister cannot annul an
		// entry that this loop may be about to send (see queue.claimMu).
		q.claimMu.Lock()
		head, err := d.db.WebhookHead(q.app, q.url, t.batchSize)
		if len(head) > 0 {
			q.claimLocked(head[len(head)-1].ID)
		}
		q.claimMu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				d.warn.warn("read "+t.app+" "+t.url, "cannot read the webhook queue", "app_id", t.app, "url", t.logURL,
					"err", err)
				d.wait(ctx, tm, persistRetry, nil)
			}
			continue
		}
		if len(head) == 0 {
			recovering = false
			if !d.wait(ctx, tm, -1, q.wake) {
				return
			}
			continue
		}
		// Behind a failing receiver, entries whose retry window is over
		// are given up without another attempt, so a long outage cannot
		// grow the queue without bound. (Right after a start, failures is
		// 0: what survived downtime gets one attempt first.)
		if failures > 0 && head[0].EnqueuedAt.Before(now.Add(-d.cfg.RetryMax)) {
			n, err := d.db.ExpireWebhooks(q.app, q.url, now.Add(-d.cfg.RetryMax),
				fmt.Sprintf("retry window of %s over; target failing: %s", d.cfg.RetryMax, head[0].LastError), now,
				d.cfg.MaxDeadLetters, 0)
			if err != nil {
				d.warn.warn("expire "+t.app+" "+t.url, "cannot move expired webhook entries to the dead letters",
					"app_id", t.app, "url", t.logURL, "err", err)
				d.wait(ctx, tm, persistRetry, nil)
				continue
			}
			q.depth.Add(-int64(n))
			d.deadLettered.Add(uint64(n))
			d.warn.warn("dead "+t.app+" "+t.url, "webhook events moved to the dead letters", "app_id", t.app,
				"url", t.logURL, "events", n, "reason", "retry window over")
			continue
		}
		// A partial batch waits for more events until its first is
		// batchWait old.
		if len(head) < t.batchSize && t.batchWait > 0 {
			if wait := head[0].CreatedAt.Add(t.batchWait).Sub(now); wait > 0 {
				if !d.wait(ctx, tm, wait, q.wake) {
					return
				}
				continue
			}
		}
		if recovering {
			r := q.limiter.ReserveN(now, 1)
			if wait := r.DelayFrom(now); wait > 0 && !d.wait(ctx, tm, wait, nil) {
				return
			}
		}

		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		res := d.send(ctx, t, head)
		<-d.sem
		if ctx.Err() != nil {
			// Shutting down: the request was abandoned, not answered. The
			// entries stay queued for the next start (at least once).
			return
		}
		now = d.clock.Now()
		d.observe(t, len(head), res)

		switch res.outcome {
		case delivered:
			n, err := d.db.DeleteWebhooks(q.app, q.url, entryIDs(head))
			if err != nil {
				// They will be sent again: duplicates, never losses.
				d.warn.warn("delete "+t.app+" "+t.url, "cannot delete delivered webhook entries", "app_id", t.app,
					"url", t.logURL, "err", err)
				d.wait(ctx, tm, persistRetry, nil)
				continue
			}
			// n, not len(head): a full queue may have moved some of them
			// to the dead letters while the request was in flight.
			q.depth.Add(-int64(n))
			d.sent.Add(uint64(len(head)))
			setSchedule(0, time.Time{})
			if len(head) < t.batchSize {
				recovering = false // the backlog is sent
			}

		case retry:
			d.failed.Add(1)
			delay := backoff.Exponential(failures+1, d.cfg.InitialBackoff, d.cfg.MaxBackoff, d.jitter)
			if res.retryAfter > 0 {
				delay = res.retryAfter
			}
			next := now.Add(delay)
			var again, dead []storage.WebhookEntry
			for _, e := range head {
				e.Attempts++
				e.LastError = res.reason
				deadline := e.EnqueuedAt.Add(d.cfg.RetryMax)
				if d.cfg.MaxAttempts > 0 && e.Attempts >= d.cfg.MaxAttempts || !now.Before(deadline) {
					dead = append(dead, e)
					continue
				}
				// The last attempt is at the end of the retry window.
				if deadline.Before(next) {
					next = deadline
				}
				again = append(again, e)
			}
			for i := range again {
				again[i].NextAttempt = next
			}
			if err := d.db.MarkWebhookAttempts(again); err != nil {
				d.warn.warn("mark "+t.app+" "+t.url, "cannot record a webhook attempt", "app_id", t.app,
					"url", t.logURL, "err", err)
			}
			d.retried.Add(uint64(len(again)))
			d.deadLetter(t, dead, fmt.Sprintf("gave up after %d attempts: %s", maxAttempts(dead), res.reason), now)
			setSchedule(failures+1, next)
			recovering = true
			d.warn.warn("fail "+t.app+" "+t.url, "webhook delivery failed; will retry", "app_id", t.app,
				"url", t.logURL, "error", res.reason, "events", len(head), "failures", failures,
				"retry_in", next.Sub(now).Round(time.Millisecond))

		case giveUp:
			d.failed.Add(1)
			for i := range head {
				head[i].Attempts++
				head[i].LastError = res.reason
			}
			d.deadLetter(t, head, res.reason, now)
			// The receiver answered (or can never be reached): no backoff.
			setSchedule(0, time.Time{})
		}
	}
}

// deadLetter moves entries to the dead letters, counting and logging.
func (d *Dispatcher) deadLetter(t *target, entries []storage.WebhookEntry, reason string, now time.Time) {
	if len(entries) == 0 {
		return
	}
	n, err := d.db.DeadLetterWebhooks(entries, reason, now, d.cfg.MaxDeadLetters)
	if err != nil {
		d.warn.warn("dead-error "+t.app+" "+t.url, "cannot move webhook entries to the dead letters", "app_id", t.app,
			"url", t.logURL, "err", err)
		return
	}
	t.q.depth.Add(-int64(n))
	d.deadLettered.Add(uint64(n))
	d.warn.warn("dead "+t.app+" "+t.url, "webhook events moved to the dead letters", "app_id", t.app,
		"url", t.logURL, "events", len(entries), "reason", reason)
}

// wait pauses for dur (negative: no time limit) or until wake receives
// (nil: never). It reports false when ctx ended first.
func (d *Dispatcher) wait(ctx context.Context, tm timer, dur time.Duration, wake <-chan struct{}) bool {
	if dur >= 0 {
		tm.Reset(dur)
	}
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C():
	case <-wake:
	}
	return true
}

// result is how one request went.
type result struct {
	outcome outcome
	// reason describes a failure for logs and dead letters; it never holds
	// the URL (which may carry credentials), the secret or the signature.
	reason     string
	retryAfter time.Duration
}

// send posts head to t as one webhook (§5.1): the body is built once and
// signed over exactly the bytes sent.
func (d *Dispatcher) send(ctx context.Context, t *target, head []storage.WebhookEntry) result {
	as := d.state.Load().apps[t.app]
	if as == nil {
		return result{outcome: retry, reason: "app not loaded"} // deleted meanwhile; the loop stops next round
	}
	events := make([][]byte, len(head))
	size := 40
	for i, e := range head {
		events[i] = e.Event
		size += len(e.Event) + 1
	}
	body := appendBody(make([]byte, 0, size), head[0].CreatedAt.UnixMilli(), events)

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return result{outcome: giveUp, reason: "cannot build the request: " + unwrapURLError(err).Error()}
	}
	req.Header = t.header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	// Set by map key so the casing is exactly §5.1's (PHP reads the header
	// names case-sensitively); custom headers cannot override these.
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["X-Pusher-Key"] = []string{as.key}
	req.Header["X-Pusher-Signature"] = []string{sign(as.secret, body)}

	resp, err := d.client.Do(req)
	if err != nil {
		err = unwrapURLError(err)
		if errors.Is(err, ErrForbiddenAddress) {
			return result{outcome: giveUp, reason: err.Error()}
		}
		return result{outcome: retry, reason: err.Error()}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	r := result{outcome: classify(resp.StatusCode), reason: "status " + resp.Status}
	if r.outcome == retry {
		r.retryAfter = backoff.RetryAfter(resp.Header.Get("Retry-After"), d.clock.Now())
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		r.reason += " (redirects are not followed)"
	}
	return r
}

// sign returns X-Pusher-Signature for body: the lowercase hex HMAC-SHA256
// of the exact bytes sent, keyed with the app secret (§5.1).
func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// unwrapURLError drops the *url.Error wrapper, whose text quotes the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func entryIDs(es []storage.WebhookEntry) []uint64 {
	ids := make([]uint64, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

func maxAttempts(es []storage.WebhookEntry) int {
	n := 0
	for _, e := range es {
		n = max(n, e.Attempts)
	}
	return n
}
