#!/usr/bin/env bash
# The seed retrieval model's epoch time, ours beside TensorFlow Recommenders', in the
# same run: ROUNDS rounds, each `shortlist train retrieval --config
# configs/retrieval-tfrs.toml --epochs EPOCHS` (test metrics after every epoch, as
# always) then the TFRS reference `bench/tf_reference/retrieval.py --epochs EPOCHS`
# (its tutorial's factorized top-K metrics on the training batches, as the tutorial
# runs it) and once more with `--no-train-metrics`. Median seconds per epoch.
#
#   bench/retrieval_vs_tf.sh [ROUNDS] [EPOCHS] [SPLIT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
epochs=${2:-3}
split=${3:-../shared/data/ml-100k-split42}
tf_python=${TF_VENV:-/tmp/tfvenv}/bin/python
[ -x "$tf_python" ] || { echo "no TensorFlow venv at $tf_python: run bench/tf_reference/setup.sh" >&2; exit 2; }
cargo build --release --quiet -p shortlist-cli
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }
for r in $(seq "$rounds"); do
  target/release/shortlist train retrieval -q --config configs/retrieval-tfrs.toml --epochs "$epochs" \
    --train "$split/train.tsv" --test "$split/test.tsv" --out "$tmp/ours$r" > /dev/null
  ours=$(median $(tail -n +2 "$tmp/ours$r/curves.csv" | cut -d, -f9))
  for mode in metrics no-metrics; do
    flag=(); [ $mode = no-metrics ] && flag=(--no-train-metrics)
    TF_RESULTS=$tmp/$mode "$tf_python" bench/tf_reference/retrieval.py --seed 42 --epochs "$epochs" \
      --data "$split" "${flag[@]}" > "$tmp/tf$r-$mode.log" 2>&1
    declare "tf_${mode/-/_}=$(python3 -c "import json, glob; print(round(json.load(open(glob.glob('$tmp/$mode/retrieval_seed42*.json')[0]))['median_train_seconds_per_epoch'], 3))")"
  done
  echo "round $r: shortlist ${ours} s/epoch; TensorFlow ${tf_metrics} s/epoch (training metrics on), ${tf_no_metrics} s/epoch (off)"
done
