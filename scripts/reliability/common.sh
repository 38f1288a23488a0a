#!/usr/bin/env bash
# Shared set-up of the reliability scripts (sourced, not run): builds the
# binaries, trains the quickstart models once into $RELY_WORK/models, starts and
# stops a server, samples its memory. Every script talks to 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RELY_WORK="${RELY_WORK:-/tmp/shortlist-reliability}"
BIN="${SHORTLIST_BIN:-$ROOT/target/release/shortlist}"
STRESS="$ROOT/target/release/examples/stress"
PORT="${PORT:-18501}"
ADDR="127.0.0.1:$PORT"
mkdir -p "$RELY_WORK"

build() {
  # Two commands: with `--example`, cargo builds only the examples of the
  # packages named, so one command would leave a stale `shortlist` binary.
  (cd "$ROOT" && cargo build --release -p shortlist-cli >&2 \
    && cargo build --release -p shortlist-serve --example stress >&2)
}

# The quickstart models (MovieLens 100k, trained once): $RELY_WORK/models/movielens/{retrieval,ranking}/1.
models() {
  if [ ! -f "$RELY_WORK/models/movielens/ranking/1/manifest.json" ]; then
    "$BIN" -q quickstart --out "$RELY_WORK/models" >&2
  fi
  echo "$RELY_WORK/models/movielens"
}

# A fresh copy of the quickstart models as a model base path.
fresh_base() {
  local base="$RELY_WORK/base-$1"
  rm -rf "$base"
  mkdir -p "$base"
  cp -r "$(models)/retrieval" "$(models)/ranking" "$base/"
  echo "$base"
}

SERVER_PID=""
# start_server BASE [flags…]: serves BASE on $ADDR, log in $RELY_WORK/server.log.
start_server() {
  local base="$1"; shift
  "$BIN" serve --model-base-path "$base" --host 127.0.0.1 --port "$PORT" "$@" \
    > "$RELY_WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if curl -fsS "http://$ADDR/readyz" > /dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server did not become ready; log:" >&2
  cat "$RELY_WORK/server.log" >&2
  return 1
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2> /dev/null || true
    wait "$SERVER_PID" 2> /dev/null || true
    SERVER_PID=""
  fi
}

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status"; }

metric() { curl -fsS "http://$ADDR/monitoring/prometheus/metrics" | grep -E "^$1" || true; }

machine_load() { echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

# A /v1/rank body for user 42 with N item ids (the catalogue's ids, cycled).
rank_body() {
  python3 - "$1" "$(models)/ranking/1/items.tsv" << 'PY'
import json, sys
n, items = int(sys.argv[1]), sys.argv[2]
ids = [l.split("\t")[1] for l in open(items).read().splitlines()[1:] if l.split("\t")[1]]
print(json.dumps({"user_id": "42", "item_ids": [ids[k % len(ids)] for k in range(n)]}))
PY
}

trap stop_server EXIT
