#!/usr/bin/env bash
# Overload: 1,024 connections posting /v1/rank with 10,000 items back to back,
# between a baseline and a recovery phase of 4 connections. Target: accepted
# p99 ≤ 100 ms, refused (503) ≤ 5 ms, zero connection errors, back to normal
# within 1 s. Usage: [SERVE_FLAGS="--max-queue-ms 20 …"] scripts/reliability/overload.sh [seconds=20] [connections=1024] [items=10000]
source "$(dirname "$0")/common.sh"
SECS="${1:-20}"; CONNS="${2:-1024}"; ITEMS="${3:-10000}"
build
base="$(fresh_base overload)"
rank_body "$ITEMS" > "$RELY_WORK/rank-body.json"
start_server "$base" ${SERVE_FLAGS:-}
machine_load
"$STRESS" overload "$ADDR" "$CONNS" "$SECS" "$RELY_WORK/rank-body.json" /v1/rank
metric 'shortlist_(shed_requests_total|in_flight_requests|protocol_errors_total|connections_closed_by_server_total|connections_accepted_total)'
echo "server-side time of /v1/rank answers (handler start to answer; cumulative buckets):"
metric 'shortlist_request_duration_seconds_bucket\{endpoint="rank",le="(0.005|0.01|0.025|0.05|0.1|0.25|0.5|1|\+Inf)"'
echo "server RSS after: $(rss_mb) MB"
