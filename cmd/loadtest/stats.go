package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Latency histogram: one atomic counter per 10 µs bucket up to 10 s, plus an
// overflow bucket. Recording is one atomic add; nothing is allocated per
// message. The 4 MB of counters are allocated once and only touched pages
// become resident.
const (
	histResolution = 10 * time.Microsecond
	histRange      = 10 * time.Second
	histBuckets    = int(histRange / histResolution) // overflow bucket is index histBuckets
)

type histogram struct {
	counts []atomic.Uint32 // histBuckets+1
	n      atomic.Uint64
	sumNs  atomic.Int64
	maxNs  atomic.Int64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]atomic.Uint32, histBuckets+1)}
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)].Add(1)
	h.n.Add(1)
	h.sumNs.Add(int64(d))
	for {
		m := h.maxNs.Load()
		if int64(d) <= m || h.maxNs.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// bucketOf maps a latency to its bucket index; >= histRange goes to the
// overflow bucket.
func bucketOf(d time.Duration) int {
	if d < 0 {
		return 0
	}
	b := int(d / histResolution)
	if b >= histBuckets {
		return histBuckets
	}
	return b
}

// snapshot copies the counters.
func (h *histogram) snapshot() []uint64 {
	out := make([]uint64, len(h.counts))
	for i := range h.counts {
		out[i] = uint64(h.counts[i].Load())
	}
	return out
}

// percentileBucket returns the index of the bucket holding the q-quantile
// (0 < q <= 1, nearest-rank: the smallest bucket whose cumulative count
// reaches ceil(q*total)). ok is false when counts is empty.
func percentileBucket(counts []uint64, q float64) (idx int, ok bool) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	if q <= 0 {
		q = 0
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q*float64(total) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum >= rank {
			return i, true
		}
	}
	return len(counts) - 1, true
}

// percentileMs converts a percentile bucket to milliseconds: the bucket's
// upper edge, capped at the observed maximum (the overflow bucket reports
// the maximum).
func percentileMs(counts []uint64, q float64, maxNs int64) float64 {
	idx, ok := percentileBucket(counts, q)
	if !ok {
		return 0
	}
	edge := int64(idx+1) * int64(histResolution)
	if idx >= histBuckets || edge > maxNs {
		edge = maxNs
	}
	return float64(edge) / 1e6
}

// parseVmRSS returns VmRSS in KiB from the text of /proc/<pid>/status.
func parseVmRSS(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		rest, found := strings.CutPrefix(line, "VmRSS:")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("VmRSS line without a value: %q", line)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS line %q: %w", line, err)
		}
		if len(f) > 1 {
			switch strings.ToLower(f[1]) {
			case "kb":
			case "mb":
				v *= 1024
			case "gb":
				v *= 1024 * 1024
			default:
				return 0, fmt.Errorf("VmRSS line %q: unknown unit", line)
			}
		}
		return v, nil
	}
	return 0, fmt.Errorf("no VmRSS line (kernel thread or exited process?)")
}

// readRSS reads VmRSS (KiB) of pid; pid 0 means this process.
func readRSS(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

// perConnKiB is (after-before)/n, 0 when n is 0.
func perConnKiB(beforeKiB, afterKiB int64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(afterKiB-beforeKiB) / float64(n)
}

// rate is n per second over d (0 when d <= 0).
func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
