#!/usr/bin/env bash
# The event log (POST /v1/events): ingest throughput with an fsync per batch, then
# kill -9 at random moments during an event load, restarting each time. Target:
# every event acknowledged before a kill is in the log after it, none twice, the
# log always readable (a torn last record dropped and reported).
# Usage: scripts/reliability/events.sh [kills=20] [ingest_seconds=10]
source "$(dirname "$0")/common.sh"
N="${1:-20}"
SECS="${2:-10}"
build
W="$RELY_WORK/events"; rm -rf "$W"; mkdir -p "$W/base"
CLIENT="$ROOT/scripts/reliability/events_client.py"
# The server needs no model for /v1/events: an empty base path, ready or not.
start_events_server() {
  "$BIN" serve --model-base-path "$W/base" --host 127.0.0.1 --port "$PORT" "$@" >> "$W/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if curl -fsS "http://$ADDR/healthz" > /dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "server did not start; log:" >&2; cat "$W/server.log" >&2; return 1
}
machine_load

for conns in 1 4; do
  start_events_server
  python3 "$CLIENT" ingest "$ADDR" "$SECS" "$conns" 1000
  stop_server
done
rm -rf "$W/base/.events"

killed=0
for t in $(seq 1 "$N"); do
  start_events_server
  python3 "$CLIENT" load "$ADDR" "t$t" "$W/acked-$t.txt" &
  client=$!
  sleep "$(python3 -c 'import random; print(f"{random.uniform(0.05, 1.5):.3f}")')"
  kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2> /dev/null || true; SERVER_PID=""
  wait "$client" || true
  killed=$((killed + 1))
done
# One more start replays (and cuts any torn tail off); export what the log holds.
start_events_server
stop_server
echo "kills: $killed; torn tails reported on restart: $(grep -c 'dropped a torn or damaged tail' "$W/server.log" || true)"
"$BIN" -q events export --model-base-path "$W/base" --out "$W/export.tsv" --format events
python3 "$CLIENT" check "$W/export.tsv" "$W"/acked-*.txt
