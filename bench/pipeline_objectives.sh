#!/usr/bin/env bash
# The served pipeline with several ranking configurations side by side, over seeds:
# per seed, one retrieval model (the default configuration) is trained and shared, each
# ranking configuration is trained into its own base folder beside it, and
# `shortlist eval --pipeline` scores the list `/v1/recommend` returns for each. The
# configurations of one seed run back to back, so a loaded machine slows them alike.
#
#   bench/pipeline_objectives.sh [SPLIT_DIR] [SEEDS] CONFIG.toml [CONFIG.toml…]
#   e.g. bench/pipeline_objectives.sh ../shared/data/ml-100k-split42 "42 1 2" \
#          configs/ranking-default.toml configs/ranking-multitask.toml
#
# Prints each configuration's mean ± std of the served list (and of the rating head's
# test RMSE) over the seeds. Side features come from the ml-100k dataset (`--data
# ml-100k`: fetched once into $SHORTLIST_HOME, then read offline). BENCHMARKS.md,
# "Ranking objectives", has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
split=${1:-../shared/data/ml-100k-split42}
seeds=${2:-42 1 2}
shift $(($# < 2 ? $# : 2))
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
  configs=(configs/ranking-default.toml configs/ranking-multitask.toml)
fi
bin=target/release/shortlist
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for s in $seeds; do
  common=(--train "$split/train.tsv" --test "$split/test.tsv" --data ml-100k --seed "$s" -q)
  $bin train retrieval "${common[@]}" --out "$out/retrieval-$s/1" > /dev/null
  for c in "${configs[@]}"; do
    name=$(basename "$c" .toml)
    base=$out/$name-seed$s
    mkdir -p "$base/retrieval"
    ln -s "$out/retrieval-$s/1" "$base/retrieval/1"
    t0=$SECONDS
    $bin train ranking "${common[@]}" --config "$c" --out "$base/ranking/1" --json > "$out/$name-seed$s.train.json"
    echo "seed $s $name: ranking trained in $((SECONDS - t0)) s"
    $bin eval --pipeline "$base" --test "$split/test.tsv" -q --json > "$out/$name-seed$s.json"
  done
done
python3 - "$out" "${configs[@]}" <<'EOF'
import json, statistics, sys, os
out, configs = sys.argv[1], sys.argv[2:]
KEYS = ["ndcg@10", "recall@10", "recall@20", "hit_rate@10"]
def ms(v):
    return f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"
for c in configs:
    name = os.path.basename(c)[:-5]
    runs = sorted(f for f in os.listdir(out) if f.startswith(name + "-seed") and f.endswith(".json") and not f.endswith(".train.json"))
    rows, rmse = {}, []
    for f in runs:
        doc = json.load(open(os.path.join(out, f)))
        for r in doc["rows"]:
            rows.setdefault(r["list"], []).append(r["metrics"])
        rmse.append(json.load(open(os.path.join(out, f[:-5] + ".train.json")))["rmse"])
    print(f"\n{c} ({len(runs)} seeds): rating head test RMSE {ms(rmse)}")
    print(f"{'list':<58}" + "".join(f"{k:>18}" for k in KEYS))
    for name_, ms_ in rows.items():
        print(f"{name_:<58}" + "".join(f"{ms([m[k] for m in ms_]):>18}" for k in KEYS))
EOF
