#!/usr/bin/env bash
# The whole test suite, from a clean checkout: Go vet and tests (with the
# race detector; fuzz seed corpora run as regular tests), then the
# end-to-end suite that drives the built binary with the npm packages
# pusher-js and pusher. Installs what it needs (npm ci) on the way.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet, staticcheck"
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test"
go test -race -count=1 ./...

echo "== build"
mkdir -p bin
go build -o bin/sockudo .

echo "== end-to-end (pusher-js, pusher)"
cd e2e
npm ci --no-audit --no-fund --loglevel=error
SOCKUDO_BIN="$PWD/../bin/sockudo" npm test
