#!/usr/bin/env bash
# Item cold start end to end on the synthetic product log (BENCHMARKS.md, "Item cold
# start"): generate the log, split it by time 90/10, train the served models with the
# product configurations into one base directory, score the served lists with
# `shortlist eval --pipeline`, write the same lists with `recommend --pipeline
# --all-users`, and score them beside EASE, implicit's ALS and BPR (tuned on a
# validation carve of train, bench/product_peers.py) with the share of test hits on
# cold items (products without a training interaction).
#
#   bench/product_log.sh [OUT_DIR] [SEED] [PEER_FLAGS...]
#   e.g. bench/product_log.sh /tmp/shop 42             # full peer grids
#        bench/product_log.sh /tmp/shop 42 --quick     # small grids (smoke test)
#
# PYTHON picks the interpreter for the peers (numpy, scipy, implicit), default python3.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
seed=${2:-42}
shift $(($# < 2 ? $# : 2))
python=${PYTHON:-python3}
bin=target/release/shortlist
cargo build --release --quiet
mkdir -p "$out"
base=$out/models
rm -rf "$out/shop" "$out/split" "$base"
$bin data synth --kind products --seed "$seed" --out "$out/shop" -q
$bin data split "$out/shop" --method temporal --ratio 0.9 --out "$out/split" -q
common=(--train "$out/split/train.tsv" --test "$out/split/test.tsv" --data "$out/shop"
  --seed "$seed" -q)
/usr/bin/time -f "retrieval trained in %e s" \
  $bin train retrieval "${common[@]}" --config configs/retrieval-products.toml \
  --out "$base/retrieval/1" > /dev/null
/usr/bin/time -f "ranking (rating + relevance head) trained in %e s" \
  $bin train ranking "${common[@]}" --config configs/ranking-products.toml \
  --out "$base/ranking/1" > /dev/null
$bin eval --pipeline "$base" --test "$out/split/test.tsv" -q --json > "$out/pipeline.json"
$bin eval --pipeline "$base" --test "$out/split/test.tsv" -q
$bin recommend --pipeline "$base" --all-users -k 20 --exclude-seen --jsonl \
  --output "$out/served.jsonl" -q
$bin recommend --model "$base/retrieval/1" --all-users -k 20 --exclude-seen --jsonl \
  --output "$out/retrieval.jsonl" -q
"$python" bench/product_peers.py --split "$out/split" --seeds "$seed" \
  --lists "served pipeline=$out/served.jsonl" --lists "retrieval alone=$out/retrieval.jsonl" \
  --json "$out/peers.json" "$@"
