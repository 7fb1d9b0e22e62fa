//go:build perfdebug

package main

// A build with -tags perfdebug serves profiles and runtime/metrics on
// SOCKUDO_DEBUG_ADDR (a loopback address) for measuring memory per socket
// (README "Performance"). Release builds do not contain this file.

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

func init() {
	if v, err := strconv.Atoi(os.Getenv("SOCKUDO_DEBUG_MEMPROFILERATE")); err == nil {
		debugMemProfileRate = v
	}
	addr := os.Getenv("SOCKUDO_DEBUG_ADDR")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
			debug.FreeOSMemory()
		}
		descs := metrics.All()
		samples := make([]metrics.Sample, len(descs))
		for i := range descs {
			samples[i].Name = descs[i].Name
		}
		metrics.Read(samples)
		out := map[string]any{}
		for _, s := range samples {
			switch s.Value.Kind() {
			case metrics.KindUint64:
				out[s.Name] = s.Value.Uint64()
			case metrics.KindFloat64:
				out[s.Name] = s.Value.Float64()
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	go func() { _ = http.ListenAndServe(addr, mux) }()
}
