package push

import "sync"

// Spike guard defaults (spec §2.1 BadDeviceToken caveat, §3.3).
const (
	// DefaultGuardThreshold is the share of DeviceGone results above
	// which invalidation pauses.
	DefaultGuardThreshold = 0.2
	// DefaultGuardMinSample is how many results the guard needs before it
	// judges the share.
	DefaultGuardMinSample = 50
)

// Verdict is what to do with a device whose result was DeviceGone.
type Verdict uint8

// Verdicts. The zero Verdict answers results that are not DeviceGone.
const (
	// Invalidate: remove the device now.
	Invalidate Verdict = iota + 1
	// Hold: too few results to judge yet; keep the device aside and ask
	// Settle again later.
	Hold
	// Pause: the spike guard tripped; keep the device (its result stays
	// recorded) and let the operator decide.
	Pause
)

var verdictNames = [...]string{Invalidate: "invalidate", Hold: "hold", Pause: "pause"}

// String is the verdict's name.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) && verdictNames[v] != "" {
		return verdictNames[v]
	}
	return "none"
}

// InvalidationGuard is the spike guard on mass invalidation: when more
// than Threshold of the results it has seen are DeviceGone, once it has
// seen MinSample results, it trips, raises one alert and pauses every
// further invalidation. A sandbox/production mix-up or a wrong credential
// makes every token look invalid (APNs BadDeviceToken, FCM
// INVALID_ARGUMENT); the guard keeps that from purging the devices.
//
// Use one guard per publish and credential. Until MinSample results are
// in, DeviceGone devices are held rather than invalidated, so the first
// results of a spike remove nothing; a publish to fewer devices than
// MinSample is settled when it ends. Results may come from many
// goroutines: the methods are safe for concurrent use. The zero value is
// ready to use with the defaults; set the fields before the first Observe.
type InvalidationGuard struct {
	// Threshold is the share of DeviceGone results (0 to 1) above which
	// the guard trips. 0 means DefaultGuardThreshold.
	Threshold float64
	// MinSample is the number of results before the guard judges. 0
	// means DefaultGuardMinSample.
	MinSample int

	mu      sync.Mutex
	results int  // guarded by mu
	gone    int  // guarded by mu
	tripped bool // guarded by mu
}

// Observe records one result's outcome. For DeviceGone it returns what to
// do with that device; for any other outcome the verdict is zero. alert is
// true exactly once: on the result that trips the guard.
//
// When Observe first answers Invalidate, the devices held before are
// released too: Settle answers Invalidate from then on.
func (g *InvalidationGuard) Observe(o Outcome) (v Verdict, alert bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.results++
	if o == DeviceGone {
		g.gone++
	}
	if !g.tripped && g.results >= g.minSample() && float64(g.gone) > g.threshold()*float64(g.results) {
		g.tripped, alert = true, true
	}
	if o != DeviceGone {
		return 0, alert
	}
	return g.verdictLocked(false), alert
}

// Settle is the verdict for the devices held so far. done reports that the
// publish has no more results: a publish that ended below MinSample is
// judged by nothing but its size, so its devices are invalidated.
func (g *InvalidationGuard) Settle(done bool) Verdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.verdictLocked(done)
}

// Stats reports the results seen, how many were DeviceGone, and whether
// the guard tripped: the content of the alert.
func (g *InvalidationGuard) Stats() (results, gone int, tripped bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.results, g.gone, g.tripped
}

// verdictLocked: lock mu.
func (g *InvalidationGuard) verdictLocked(done bool) Verdict {
	switch {
	case g.tripped:
		return Pause
	case g.results < g.minSample() && !done:
		return Hold
	}
	return Invalidate
}

func (g *InvalidationGuard) threshold() float64 {
	if g.Threshold > 0 {
		return g.Threshold
	}
	return DefaultGuardThreshold
}

func (g *InvalidationGuard) minSample() int {
	if g.MinSample > 0 {
		return g.MinSample
	}
	return DefaultGuardMinSample
}
