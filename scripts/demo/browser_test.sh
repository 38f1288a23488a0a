#!/usr/bin/env bash
# The /demo page in a real browser: starts `shortlist serve` on a model base path
# and chromedriver, then runs browser_test.py (headless Chromium: search and like
# three titles, wait for the lists, check that the in-browser WebAssembly list
# agrees with the server's, screenshot, browser timings).
#
#   scripts/demo/browser_test.sh [MODEL_BASE] [OUT]
#   scripts/demo/browser_test.sh --synth [OUT]
#
# MODEL_BASE defaults to models/movielens (written by `cargo run --release --
# quickstart`; the test then likes "Star Wars", "Toy Story" and "Fargo"). With
# --synth it trains small models on a synthetic product log first (about a
# minute; what CI runs: no dataset download). OUT (default target/demo-test)
# receives demo.png and browser_test.json. Needs target/release/shortlist
# (cargo build --release), chromium + chromedriver (scripts/demo/install_browser.sh)
# and the WebAssembly build (scripts/wasm/build.sh, run here when missing).
# Exit status 0: passed; 1: failed; 77: skipped (no browser).
set -euo pipefail
cd "$(dirname "$0")/../.."
SYNTH=0
if [ "${1:-}" = "--synth" ]; then
    SYNTH=1
    OUT=${2:-target/demo-test}
else
    BASE=${1:-models/movielens}
    OUT=${2:-target/demo-test}
fi
BIN=${SHORTLIST_BIN:-target/release/shortlist}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
DRIVER=$(command -v chromedriver || true)
if [ -z "$CHROMIUM" ] || [ -z "$DRIVER" ]; then
    echo "skipped: no chromium/chromedriver (scripts/demo/install_browser.sh installs them)"
    exit 77
fi
[ -x "$BIN" ] || { echo "error: $BIN missing: cargo build --release -p shortlist-cli" >&2; exit 1; }
if [ ! -f target/wasm-pkg/shortlist_wasm_bg.wasm ]; then
    scripts/wasm/build.sh target/wasm-pkg
fi
mkdir -p "$OUT"
QUERIES=()
if [ "$SYNTH" = 1 ]; then
    BASE="$OUT/models"
    rm -rf "$OUT/synth" "$BASE"
    "$BIN" -q data synth --kind products --users 400 --items 300 --interactions 12000 --seed 7 --out "$OUT/synth"
    "$BIN" -q train retrieval --data "$OUT/synth" --epochs 3 --out "$BASE/retrieval/1" > "$OUT/train-retrieval.log"
    "$BIN" -q train ranking --data "$OUT/synth" --epochs 2 --out "$BASE/ranking/1" > "$OUT/train-ranking.log"
elif [[ "$BASE" == models/movielens* ]]; then
    QUERIES=(--query "star wars" --query "toy story" --query "fargo")
fi
[ -d "$BASE" ] || { echo "error: no model base path $BASE (run: cargo run --release -- quickstart)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
DPORT=$(free_port)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; }
trap cleanup EXIT
SHORTLIST_DEMO_WASM_DIR=target/wasm-pkg "$BIN" -q serve --model-base-path "$BASE" --host 127.0.0.1 \
    --port "$PORT" > "$OUT/server.log" 2>&1 &
PIDS+=($!)
"$DRIVER" --port="$DPORT" > "$OUT/chromedriver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null || { echo "error: the server did not get ready; $OUT/server.log:" >&2; cat "$OUT/server.log" >&2; exit 1; }
python3 scripts/demo/browser_test.py --server "http://127.0.0.1:$PORT" --driver "http://127.0.0.1:$DPORT" \
    --chromium "$CHROMIUM" --out "$OUT" "${QUERIES[@]}"
