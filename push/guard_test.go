package push

import (
	"sync"
	"sync/atomic"
	"testing"
)

// seq builds a result sequence: runs of n outcomes.
func seq(runs ...any) []Outcome {
	var out []Outcome
	for i := 0; i < len(runs); i += 2 {
		for j := 0; j < runs[i].(int); j++ {
			out = append(out, runs[i+1].(Outcome))
		}
	}
	return out
}

func TestInvalidationGuard(t *testing.T) {
	tcs := []struct {
		name       string
		threshold  float64
		minSample  int
		results    []Outcome
		invalidate int // Observe verdicts per kind
		hold       int
		pause      int
		alertAt    int // index of the result that raised the alert, -1 none
		settle     Verdict
		settleDone Verdict
	}{
		{"all delivered", 0, 0, seq(100, Delivered), 0, 0, 0, -1, Invalidate, Invalidate},
		{"20% gone is not more than 20%", 0, 0, seq(10, DeviceGone, 40, Delivered), 0, 10, 0, -1, Invalidate, Invalidate},
		{"21 of 100 gone after the sample", 0, 0, seq(50, Delivered, 29, Delivered, 21, DeviceGone),
			19, 0, 2, 98, Pause, Pause},
		{"spike at the start", 0, 0, seq(11, DeviceGone, 39, Delivered, 50, DeviceGone), 0, 11, 50, 49, Pause, Pause},
		{"all gone", 0, 0, seq(200, DeviceGone), 0, 49, 151, 49, Pause, Pause},
		{"small publish all gone", 0, 0, seq(3, DeviceGone), 0, 3, 0, -1, Hold, Invalidate},
		{"low share after the sample", 0, 0, seq(60, Delivered, 15, DeviceGone, 25, Delivered), 15, 0, 0, -1, Invalidate, Invalidate},
		{"other failures count in the sample", 0, 0, seq(45, ProviderTransient, 5, DeviceGone, 50, CredentialProblem), 1, 4, 0, -1, Invalidate, Invalidate},
		{"custom threshold and sample", 0.5, 4, seq(2, Delivered, 2, DeviceGone, 1, DeviceGone),
			1, 1, 1, 4, Pause, Pause},
		{"tripped stays tripped", 0, 10, seq(10, DeviceGone, 1000, Delivered, 1, DeviceGone), 0, 9, 2, 9, Pause, Pause},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			g := &InvalidationGuard{Threshold: tc.threshold, MinSample: tc.minSample}
			var inv, hold, pause int
			alertAt := -1
			for i, o := range tc.results {
				v, alert := g.Observe(o)
				if alert {
					if alertAt != -1 {
						t.Fatalf("second alert at %d (first at %d)", i, alertAt)
					}
					alertAt = i
				}
				if o != DeviceGone {
					if v != 0 {
						t.Fatalf("result %d (%v): verdict %v", i, o, v)
					}
					continue
				}
				switch v {
				case Invalidate:
					inv++
				case Hold:
					hold++
				case Pause:
					pause++
				default:
					t.Fatalf("result %d: verdict %v", i, v)
				}
			}
			if inv != tc.invalidate || hold != tc.hold || pause != tc.pause || alertAt != tc.alertAt {
				t.Fatalf("invalidate %d hold %d pause %d alert at %d, want %d %d %d %d",
					inv, hold, pause, alertAt, tc.invalidate, tc.hold, tc.pause, tc.alertAt)
			}
			if s := g.Settle(false); s != tc.settle {
				t.Fatalf("Settle(false) %v, want %v", s, tc.settle)
			}
			if s := g.Settle(true); s != tc.settleDone {
				t.Fatalf("Settle(true) %v, want %v", s, tc.settleDone)
			}
			results, gone, tripped := g.Stats()
			if results != len(tc.results) || tripped != (tc.alertAt >= 0) {
				t.Fatalf("stats %d %d %v", results, gone, tripped)
			}
		})
	}
}

// Concurrent observers: one alert, and no invalidation after it.
func TestInvalidationGuardConcurrent(t *testing.T) {
	var g InvalidationGuard
	var alerts, invalidated atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; i < 100; i++ {
				o := Delivered
				if i%2 == 0 {
					o = DeviceGone
				}
				v, alert := g.Observe(o)
				if alert {
					alerts.Add(1)
				}
				if v == Invalidate {
					invalidated.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if alerts.Load() != 1 || invalidated.Load() != 0 || g.Settle(true) != Pause {
		t.Fatalf("%d alerts, %d invalidated, settle %v", alerts.Load(), invalidated.Load(), g.Settle(true))
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{0: "none", Invalidate: "invalidate", Hold: "hold", Pause: "pause", 9: "none"} {
		if v.String() != want {
			t.Errorf("%d: %q, want %q", v, v.String(), want)
		}
	}
}
