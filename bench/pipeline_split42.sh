#!/usr/bin/env bash
# The served pipeline on the shared split, over several seeds: trains the default
# retrieval and ranking models (and EASE / iALS as single-source baselines) per seed
# and scores the lists `/v1/recommend` returns with `shortlist eval --pipeline`.
#
#   bench/pipeline_split42.sh [SPLIT_DIR] [SEEDS]
#   e.g. bench/pipeline_split42.sh ../shared/data/ml-100k-split42 "42 1 2"
#
# Prints one table per seed, then mean ± std of each row (bench/summarize_pipeline.py).
set -euo pipefail
cd "$(dirname "$0")/.."
split=${1:-../shared/data/ml-100k-split42}
seeds=${2:-42 1 2}
bin=target/release/shortlist
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for s in $seeds; do
  base=$out/seed$s
  common=(--train "$split/train.tsv" --test "$split/test.tsv" --data ml-100k --seed "$s" -q)
  $bin train retrieval "${common[@]}" --out "$base/retrieval/1" > /dev/null
  /usr/bin/time -f "seed $s: ranking (rating + relevance head) trained in %e s" \
    $bin train ranking "${common[@]}" --out "$base/ranking/1" > /dev/null
  $bin train ease "${common[@]}" --out "$base/ease/1" > /dev/null # closed form: no seed
  $bin train ials "${common[@]}" --out "$base/ials/1" > /dev/null
  $bin eval --pipeline "$base" --test "$split/test.tsv" --source ease=0 --source ials=0 -q --json > "$out/seed$s.json"
  $bin eval --pipeline "$base" --test "$split/test.tsv" --source ease=0 --source ials=0 -q
done
python3 bench/summarize_pipeline.py "$out"/seed*.json
