#!/usr/bin/env bash
# Slowloris: 20,000 connections that send their request head one byte per second
# (two client processes of 10,000: one process may hold at most `ulimit -n` files),
# while a probe asks GET /healthz every 100 ms. Target: slow connections closed
# after 5 s, /healthz ≤ 50 ms, no "Too many open files".
# Usage: scripts/reliability/slowloris.sh [seconds=60] [connections=20000]
source "$(dirname "$0")/common.sh"
SECS="${1:-60}"; CONNS="${2:-20000}"
build
base="$(fresh_base slowloris)"
start_server "$base"
machine_load
echo "server: max_connections $(grep -o 'max_connections=[0-9]*' "$RELY_WORK/server.log" | head -1)"
half=$((CONNS / 2))
"$STRESS" slowloris "$ADDR" "$half" "$SECS" > "$RELY_WORK/slowloris-a.txt" &
a=$!
"$STRESS" slowloris "$ADDR" "$((CONNS - half))" "$SECS" probe | tee "$RELY_WORK/slowloris-b.txt"
wait "$a"
cat "$RELY_WORK/slowloris-a.txt"
metric 'shortlist_(open_connections|connections_closed_by_server_total|connections_accepted_total)'
echo "server RSS after: $(rss_mb) MB"
if grep -qi "too many open files" "$RELY_WORK/server.log"; then
  echo "FAIL: 'Too many open files' in the server log"
else
  echo "no 'Too many open files' in the server log"
fi
