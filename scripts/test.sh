#!/usr/bin/env bash
# The whole test suite, from a clean checkout: Go vet and tests (with the
# race detector; fuzz seed corpora run as regular tests), then the
# end-to-end suite that drives the built binary with the npm packages
# pusher-js and pusher. Installs what it needs (npm ci) on the way.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== services"
# Redis mode's tests use the machine's Redis on 127.0.0.1:6379 (each test
# under its own key prefix); start one, keeping nothing on disk, where none
# answers.
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c5 <&3 | grep -q PONG) 2>/dev/null; }
if ! redis_up; then
  if ! command -v redis-server >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  fi
  redis-server --daemonize yes --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "redis did not start on 127.0.0.1:6379" >&2; exit 1; }
fi

# The console's browser test (e2e/tests/70-console.test.js) drives Debian's
# chromium through playwright-core.
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

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
