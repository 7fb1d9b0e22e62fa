package main

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/sockudo/sockudo/push"
	"github.com/sockudo/sockudo/ratelimit"
	"github.com/sockudo/sockudo/ratelimit/redislimit"
)

// shareLimiters makes the limits a client could otherwise multiply by the
// number of nodes count in Redis (RATE_LIMITER_DRIVER=redis, the default
// in Redis mode): connection attempts and auth failures per client IP,
// signins per app user, HTTP API writes and reads per app, and, when p is
// not nil, push per tenant (publishes per second, registrations, device
// changes). Each memory
// limiter buildLimiters made is wrapped, not dropped: it enforces the same
// limit and answers while Redis fails (redislimit's package doc), and
// main's loop over l.memory still sweeps it. Disabled and zero limits stay
// as they are. It does nothing unless c.Cluster.sharedLimits(); call it
// right after buildLimiters, before the limiters are handed out.
//
// They form one redislimit.Group: an outage is met, logged and retried
// once for all of them, and so is the recovery.
func (c Config) shareLimiters(l *limiters, p *push.Limits, rdb *redis.Client, log *slog.Logger) {
	if !c.Cluster.sharedLimits() {
		return
	}
	if rdb == nil {
		log.Error("RATE_LIMITER_DRIVER is redis but there is no Redis client: rate limits count on this node only")
		return
	}
	// One group: the first limiter to meet an outage sends them all to
	// their fallbacks, logs once, and one check a second tries Redis.
	g, err := redislimit.NewGroup(rdb, c.Cluster.Prefix, &redislimit.Options{Log: log.With("component", "ratelimit")})
	if err != nil {
		// Only a programming error gets here: the prefix is validated.
		log.Error("cannot share the rate limits: they count on this node only", "err", err)
		return
	}
	type named struct {
		name string
		lim  *ratelimit.Limiter
	}
	all := []named{
		{"ws_connect", &l.WSConnect},
		{"auth_failures", &l.AuthFailures},
		{"signin", &l.Signin},
		{"api_publish", &l.APIPublish},
		{"api_read", &l.APIRead},
	}
	if p != nil {
		// Push per tenant: publishes per second per app, registrations per
		// app and IP, device changes per device.
		all = append(all, named{"push_publishes", &p.Publishes}, named{"push_registrations", &p.Registrations},
			named{"push_device_requests", &p.DeviceRequests})
	}
	for _, s := range all {
		m, ok := (*s.lim).(*ratelimit.Memory)
		if !ok {
			continue // nil: that limit is off
		}
		shared, err := g.New(s.name, m.Quota(), m)
		if err != nil {
			// Only a programming error gets here: the names are constants.
			log.Error("cannot share a rate limit: it counts on this node only", "limiter", s.name, "err", err)
			continue
		}
		*s.lim = shared
	}
}
