package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	tcs := []struct {
		name        string
		live, floor uint64
		base, want  int
	}{
		{"no heap yet: the minimum goal reaches the floor", 0, 8 * mib, 50, 200},
		{"1 MiB live", 1 * mib, 8 * mib, 50, 200},
		{"3 MiB live: growth reaches the floor", 3 * mib, 8 * mib, 50, 166},
		{"5 MiB live", 5 * mib, 8 * mib, 50, 60},
		{"growth by base reaches the floor", 6 * mib, 8 * mib, 50, 50},
		{"large heap", 200 * mib, 8 * mib, 50, 50},
		{"a few KiB live, huge floor: capped", 4 << 10, 64 * mib, 50, maxPercent},
		{"base above what the floor asks", 1 * mib, 8 * mib, 300, 300},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.floor, tc.base); got != tc.want {
				t.Fatalf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.floor, tc.base, got, tc.want)
			}
		})
	}
}

func cycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

var sink []byte

// churn allocates n bytes of short-lived garbage in 1 KiB pieces.
func churn(n int) {
	for range n >> 10 {
		sink = make([]byte, 1<<10)
	}
}

// With a small live heap, garbage churn collects about once per floor of
// allocation instead of once per 2 MiB (the runtime's minimum goal at
// GOGC=50); after Stop the base percentage is back.
func TestFloorSpacesCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	runtime.GC()
	before := cycles()
	churn(64 * mib)
	without := cycles() - before

	f := Start(50, 32*mib)
	runtime.GC() // lets the first adjustment run on a measured live heap
	before = cycles()
	churn(64 * mib)
	with := cycles() - before
	f.Stop()
	if with*4 > without || with > 4 {
		t.Fatalf("64 MiB of churn collected %d times with a 32 MiB floor, %d times without", with, without)
	}
	if p := debug.SetGCPercent(50); p != 50 {
		t.Fatalf("after Stop the GC percentage is %d, want 50", p)
	}
}
