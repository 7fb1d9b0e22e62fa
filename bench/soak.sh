#!/bin/bash
# Soak (issue 12): 10,000 subscribed sockets, steady publishes; samples RSS,
# goroutines and open fds every EVERY (30) seconds.
# Usage: [EVERY=30] bench/soak.sh bin/sockudo bin/loadtest [MINUTES=30] [RATE=2]
set -eu
BIN=$1; LT=$2; MIN=${3:-30}; RATE=${4:-2}
ulimit -n 20000
DIR=$(mktemp -d)
PORT=7301; MPORT=7391
PORT=$PORT HOST=127.0.0.1 SOCKUDO_DB_PATH=$DIR/s.db RATE_LIMITER_ENABLED=false METRICS_ENABLED=true METRICS_PORT=$MPORT \
  LOG_LEVEL=warn taskset -c 0 $BIN > $DIR/server.log 2>&1 &
PID=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$PORT/up >/dev/null && break; sleep 0.1; done
PUBS=$((MIN*60*RATE))
taskset -c 1 $LT -url ws://127.0.0.1:$PORT -pid $PID -conns 10000 -concurrency 100 -publishes $PUBS -rate $RATE \
  -timeout 60s -max-run $((MIN*60+300))s -json > $DIR/load.json 2> $DIR/load.err &
LPID=$!
echo "t_s rss_kib goroutines fds"
START=$(date +%s)
while kill -0 $LPID 2>/dev/null; do
  RSS=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
  G=$(curl -sf http://127.0.0.1:$MPORT/metrics | awk '/^go_goroutines /{print $2}')
  FD=$(ls /proc/$PID/fd | wc -l)
  echo "$(( $(date +%s) - START )) $RSS $G $FD"
  sleep ${EVERY:-30}
done
wait $LPID || true
python3 -c "
import json; d=json.load(open('$DIR/load.json'))
print({k:d[k] for k in d if k in ('conns_opened','conns_failed','publishes_ok','expected_deliveries','delivered','latency_p50_ms','latency_p99_ms','dropped_conns','server_rss_per_conn_kib','server_rss_end_kib')})" || cat $DIR/load.err | tail
kill $PID; wait $PID 2>/dev/null || true
echo "dir $DIR"
