#!/usr/bin/env bash
# The seed ranking model's training throughput, ours beside TensorFlow's, in the same
# run: ROUNDS rounds, each `bench_ranking SPLIT EPOCHS` then the TFRS reference
# `bench/tf_reference/ranking.py --epochs EPOCHS` (TF venv from bench/tf_reference/setup.sh),
# alternated so that both see the same machine. Prints each round and the medians.
#
#   bench/ranking_vs_tf.sh [ROUNDS] [EPOCHS] [SPLIT_DIR]
#   e.g. chrt -f 10 bench/ranking_vs_tf.sh 5 10   # real-time priority on a shared machine
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
epochs=${2:-10}
split=${3:-../shared/data/ml-100k-split42}
tf_python=${TF_VENV:-/tmp/tfvenv}/bin/python
[ -x "$tf_python" ] || { echo "no TensorFlow venv at $tf_python: run bench/tf_reference/setup.sh" >&2; exit 2; }
cargo build --release --quiet -p shortlist-train --example bench_ranking
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
  ours=$(target/release/examples/bench_ranking "$split" "$epochs" | tee "$tmp/ours$r.txt" |
    sed -n 's/.*training throughput: \([0-9]*\) examples\/s.*/\1/p')
  peak=$(sed -n 's/.*sgemm peak \([0-9.]*\) GFLOP.*/\1/p' "$tmp/ours$r.txt")
  TF_RESULTS=$tmp "$tf_python" bench/tf_reference/ranking.py --seed 42 --epochs "$epochs" \
    --data "$split" > "$tmp/tf$r.log" 2>&1
  n=$(($(wc -l < "$split/train.tsv") - 1))
  tf=$(python3 -c "import json; d=json.load(open('$tmp/ranking_seed42.json')); print(round($n / d['median_train_seconds_per_epoch_excl_first']))")
  echo "round $r: shortlist $ours examples/s (sgemm peak $peak GFLOP/s), TensorFlow $tf examples/s"
  echo "$ours $tf" >> "$tmp/pairs"
done
python3 - "$tmp/pairs" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
ours, tf = [r[0] for r in rows], [r[1] for r in rows]
ratios = [o / t for o, t in rows]
print(f"median of {len(rows)} rounds: shortlist {statistics.median(ours):,.0f} examples/s "
      f"({min(ours):,.0f}-{max(ours):,.0f}), TensorFlow {statistics.median(tf):,.0f} "
      f"({min(tf):,.0f}-{max(tf):,.0f}); ratio of medians {statistics.median(ours) / statistics.median(tf):.2f}x, "
      f"per-round ratios {min(ratios):.2f}-{max(ratios):.2f} (median {statistics.median(ratios):.2f})")
PY
