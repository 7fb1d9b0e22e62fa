package webhooks

import (
	"net/url"

	"github.com/sockudo/sockudo/storage"
)

// RedactURL is raw without the parts that may carry credentials (userinfo,
// query, fragment), for showing a target to someone who should not get
// them: the signed HTTP API answers app backends, while target URLs are
// set by the operator and often carry a token in the query. An unparsable
// raw gives "".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return redactURL(u)
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
