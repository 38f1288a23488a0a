#!/usr/bin/env bash
# Latency of the served pipeline (BENCHMARKS.md, "The served pipeline"): the
# in-process call, then /v1/recommend over HTTP at a fixed rate and at full speed,
# with and without a 50-item history, plus event ingestion beside it.
#
#   bench/serve_latency.sh [BASE]    BASE: a model base path with retrieval/ and
#                                    ranking/ (default: models/movielens, from
#                                    `cargo run --release -- quickstart`)
# Needs oha (`cargo install oha`) on PATH; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-models/movielens}
port=${PORT:-18600}
cargo build --release --quiet -p shortlist-cli -p shortlist-serve --example bench_recommend
command -v oha > /dev/null || { echo "needs oha on PATH (cargo install oha)" >&2; exit 2; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/examples/bench_recommend "$base"

target/release/shortlist -q serve --model-base-path "$base" --host 127.0.0.1 --port "$port" &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && break; sleep 0.1; done

plain='{"user_id": "42", "k": 10}'
# 50 items the user has not rated in training, as a new user's history.
hist=$(python3 -c 'import json; print(json.dumps({"user_id": "new-user", "k": 10, "history": [str(i) for i in range(300, 350)]}))')
run() { # name, oha flags…
  local name=$1; shift
  local out
  out=$(oha --no-tui --output-format json -m POST -H 'content-type: application/json' "$@" "http://127.0.0.1:$port/v1/recommend")
  python3 - "$name" "$out" << 'PY'
import json, sys
name, r = sys.argv[1], json.loads(sys.argv[2])
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
print(f"{name:48s} {s['requestsPerSec']:9,.0f} req/s  p50 {p['p50']*1e3:6.3f} ms  p99 {p['p99']*1e3:6.3f} ms  "
      f"p99.9 {p['p99.9']*1e3:6.3f} ms  success {s['successRate']*100:.2f}%  codes {codes}")
PY
}
run "warm-up" -z 3s -c 8 -d "$plain" > /dev/null
for i in 1 2; do
  run "recommend, 2,000 req/s (run $i)" -z 10s -q 2000 -c 16 -d "$plain"
  run "recommend + 50-item history, 2,000 req/s (run $i)" -z 10s -q 2000 -c 16 -d "$hist"
done
run "recommend, full speed, 32 connections" -z 10s -c 32 -d "$plain"
run "recommend + 50-item history, full speed" -z 10s -c 32 -d "$hist"
