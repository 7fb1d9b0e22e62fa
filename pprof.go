//go:build pprof

package main

// Built with -tags pprof, the server serves net/http/pprof on PPROF_ADDR
// (for example 127.0.0.1:6060) for profiling runs (bench/README.md). It is
// never part of a release build.

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
